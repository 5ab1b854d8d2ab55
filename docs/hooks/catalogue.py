"""mkdocs hook: the catalogue pages are generated from the components' own descriptions.

A page asks for a generated block with a marker line (an HTML comment, so the page still reads well
unbuilt):

    <!-- swift-ext:catalogue reward family=answers level=4 -->   every registered reward of that family,
                                                                 under level-4 headings (default 3)
    <!-- swift-ext:catalogue callback -->                  every registered callback (also metric, schedule, tool)
    <!-- swift-ext:hooks -->                               the plugin hooks, from swift_ext.hookspecs
    <!-- swift-ext:cli -->                                 every swift-ext command with its --help

Each component is rendered from its class (or function): the docstring gives the summary, the prose
and the example; the declared ``params`` give the parameter table (default, values, help); rewards add
what they abstain on. The build fails when a registered reward, callback, metric or schedule is not
rendered on any page, so a new component cannot be left out of the site.

The rendering functions need only swift_ext (not mkdocs), so tests/meta/test_docs.py uses them too.
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

KINDS = ("reward", "callback", "metric", "schedule", "tool")
MARKER = re.compile(r"^<!-- swift-ext:(catalogue|hooks|cli)(?P<args>[^>]*?)\s*-->$", re.M)
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data):`~?([^`]+)`")
_CODE = re.compile(r"(``?)(.+?)\1", re.S)
_LABEL = re.compile(r"^(Bad input|On the command line):")  # paragraph labels of the reward docstrings

# names rendered during one build (checked in on_post_build)
_rendered: Dict[str, Set[str]] = {k: set() for k in KINDS}


# -- docstrings -----------------------------------------------------------------------------------
def split_doc(obj: Any) -> Tuple[str, List[str], List[str]]:
    """``(summary, prose paragraphs, example lines)`` of an object's docstring.

    The summary is the first paragraph; the example is the indented block after an ``Example:`` /
    ``Examples:`` line (doctest lines, shown as they are).
    """
    doc = inspect.cleandoc(obj.__doc__ or "")
    lines = doc.splitlines()
    example: List[str] = []
    for i, line in enumerate(lines):
        if re.fullmatch(r"Examples?:", line.strip()):
            block = lines[i + 1:]
            lines = lines[:i]
            example = inspect.cleandoc("\n".join(block)).splitlines() if block else []
            break
    paragraphs = [" ".join(p.split("\n")).strip() for p in re.split(r"\n\s*\n", "\n".join(lines))]
    paragraphs = [p for p in paragraphs if p]
    summary = paragraphs[0] if paragraphs else ""
    return summary, paragraphs[1:], example


def md(text: str) -> str:
    """Docstring prose (reStructuredText code spans and roles) as Markdown; ``<`` outside code is escaped."""
    text = _ROLE.sub(r"``\1``", text)
    out = []
    pos = 0
    for m in _CODE.finditer(text):
        out.append(_escape(text[pos:m.start()]))
        code = m.group(2)
        fence = "``" if "`" in code else "`"
        pad = " " if code.startswith("`") or code.endswith("`") else ""
        out.append(f"{fence}{pad}{code}{pad}{fence}")
        pos = m.end()
    out.append(_escape(text[pos:]))
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("<", "&lt;").replace("*", "\\*")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (list, tuple)):
        return "`" + "|".join(str(v) for v in value) + "`" if value else '`""`'
    if value == "":
        return '`""`'
    return f"`{value}`"


# -- components -----------------------------------------------------------------------------------
def params_of(obj: Any) -> Dict[str, Any]:
    """The declared parameters (``swift_ext.params.Param``) of a component class or function (a reward's
    include the ``timeout`` and ``isolate`` every reward takes)."""
    declared = getattr(obj, "declared_params", None)
    if callable(declared):
        return dict(declared() or {})
    return dict(getattr(obj, "params", None) or {})


def param_table(obj: Any) -> List[str]:
    params = params_of(obj)
    if not params:
        return ["Takes no parameters."]
    rows = ["| parameter | default | values | meaning |", "|---|---|---|---|"]
    for key, p in params.items():
        if p.choices:
            values = ", ".join(f"`{c}`" for c in p.choices)
        else:
            values = p.kind.__name__
            if p.kind in (list, tuple):
                values = "list, items separated by `|`"
            bounds = [f">= {p.min:g}" if p.min is not None else "", f"<= {p.max:g}" if p.max is not None else ""]
            bounds = [b for b in bounds if b]
            if bounds:
                values += ", " + " and ".join(bounds)
        rows.append(f"| `{key}` | {_value(p.default)} | {values} | {_cell(md(p.help or ''))} |")
    return rows


def family_of(obj: Any) -> str:
    return obj.__module__.rsplit(".", 1)[-1]


def render_component(kind: str, name: str, obj: Any, level: int = 3) -> str:
    summary, prose, example = split_doc(obj)
    out = [f"{'#' * level} `{name}`", "", md(summary), ""]
    # a docstring paragraph "Abstains ..." says more than the one-line ``abstains``: it takes its place
    abstains_text = [p for p in prose if p.startswith("Abstains")]
    for p in prose:
        if not p.startswith("Abstains"):
            out += [_LABEL.sub(r"**\1:**", md(p)), ""]
    out += param_table(obj) + [""]
    if abstains_text:
        out += ["**Abstains**" + md(abstains_text[0][len("Abstains"):]), ""]
    elif kind == "reward":
        abstains = getattr(obj, "abstains", "never")
        if abstains.strip().lower() == "never":
            out += ["**Abstains:** never; every completion gets a score.", ""]
        else:
            out += [f"**Abstains** (returns `None`, which ms-swift leaves out of the weighted sum): {md(abstains)}.", ""]
    if kind == "reward":
        if inspect.iscoroutinefunction(getattr(obj, "__call__", None)):
            out += ["Runs asynchronously (ms-swift scores async rewards of a step concurrently).", ""]
    if example:
        out += ["```pycon", *example, "```", ""]
    return "\n".join(out)


def registered(kind: str) -> List[Tuple[str, Any]]:
    from swift_ext import plugins

    return list(plugins.registry(kind).items())


def render_catalogue(kind: str, families: Optional[Iterable[str]] = None, level: int = 3) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown catalogue kind {kind!r} (choose from {', '.join(KINDS)})")
    wanted = set(families) if families else None
    blocks = []
    for name, obj in registered(kind):
        if wanted is not None and family_of(obj) not in wanted:
            continue
        blocks.append(render_component(kind, name, obj, level))
        _rendered[kind].add(name)
    if not blocks:
        raise ValueError(f"catalogue {kind} {sorted(wanted or [])}: no registered {kind} matches")
    return "\n".join(blocks)


def render_hooks() -> str:
    from swift_ext import hookspecs

    out = []
    for name in sorted(n for n in dir(hookspecs) if n.startswith("register_")):
        fn = getattr(hookspecs, name)
        sig = str(inspect.signature(fn))
        summary, prose, _ = split_doc(fn)
        out.append(f"- `{name}{sig}`: {md(' '.join([summary, *prose]))}")
    return "\n".join(out) + "\n"


def render_cli() -> str:
    import click

    from swift_ext.cli import cli

    out = []

    def walk(cmd: click.Command, path: Tuple[str, ...], parent: Optional[click.Context]) -> None:
        ctx = click.Context(cmd, info_name=path[-1], parent=parent, terminal_width=110, max_content_width=110)
        out.extend([f"## `{' '.join(path)}`", "", "```text", cmd.get_help(ctx), "```", ""])
        if isinstance(cmd, click.Group):
            for name in sorted(cmd.commands):
                walk(cmd.commands[name], (*path, name), ctx)

    walk(cli, ("swift-ext",), None)
    return "\n".join(out)


def render_markers(markdown: str) -> str:
    """Replace every marker line of a page with its generated Markdown."""
    def one(m: "re.Match[str]") -> str:
        what, args = m.group(1), m.group("args").split()
        if what == "hooks":
            return render_hooks()
        if what == "cli":
            return render_cli()
        if not args:
            raise ValueError(f"{m.group(0)}: name a kind ({', '.join(KINDS)})")
        families, level = None, 3
        for arg in args[1:]:
            key, _, value = arg.partition("=")
            if key == "family" and value:
                families = value.split(",")
            elif key == "level" and value.isdigit():
                level = int(value)
            else:
                raise ValueError(f"{m.group(0)}: unknown argument {arg!r} (family=a,b or level=N)")
        return render_catalogue(args[0], families, level)

    return MARKER.sub(one, markdown)


def missing() -> Dict[str, List[str]]:
    """Registered names that no page rendered in this build."""
    out = {}
    for kind in KINDS:
        left = sorted(set(dict(registered(kind))) - _rendered[kind])
        if left:
            out[kind] = left
    return out


# -- mkdocs hook events ---------------------------------------------------------------------------
def on_config(config, **kwargs):
    # document swift-ext itself: third-party plugins installed in this environment stay out of the site
    os.environ["SWIFT_EXT_LOAD_PLUGINS"] = ""
    from swift_ext import plugins

    plugins.reset()
    return config


def on_pre_build(config, **kwargs):
    for names in _rendered.values():
        names.clear()


def on_page_markdown(markdown, page, config, files, **kwargs):
    try:
        return render_markers(markdown)
    except ValueError as exc:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_path}: {exc}") from exc


def on_post_build(config, **kwargs):
    left = missing()
    if left:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"registered but not in any catalogue marker of the docs: {left}")
