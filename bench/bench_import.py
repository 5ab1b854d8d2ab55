"""How much start-up time does the swift-ext plugin file add to an ms-swift process?

Each measurement is a fresh Python process that imports what ms-swift has loaded when it imports
``--external_plugins`` files (``swift.arguments`` and ``swift.rewards.orm``), then times
``swift.utils.import_external_file(<plugin>)`` exactly as ``BaseArguments.__post_init__`` does.
Compared: the seed recipe's hand-written one-reward plugin file (the obvious alternative) and
swift-ext's plugin file (every reward, entry-point discovery, parametrised names).

    python bench/bench_import.py [--repeat 7]

Prints a markdown table (median over fresh processes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

SEED_PLUGIN = textwrap.dedent('''
    import random
    from swift.rewards import ORM, orms

    class RandomReward(ORM):
        def __call__(self, completions, **kwargs):
            return [random.random() for _ in completions]

    orms['random_reward'] = RandomReward
''')

PROBE = textwrap.dedent('''
    import json, sys, time
    t0 = time.perf_counter()
    import swift.arguments, swift.rewards.orm  # loaded by ms-swift before plugins are imported
    t1 = time.perf_counter()
    from swift.utils import import_external_file
    before = set(sys.modules)
    t2 = time.perf_counter()
    if sys.argv[1] != "-":
        import_external_file(sys.argv[1])
    t3 = time.perf_counter()
    new = sorted(m for m in set(sys.modules) - before if not m.startswith("_swift_external"))
    print(json.dumps({"swift_s": t1 - t0, "plugin_s": t3 - t2, "new_modules": len(new),
                      "heavy": [m for m in new if m.split(".")[0] in
                                ("torch", "transformers", "math_verify", "sympy", "scipy", "datasets")]}))
''')


def measure(plugin: str, repeat: int, env) -> dict:
    runs = []
    subprocess.run([sys.executable, "-c", PROBE, plugin], capture_output=True, env=env)  # warm-up: .pyc files
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", PROBE, plugin], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"plugin_ms": statistics.median(r["plugin_s"] for r in runs) * 1000,
            "swift_ms": statistics.median(r["swift_s"] for r in runs) * 1000,
            "new_modules": runs[-1]["new_modules"], "heavy": runs[-1]["heavy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from swift_ext import cpu_compat
    from swift_ext.bridge import plugin_path

    env = cpu_compat.subprocess_env(dict(os.environ))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure as users run: with cached bytecode (a warm-up run writes it)
    with tempfile.TemporaryDirectory() as tmp:
        seed = os.path.join(tmp, "seed_plugin.py")
        with open(seed, "w") as fh:
            fh.write(SEED_PLUGIN)
        rows = [("no plugin", measure("-", args.repeat, env)),
                ("seed recipe plugin (1 reward, hand-written)", measure(seed, args.repeat, env)),
                ("swift-ext plugin file (all rewards)", measure(plugin_path(), args.repeat, env))]
    print(f"| plugin file | adds to start-up (median of {args.repeat}) | ms-swift imports before it | "
          f"modules it imports | heavy modules it imports |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['plugin_ms']:.1f} ms | {r['swift_ms']:.0f} ms | {r['new_modules']} | "
              f"{', '.join(r['heavy']) or 'none'} |")
    ours, seed_ms = rows[2][1]["plugin_ms"], rows[1][1]["plugin_ms"]
    print(f"\nswift-ext plugin: {ours:.1f} ms on top of ms-swift's own {rows[2][1]['swift_ms']:.0f} ms "
          f"({ours / max(seed_ms, 1e-9):.1f}x the seed recipe's plugin; target < 200 ms)")


if __name__ == "__main__":
    main()
