"""The docs site (docs/, mkdocs) documents everything users can select: every reward, schedule, callback,
metric, plugin hook and CLI command; it builds with ``mkdocs build --strict``; the README stays short."""

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from swift_ext import hookspecs, plugins
from swift_ext.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
KINDS = ["reward", "schedule", "callback", "metric", "tool"]


def load_hook():
    spec = importlib.util.spec_from_file_location("swift_ext_docs_catalogue", DOCS / "hooks" / "catalogue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = load_hook()
SOURCES = {p.relative_to(DOCS).as_posix(): p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md"))}
WRITTEN = "\n".join(SOURCES.values())  # the pages as written


@functools.lru_cache(maxsize=None)
def built() -> str:
    """The pages as built: generated catalogues and CLI reference filled in by the mkdocs hook."""
    return "\n".join(HOOK.render_markers(text) for text in SOURCES.values())


def commands(group, prefix=()):
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, path)


def builtin(kind):
    """swift-ext's own components (an installed third-party plugin documents its own)."""
    reg = plugins.registry(kind)
    return [(name, obj) for name, obj in reg.items() if reg.source(name).startswith("swift-ext built-in")]


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_name_is_documented(kind):
    names = [name for name, _ in builtin(kind)]
    assert names
    # an entry of its own (a heading) in a catalogue page, not just a mention somewhere
    missing = [name for name in names if not re.search(rf"^#+ `{re.escape(name)}`$", built(), re.M)]
    assert not missing, f"{kind}s without a catalogue entry in docs/: {missing}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_catalogue_entry_is_described(kind):
    """What the generated catalogue shows must exist: a summary and help for every parameter; rewards also
    say when they abstain and carry a runnable example."""
    problems = []
    for name, obj in builtin(kind):
        summary, _, example = HOOK.split_doc(obj)
        if not summary:
            problems.append(f"{name}: no docstring summary")
        problems += [f"{name}: parameter {key!r} has no help" for key, p in HOOK.params_of(obj).items()
                     if not (p.help or "").strip()]
        if kind == "reward":
            if not (getattr(obj, "abstains", "") or "").strip():
                problems.append(f"{name}: empty `abstains`")
            if not any(line.startswith(">>>") for line in example):
                problems.append(f"{name}: no `Example:` with >>> lines in its docstring")
    assert not problems, problems


def test_catalogue_rejects_unknown_markers():
    with pytest.raises(ValueError, match="no registered reward"):
        HOOK.render_markers("<!-- swift-ext:catalogue reward family=no_such_family -->")
    with pytest.raises(ValueError, match="unknown argument"):
        HOOK.render_markers("<!-- swift-ext:catalogue reward colour=red -->")


def test_every_hook_is_documented():
    hooks = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert len(hooks) >= 7
    assert not [h for h in hooks if f"`{h}" not in WRITTEN], "hooks missing from the hand-written docs/ pages"
    assert not [h for h in hooks if f"`{h}(" not in built()]


def test_every_command_is_documented_and_has_help():
    for path, cmd in commands(cli):
        name = f"swift-ext {' '.join(path)}"
        assert name in WRITTEN, f"`{name}` is not in the hand-written docs/ pages"
        assert f"## `{name}`" in built(), f"`{name}` is not in the CLI reference"
        assert (cmd.help or "").strip(), f"`{name}` has no help text"


def test_docs_have_no_development_jargon():
    user_pages = {k: v for k, v in SOURCES.items() if k != "development.md"}
    # (a link to agents.md, the page on tool-using GRPO, is not the jargon)
    words = re.compile(r"\b(agents?(?!\.md)|the lead|seed recipe|cpu-recipe|this task|lent to)\b", re.I)
    found = {page: sorted(set(m.group(0) for m in words.finditer(text))) for page, text in user_pages.items()}
    assert not {p: w for p, w in found.items() if w}


def test_readme_commands_for_ci_are_present():
    assert "<!-- ci:demo -->" in README and "swift-ext demo" in README
    assert "<!-- ci:test -->" in README and "pytest" in README


def test_readme_is_short_and_links_into_the_docs():
    assert len(README.splitlines()) <= 200
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 8, links
    assert not [link for link in links if not (ROOT / link).is_file()]


def test_mkdocs_build_strict(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        pytest.skip(f"mkdocs is not installed next to {sys.executable} (pip install -e '.[docs]')")
    # the hook imports swift_ext: document this checkout, not whatever swift_ext is installed elsewhere
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([str(mkdocs), "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = tmp_path / "site"
    for page in SOURCES:
        if page != "index.md":
            assert (site / page.replace(".md", "") / "index.html").is_file(), page
    rewards = (site / "rewards" / "index.html").read_text(encoding="utf-8")
    assert all(f"<code>{name}</code>" in rewards for name, _ in builtin("reward"))
