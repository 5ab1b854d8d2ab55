"""``swift-ext filter``: pass-rate filtering, curricula and difficulty buckets for GRPO datasets."""

from __future__ import annotations

import click
from rich.markup import escape

from ._common import console, echo_json, progress

#: the flags that build the sampler or shape the output, not :class:`~swift_ext.curation.filter.FilterOptions`
#: or :class:`~swift_ext.curation.filter.Sampling` fields (every other flag is named after a field: a test checks)
SAMPLER_FLAGS = ("dataset", "output", "recipe", "model", "model_type", "template", "torch_dtype", "backend",
                 "tensor_parallel_size", "endpoint", "api_key", "concurrency", "rpm", "tpm", "request_timeout",
                 "shard", "merge_shards", "as_json")


@click.command("filter")
@click.argument("dataset", metavar="DATASET.jsonl", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="the rows kept, each with pass_rate and reward_means (JSONL, written atomically)")
@click.option("-r", "--reward", "rewards", multiple=True,
              help="reward name, parametrised name (iou:threshold=0.7), alias or ms-swift orms name; repeatable "
                   "(default: the recipe's reward_funcs)")
@click.option("--reward-weights", "weights", multiple=True, metavar="W[,W...]",
              help="one weight per reward, in order, for the weighted sum (as --reward_weights): 1,0.5 or the "
                   "option repeated (default 1 each)")
@click.option("--by", default=None, help="compute pass rates on this one reward instead of the weighted sum")
@click.option("--pass-threshold", type=float, default=None,
              help="a completion passes at this score or above (default: 1.0 on one reward; the sum of the "
                   "positive weights on the weighted sum)")
@click.option("--keep", "keep", default=None, metavar="LOW:HIGH",
              help="keep rows whose pass rate lies in this band, ends included (e.g. 0.1:0.9)")
@click.option("--curriculum", is_flag=True, help="keep every row, ordered easy to hard (pass rate falling)")
@click.option("--buckets", default=None, metavar="N|EDGES",
              help="also split the rows into difficulty buckets: N equal pass-rate intervals or inner edges "
                   "(0.2,0.8); writes OUTPUT-stem.bucketI.jsonl")
@click.option("--recipe", default=None, help="launch recipe (grpo, chord or a .yaml path) whose num_generations, "
              "temperature, max_completion_length, top_p, reward_funcs, reward_weights and model are the defaults")
@click.option("--model", default=None, help="model for the in-process engine (path or hub id; default: the "
              "recipe's), or the served model name with --endpoint (default: the endpoint's first model)")
@click.option("--model-type", default=None, help="ms-swift model_type (in-process engine)")
@click.option("--template", default=None, help="ms-swift template type (in-process engine)")
@click.option("--torch-dtype", default=None, help="float32 / bfloat16 / float16 (in-process engine)")
@click.option("--backend", type=click.Choice(["transformers", "vllm"]), default="transformers", show_default=True,
              help="ms-swift inference engine run in this process")
@click.option("--tensor-parallel-size", type=int, default=1, show_default=True, help="vLLM tensor parallel size")
@click.option("--endpoint", multiple=True, help="sample from an OpenAI-compatible server instead "
              "(swift deploy, vLLM): base URL such as http://127.0.0.1:8000/v1; repeatable: servers of the same "
              "model share the prompts (--concurrency each)")
@click.option("--shard", default=None, metavar="I/N",
              help="sample only shard I of N (prompts I, I+N, ... in dataset order; I from 0) into its own "
                   "resumable checkpoint, for N processes or nodes at once; then --merge-shards N")
@click.option("--merge-shards", type=int, default=None, metavar="N",
              help="join the N shard checkpoints of OUTPUT, then score and select: the outputs one process "
                   "writes (the sampling settings are read from the shards)")
@click.option("--api-key", envvar="OPENAI_API_KEY", default=None, help="bearer token for --endpoint "
              "(default: $OPENAI_API_KEY)")
@click.option("--concurrency", type=int, default=8, show_default=True, help="prompts in flight at once (--endpoint)")
@click.option("--rpm", type=float, default=None, help="at most this many requests per minute (--endpoint)")
@click.option("--tpm", type=float, default=None, help="at most this many tokens per minute, counting max_tokens "
              "per request (--endpoint)")
@click.option("--request-timeout", type=float, default=600.0, show_default=True,
              help="seconds one request may take in all, connect to last byte (--endpoint)")
@click.option("-k", "--num-generations", type=int, default=None, help="completions per prompt (default: the "
              "recipe's num_generations, else 8)")
@click.option("--temperature", type=float, default=None, help="sampling temperature (default: recipe, else 1.0)")
@click.option("--max-tokens", type=int, default=None, help="longest completion in tokens (default: the recipe's "
              "max_completion_length, else 512)")
@click.option("--top-p", type=float, default=None, help="nucleus sampling (default: the recipe's, else off)")
@click.option("--seed", type=int, default=42, show_default=True, help="prompts' seeds derive from it")
@click.option("--plugin", "plugin_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="an ms-swift ORM plugin file whose rewards to use; repeatable")
@click.option("--ref-key", default=None, help="column with the reference answer, handed to rewards as `solution`")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False),
              help="append-only progress file (default OUTPUT.ckpt.jsonl); a rerun resumes from it")
@click.option("--restart", is_flag=True, help="discard the checkpoint and sample every prompt again")
@click.option("--samples", default=None, type=click.Path(dir_okay=False),
              help="every prompt's completions and scores (default OUTPUT-stem.samples.jsonl)")
@click.option("--rejects", default=None, type=click.Path(dir_okay=False),
              help="rows that could not be used, one JSON object per line with file, line, reason and the original row (default OUTPUT-stem.rejected.jsonl)")
@click.option("--json", "as_json", is_flag=True, help="the summary as JSON on stdout")
def filter_cmd(dataset, output, rewards, weights, by, pass_threshold, keep, curriculum, buckets, recipe, model,
               model_type, template, torch_dtype, backend, tensor_parallel_size, endpoint, shard, merge_shards,
               api_key, concurrency, rpm, tpm, request_timeout, num_generations, temperature, max_tokens, top_p, seed, plugin_files, ref_key,
               checkpoint, restart, samples, rejects, as_json):
    """Sample k completions per prompt of DATASET.jsonl, score them, and keep the prompts GRPO can learn from.

    A prompt whose k completions all score the same gives GRPO zero advantages: pure cost. Each row is
    written back with `pass_rate` (the share of its completions scoring at least --pass-threshold) and
    `reward_means`; --keep keeps a pass-rate band, --curriculum orders rows easy to hard, --buckets splits
    them. Sampling runs ms-swift's inference engine in this process (--backend transformers on CPU/GPU,
    vllm on GPU nodes) or calls an OpenAI-compatible --endpoint (`swift deploy`, vLLM) with --concurrency.
    Interrupt it at any point (Ctrl-C, SIGTERM, even SIGKILL): the same command resumes from the checkpoint
    without sampling a prompt twice.

    \b
    Example:
        swift-ext filter train.jsonl -o train.filtered.jsonl --recipe grpo \\
            -r math_accuracy --keep 0.1:0.9 --endpoint http://127.0.0.1:8000/v1
    \b
    Data-parallel (one process per GPU or node, then one merge; docs/curation.md):
        swift-ext filter train.jsonl -o out.jsonl -r math_accuracy --shard 0/2 ...   # and --shard 1/2
        swift-ext filter train.jsonl -o out.jsonl -r math_accuracy --keep 0.1:0.9 --merge-shards 2
    """
    from ..curation import filter as flt
    from ..errors import ConfigError
    from ..io import exit_code, signals_raise

    defaults = flt.recipe_defaults(recipe) if recipe else {}
    try:
        weights = [float(x) for item in weights for x in item.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"--reward-weights {' '.join(weights)!r}: expected numbers such as 1,0.5") from None
    from_recipe = not rewards
    specs = list(rewards) or list(defaults.get("reward_funcs") or [])
    if not specs:
        raise ConfigError("no reward: pass -r NAME (repeatable) or a --recipe with reward_funcs")
    if not weights and from_recipe and defaults.get("reward_weights"):
        weights = [float(x) for x in defaults["reward_weights"]]
    sampling = flt.Sampling(
        num_generations=num_generations or int(defaults.get("num_generations", 8)),
        temperature=temperature if temperature is not None else float(defaults.get("temperature", 1.0)),
        max_tokens=max_tokens or int(defaults.get("max_tokens", 512)),
        top_p=top_p if top_p is not None else defaults.get("top_p"), seed=seed)
    band = flt.parse_band(keep) if keep else None
    edges = flt.parse_buckets(buckets) if buckets else None

    part = flt.parse_shard(shard) if shard else None
    if part and merge_shards is not None:
        raise ConfigError("--shard samples one shard, --merge-shards joins them: give one of the two")
    if merge_shards is not None:
        sampler, sampling = flt.merge_shards(dataset, output, merge_shards, checkpoint=checkpoint)
        console.print(f"merged {merge_shards} shard checkpoint(s) ({escape(sampler.label)}); scoring")
    elif endpoint:
        sampler = flt.EndpointSampler(list(endpoint), model=model, api_key=api_key, concurrency=concurrency, rpm=rpm,
                                      tpm=tpm, timeout=request_timeout)
    else:
        model = model or defaults.get("model")
        if not model:
            raise ConfigError("no model: pass --model PATH (or --endpoint URL, or a --recipe that names one)")
        from ..bridge.infer import EngineSampler

        console.print(f"loading {escape(model)} with ms-swift's {backend} engine ...")
        sampler = EngineSampler(model, backend, model_type=model_type, template=template, torch_dtype=torch_dtype,
                                tensor_parallel_size=tensor_parallel_size)

    options = flt.FilterOptions(rewards=tuple(specs), sampling=sampling, weights=tuple(weights) or None, by=by,
                                pass_threshold=pass_threshold, keep=band, curriculum=curriculum, buckets=edges,
                                plugin_files=plugin_files, ref_key=ref_key, checkpoint=checkpoint, samples=samples,
                                rejects=rejects, restart=restart and merge_shards is None)
    state = {}
    try:
        with signals_raise(), progress(rate=True) as bar:        # the one SIGTERM / SIGHUP path (swift_ext.io)
            def on_start(total, done):
                state["task"] = bar.add_task("sampling prompts", total=total, completed=done)
                if done:
                    console.print(f"resuming: {done} of {total} prompts already sampled (checkpoint)")

            if part:
                report = flt.sample_shard(dataset, output, sampler, options, part, on_start=on_start,
                                          on_prompt=lambda: bar.advance(state["task"]))
            else:
                report = flt.run(dataset, output, sampler, options, on_start=on_start,
                                 on_prompt=lambda: bar.advance(state["task"]))
    except KeyboardInterrupt as exc:
        code = exit_code(exc)
        what = "interrupted" if code == 130 else "terminated"
        console.print(f"[yellow]{what}[/]: the prompts sampled so far are in the checkpoint; run the same command "
                      f"again to resume")
        raise SystemExit(code) from None

    if part:
        console.print(f"shard {part[0]}/{part[1]}: {report.prompts} prompts ({report.sampled_now} sampled now, "
                      f"{report.resumed} from its checkpoint) -> {escape(report.checkpoint)}; when every shard is "
                      f"done: the same command with --merge-shards {part[1]} instead of --shard")
        if as_json:
            echo_json(report.as_dict())
        return
    for line, why in report.rejected[:10]:
        console.print(f"[yellow]rejected[/yellow] {dataset}:{line}: {escape(why)}")
    if as_json:
        echo_json(report.as_dict())
    else:
        _print_summary(report)


def _print_summary(report) -> None:
    from rich.table import Table

    d = report.as_dict()
    k = report.generations_per_prompt
    scored = report.rows_in - report.rows_rejected
    console.print(f"{report.rows_in} rows in = {report.rows_kept} kept + {report.rows_dropped} dropped + "
                  f"{report.rows_rejected} rejected  ({report.sampled_now} prompts sampled now, {report.resumed} "
                  f"from the checkpoint, {k} completions each)")
    console.print(f"pass rate on {escape(report.measure)}: a completion passes at >= {report.pass_threshold:g}")
    table = Table("reward", "mean", "zero-variance prompts")
    for spec, mean in report.reward_means.items():
        z = report.zero_variance_by_reward[spec]
        table.add_row(spec, "-" if mean is None else f"{mean:.4f}", f"{z}/{scored}")
    console.print(table)
    if report.pass_rates:
        rates = report.pass_rates
        hist = Table("pass rate", "prompts", title="difficulty (before selection)")
        hist.add_row("0 (every completion fails)", str(sum(r == 0.0 for r in rates)))
        hist.add_row("between 0 and 1", str(sum(0.0 < r < 1.0 for r in rates)))
        hist.add_row("1 (every completion passes)", str(sum(r == 1.0 for r in rates)))
        console.print(hist)
    frac = d["frac_zero_variance"]
    if frac is not None:
        console.print(f"{report.zero_variance_prompts} of {scored} prompts ({frac:.0%}) would give zero-variance "
                      f"groups on {report.measure}: {d['generations_in_zero_variance_groups']} generations per epoch "
                      f"GRPO would spend for no gradient")
    for b in report.buckets:
        console.print(f"bucket {b['bucket']} (pass rate {b['pass_rate'][0]:g}-{b['pass_rate'][1]:g}): {b['rows']} rows "
                      f"-> {escape(b['path'])}")
    for name, path in report.outputs.items():
        console.print(f"{name}: {escape(path)}")


def register(cli):
    cli.add_command(filter_cmd)
