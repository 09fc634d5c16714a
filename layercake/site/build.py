"""``layercake site``: the static site -- the ladder, annotated source, benchmarks, grid, traces.

Theory of operation
-------------------
:func:`build_site` writes plain HTML files and one stylesheet into a directory.  Pages
link to each other by relative URLs and load nothing from the network (no web fonts,
no CDN, no JavaScript at all), so the directory can be opened from disk, served by
:mod:`layercake.site.serve`, or copied anywhere.

The pages, and where each one's content comes from:

=========================  ===========================================================
``index.html``             the ladder: :data:`layers.LAYERS`, our servers, line counts
                           from :mod:`layercake.source`, per-request figures and req/s
                           from :mod:`layercake.figures` (the bench results' JSON)
``source/<path>.html``     one pycco page per annotated file: the layers, their shared
                           code, the sans-I/O core and both scratch servers
``diff/<a>--<b>.html``     each rung beside the one below it, aligned by handler, and
                           the two scratch servers aligned by section
``bench/index.html``       the benchmark report: ``docs/bench/*.md`` and its charts
``grid.html``              the compatibility grid (``layercake grid --json`` output)
``traces/index.html``      traces of canonical requests, one page each
``anatomy/<layer>.html``   each anatomy ladder (:mod:`layercake.site.anatomy`)
=========================  ===========================================================

The libraries do the rendering -- pygments highlights code, python-markdown turns
comments and reports into HTML -- and this module is only the glue: which files, which
pages, which links.  A figure that has not been measured is never invented: the page
says "not measured yet" and names the command that measures it.

What it deliberately doesn't do: run benchmarks or the grid (minutes of load on a
shared machine).  It reads their latest results from ``docs/``; traces, which take a
second each, are recorded at build time when the trace package and the layers exist,
within a time budget, and otherwise read from ``docs/traces/``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import markdown
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from layercake.figures import HOW_TO_MEASURE, Figures, load_figures
from layercake.source import Block, Line, SourceFile, align, blocks, consecutive_runs, parse

PROJECT = Path(__file__).resolve().parents[2]
STYLESHEET = Path(__file__).with_name("style.css")
PYGMENTS_STYLE = "friendly"

# What gets a pycco page: every .py file under these (an __init__.py with nothing in it
# is skipped), in this order on the source index.
ANNOTATED: tuple[str, ...] = (
    "layers/bare_wsgi",
    "layers/werkzeug",
    "layers/flask",
    "layers/bare_asgi",
    "layers/starlette",
    "layers/fastapi",
    "layers/django",
    "layers/django_asgi",
    "layers/shared",
    "servers/core",
    "servers/scratch_common.py",
    "servers/scratch_wsgi.py",
    "servers/scratch_wsgi",
    "servers/scratch_asgi.py",
    "servers/scratch_asgi",
)
SCRATCH_SERVERS: dict[str, tuple[str, str]] = {
    "scratch-wsgi": ("servers/scratch_wsgi.py", "servers/scratch_wsgi"),
    "scratch-asgi": ("servers/scratch_asgi.py", "servers/scratch_asgi"),
}
# The canonical traced requests: (method, path, body).
TRACED: tuple[tuple[str, str, str | None], ...] = (
    ("GET", "/json", None),
    ("POST", "/items", '{"name": "traced", "price": 9.5, "tags": ["site"]}'),
)
TRACE_BUDGET = 35.0  # seconds of the one-minute build that recording traces may take

NAV = (
    ("index.html", "Ladder"),
    ("source/index.html", "Source"),
    ("diff/index.html", "Side by side"),
    ("bench/index.html", "Benchmarks"),
    ("grid.html", "Grid"),
    ("traces/index.html", "Traces"),
    ("anatomy/index.html", "Anatomy"),
    ("docs/index.html", "Docs"),
)


@dataclass
class BuildReport:
    out: Path
    pages: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what is missing and how to get it
    written: list[Path] = field(default_factory=list)


# --- Small HTML helpers ---


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def missing(what: str, command: str) -> str:
    """The one way the site says a figure is absent: plainly, with the command to run."""
    return f'<span class="missing">{esc(what)} — run <code>{esc(command)}</code></span>'


def prose_html(text: str) -> str:
    """Markdown to HTML; fenced code is highlighted by pygments with the source pages' colours."""
    return markdown.markdown(
        text,
        extensions=["fenced_code", "tables", "sane_lists", "codehilite"],
        output_format="html",
        extension_configs={"codehilite": {"css_class": "highlight", "guess_lang": False}},
    )


_ANCHOR = re.compile(r'<a href="([^"]*)"([^>]*)>(.*?)</a>', re.DOTALL)
_IMAGE = re.compile(r'<img([^>]*?) src="([^"]*)"')
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")


def doc_pages(project: Path = PROJECT) -> dict[Path, str]:
    """The project's markdown documents that get a page: the README, the contract, the
    servers' README and everything in docs/ -- keyed by file, valued by site path."""
    found: dict[Path, str] = {}
    for path, page in (
        (project / "README.md", "docs/README.html"),
        (project / "CONTRACT.md", "docs/CONTRACT.html"),
        (project / "servers" / "README.md", "docs/servers-README.html"),
    ):
        if path.is_file():
            found[path.resolve()] = page
    docs = project / "docs"
    for path in sorted(docs.glob("*.md")) if docs.is_dir() else []:
        found[path.resolve()] = f"docs/{path.stem}.html"
    return found


def _site_path(target: Path, project: Path) -> str | None:
    """Where project file ``target`` lives in the site, if anywhere."""
    rel = target.relative_to(project).as_posix()
    if target.suffix == ".py" and target in _annotated_set(project):
        return f"source/{rel}.html"
    if rel.startswith("docs/anatomy/") and target.suffix in (".md", ".json"):
        return f"anatomy/{target.stem}.html"  # a committed anatomy run: its page (layercake/site/anatomy.py)
    if target.suffix == ".md":
        if target.name == "README.md" and target.parent.parent == project / "layers":
            app = target.parent / "app.py"
            return source_page(app, project) if app.exists() else None
        return doc_pages(project).get(target)
    if rel.startswith("docs/bench/"):
        return "bench/" + rel.removeprefix("docs/bench/")
    if rel.startswith("docs/autobahn/"):  # Autobahn's reports, copied by write_autobahn
        return "autobahn/" + rel.removeprefix("docs/autobahn/")
    return None


def relink(html_text: str, doc: Path, page: str, project: Path = PROJECT, out: Path | None = None) -> str:
    """Make a markdown document's relative links work from ``page`` in the site.

    A README or docs page links to project files (``../layercake/bench/floor.py``,
    ``CONTRACT.md``, ``docs/screenshots/x.png``); in the site, a file that has a page
    (pycco source, docs page, a layer's README on its source page) links to that page,
    a file under ``docs/bench/`` to its copy in ``bench/``, an image is copied under
    ``files/`` (when ``out`` is given), and anything else loses its link but keeps its
    text -- a site that works offline has no dangling links.  Links to the web and to
    anchors are left alone.
    """
    root = "../" * page.count("/")

    def resolve(href: str) -> tuple[Path, str] | None:
        parts = urlsplit(html.unescape(href))
        if parts.scheme or not parts.path:
            return None
        target = (doc.parent / unquote(parts.path)).resolve()
        try:
            target.relative_to(project)
        except ValueError:
            return None
        return target, (f"#{parts.fragment}" if parts.fragment else "")

    def copied(target: Path) -> str | None:
        if out is None or target.suffix.lower() not in IMAGE_SUFFIXES or not target.is_file():
            return None
        where = "files/" + target.relative_to(project).as_posix()
        (out / where).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, out / where)
        return where

    def fix_anchor(match: re.Match[str]) -> str:
        href, rest, text = match.groups()
        found = resolve(href)
        if found is None:
            return match.group(0) if urlsplit(html.unescape(href)).scheme or href.startswith("#") else text
        target, fragment = found
        where = _site_path(target, project) if target.exists() else None
        where = where or copied(target)
        return f'<a href="{root}{esc(where)}{esc(fragment)}"{rest}>{text}</a>' if where else text

    def fix_image(match: re.Match[str]) -> str:
        attrs, src = match.groups()
        found = resolve(src)
        if found is None:
            return match.group(0)
        where = _site_path(found[0], project) if found[0].exists() else None
        where = where if where and not where.endswith(".html") else copied(found[0])
        return f'<img{attrs} src="{root}{esc(where)}"' if where else f'<img{attrs} src=""'

    return _IMAGE.sub(fix_image, _ANCHOR.sub(fix_anchor, html_text))


def _annotated_set(project: Path) -> set[Path]:
    return {p.resolve() for p in annotated_files(project)}


class Site:
    """Where pages go, how they link, and what was written."""

    def __init__(self, out: Path, report: BuildReport, built_at: str, commit: str) -> None:
        self.out, self.report, self.built_at, self.commit = out, report, built_at, commit

    def root(self, page: str) -> str:
        """The relative prefix from ``page`` back to the site root."""
        return "../" * page.count("/")

    def write(self, page: str, title: str, body: str, here: str = "") -> None:
        root = self.root(page)
        nav = " ".join(
            f'<a href="{root}{href}"{" class=here" if href == here else ""}>{esc(label)}</a>' for href, label in NAV
        )
        text = (
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)} · layercake</title>\n"
            f'<link rel="stylesheet" href="{root}style.css">\n</head>\n<body>\n'
            f'<header class="top"><a class="brand" href="{root}index.html">layercake</a><nav>{nav}</nav></header>\n'
            f"<main>\n{body}\n</main>\n"
            f"<footer>Built {esc(self.built_at)} from commit <code>{esc(self.commit)}</code> by "
            "<code>layercake site</code>. Figures come from the result files named beside them.</footer>\n"
            "</body>\n</html>\n"
        )
        path = self.out / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.report.pages += 1
        self.report.written.append(path)


# --- Annotated files ---


def annotated_files(project: Path = PROJECT) -> list[Path]:
    """Every file that gets a pycco page, in ladder order."""
    found: list[Path] = []
    for entry in ANNOTATED:
        path = project / entry
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            continue
        for candidate in candidates:
            if candidate.name == "__init__.py" and not candidate.read_text(encoding="utf-8").strip():
                continue
            if candidate not in found:
                found.append(candidate)
    return found


def source_page(path: Path, project: Path = PROJECT) -> str:
    """The site path of the pycco page for ``path`` (``source/layers/flask/app.py.html``)."""
    return f"source/{path.relative_to(project).as_posix()}.html"


_LEXER = PythonLexer(stripnl=False, ensurenl=False)


def code_html(lines: list[Line], marked: set[int] | None = None) -> str:
    """Highlighted code with the file's own line numbers, one anchor per line (#L-12);
    the lines whose numbers are in ``marked`` are highlighted (pygments' ``hl_lines``)."""
    parts = []
    for i, run in enumerate(consecutive_runs(lines)):
        if i:
            parts.append('<div class="gap">⋮</div>')
        # hl_lines counts from the snippet's first line, whatever linenostart says
        hl = [k + 1 for k, ln in enumerate(run) if marked and ln.number in marked]
        formatter = HtmlFormatter(
            linenos="inline",
            linenostart=run[0].number,
            lineanchors="L",
            anchorlinenos=False,
            cssclass="highlight",
            wrapcode=True,
            hl_lines=hl,
        )
        parts.append(highlight("\n".join(ln.text for ln in run) + "\n", _LEXER, formatter))
    return "\n".join(parts)


def _readme(path: Path, page: str, project: Path, out: Path) -> str:
    readme = path.parent / "README.md"
    if path.name != "app.py" or not readme.exists():
        return ""
    # Folded by default (a <details> element needs no script): the page is the source.
    return (
        f'<details class="readme"><summary>README — what this layer adds, how a request flows through it'
        f"</summary>{relink(prose_html(readme.read_text(encoding='utf-8')), readme, page, project, out)}</details>"
    )


def write_source_page(site: Site, source: SourceFile, project: Path, figures: Figures) -> str:
    rel = source.path.relative_to(project).as_posix()
    page = source_page(source.path, project)
    sections = []
    used: set[str] = set()
    for i, section in enumerate(source.sections):
        prose = prose_html(section.prose) if section.prose.strip() else ""
        code = code_html(section.code) if section.code else ""
        # A section that defines something is addressable by its name (#create_item), so
        # the side-by-side pages and the README can link straight to a handler.
        anchor = next((n for n in section.names if n not in used), f"section-{i}")
        used.add(anchor)
        sections.append(
            f'<section class="section" id="{esc(anchor)}">\n<div class="prose">{prose}</div>\n'
            f'<div class="code">{code}</div>\n</section>'
        )
    layer = _layer_of(source.path, project)
    cost = ""
    if layer is not None:
        cost = f'<div class="stats">Per request: {_cost_text(layer, figures)}</div>'
    body = (
        f'<div class="doc-head"><h1><code>{esc(rel)}</code></h1>\n'
        f'<p class="stats">{source.code_lines:,} lines of code · {source.comment_lines:,} lines of comments and '
        f"docstrings · {source.blank_lines:,} blank · {len(source.sections)} sections</p>{cost}</div>\n"
        f'{_readme(source.path, page, project, site.out)}\n<div class="sections">\n' + "\n".join(sections) + "\n</div>"
    )
    site.write(page, rel, body, "source/index.html")
    return page


def _layer_of(path: Path, project: Path) -> str | None:
    from layers import LAYERS

    parts = path.relative_to(project).parts
    if len(parts) >= 3 and parts[0] == "layers" and parts[1] in LAYERS and parts[-1] == "app.py":
        return parts[1]
    return None


def _cost_text(layer: str, figures: Figures) -> str:
    cost = figures.cost(layer)
    if cost is None:
        return missing("not measured yet", HOW_TO_MEASURE["in_process"])
    text = f'{esc(cost.summary())} <span class="note">— {esc(cost.provenance)}</span>'
    if cost.by_package:
        # Whose work one request is: the layer's own code, the framework, the stdlib...
        packages = list(cost.by_package)
        head = "".join(f"<th>{esc(p)}</th>" for p in packages)
        calls = "".join(f'<td class="num">{cost.by_package[p].get("calls", 0):,}</td>' for p in packages)
        lines = "".join(f'<td class="num">{cost.by_package[p].get("lines", 0):,}</td>' for p in packages)
        text += (
            f'<table class="ladder packages"><thead><tr><th>by package</th>{head}</tr></thead><tbody>'
            f"<tr><td>calls</td>{calls}</tr><tr><td>distinct lines</td>{lines}</tr></tbody></table>"
        )
    return text


def write_source_index(site: Site, sources: list[SourceFile], project: Path) -> None:
    rows = []
    for source in sources:
        rel = source.path.relative_to(project).as_posix()
        first = (source.docstring.split("\n\n", 1)[0].replace("\n", " ") or "")[:160]
        rows.append(
            f'<tr><td class="name"><a href="{esc(source_page(source.path, project).removeprefix("source/"))}">'
            f'{esc(rel)}</a></td><td class="num">{source.code_lines:,}</td>'
            f'<td class="num">{source.comment_lines:,}</td><td>{esc(first)}</td></tr>'
        )
    body = (
        '<h1>Annotated source</h1>\n<p class="lede">Every file of the layers, their shared code, the sans-I/O '
        "core and our two servers, with its comments beside the code they explain.</p>\n"
        '<table class="ladder"><thead><tr><th>file</th><th>code</th><th>comments</th><th>what it is</th>'
        "</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )
    site.write("source/index.html", "Annotated source", body, "source/index.html")


# --- Side by side ---


def diff_pairs(project: Path = PROJECT) -> list[tuple[str, str, Path, Path]]:
    """(name A, name B, file A, file B) for each rung and the one below it, and the servers."""
    from layers import LAYERS

    pairs = []
    for layer in LAYERS.values():
        if layer.below:
            a, b = project / "layers" / layer.below / "app.py", project / "layers" / layer.name / "app.py"
            if a.exists() and b.exists():
                pairs.append((layer.below, layer.name, a, b))
    servers = [_server_file(name, project) for name in SCRATCH_SERVERS]
    if all(p is not None and p.is_file() for p in servers):
        pairs.append(("scratch-wsgi", "scratch-asgi", servers[0], servers[1]))  # type: ignore[arg-type]  # not None: all() above checked both
    return pairs


def _server_file(name: str, project: Path) -> Path | None:
    for candidate in SCRATCH_SERVERS[name]:
        path = project / candidate
        if path.exists():
            return path
    return None


def diff_page(a: str, b: str) -> str:
    return f"diff/{a}--{b}.html"


def _block_cell(block: Block | None, marked: set[int] | None = None) -> str:
    if block is None:
        return '<td class="none">(nothing here)</td>'
    if not block.code:
        return '<td class="none">(comments only)</td>'
    return f"<td>{code_html(block.code, marked)}</td>"


def differing_lines(left: Block | None, right: Block | None) -> tuple[set[int], set[int]]:
    """The line numbers, on each side, of the code lines the other side does not have.

    difflib's SequenceMatcher over the two blocks' code, compared with indentation and
    surrounding spaces stripped (a handler moved into a class is the same line); blank
    lines never count.  A block with nothing opposite differs in every line.
    """
    import difflib

    a = [ln for ln in (left.code if left else []) if ln.text.strip()]
    b = [ln for ln in (right.code if right else []) if ln.text.strip()]
    matcher = difflib.SequenceMatcher(
        None, [ln.text.strip() for ln in a], [ln.text.strip() for ln in b], autojunk=False
    )
    same_a: set[int] = set()
    same_b: set[int] = set()
    for block in matcher.get_matching_blocks():
        same_a.update(a[block.a + k].number for k in range(block.size))
        same_b.update(b[block.b + k].number for k in range(block.size))
    return {ln.number for ln in a} - same_a, {ln.number for ln in b} - same_b


def write_diff_page(site: Site, a: str, b: str, path_a: Path, path_b: Path, project: Path) -> str:
    source_a, source_b = parse(path_a), parse(path_b)
    rows = []
    page_a, page_b = "../" + source_page(path_a, project), "../" + source_page(path_b, project)
    for left, right in align(blocks(source_a), blocks(source_b)):
        key = (left or right).key  # type: ignore[union-attr]  # an aligned pair always has at least one side
        links = " ".join(
            f'<a class="note" href="{esc(page)}#{esc(key)}">{esc(name)} source</a>'
            for blk, page, name in ((left, page_a, a), (right, page_b, b))
            if blk is not None and key in {n for s in blk.sections for n in s.names}
        )
        marked_a, marked_b = differing_lines(left, right)
        changed = len(marked_a) + len(marked_b)
        count = (
            f'<span class="note">{changed} line{"s" if changed != 1 else ""} differ</span>'
            if changed
            else '<span class="note">the same code</span>'
        )
        rows.append(f'<tr class="key"><td colspan="2" id="{esc(key)}">{esc(key)} {count} {links}</td></tr>')
        rows.append(f"<tr>{_block_cell(left, marked_a)}{_block_cell(right, marked_b)}</tr>")
    root = "../"
    if a in SCRATCH_SERVERS:
        lede = (
            "Aligned by section: both servers share their headings in the same order (accept loop → connection → "
            "event loop → request cycle), so each row shows how threads and an event loop do the same job."
        )
    else:
        lede = (
            "Aligned by handler and section heading: each row is the same piece of the contract in both files, "
            "so what differs is the framework, never the work."
        )
    body = (
        f'<h1>{esc(a)} beside {esc(b)}</h1>\n<p class="lede">{esc(lede)} Code only: each file\'s page has the '
        'comments. <span class="diff-key">Marked lines</span> are the ones the other side does not have.</p>\n'
        f'<table class="diff"><thead><tr><th><a href="{root}{esc(source_page(path_a, project))}">{esc(a)}</a> — '
        f'{source_a.code_lines:,} lines of code</th><th><a href="{root}{esc(source_page(path_b, project))}">'
        f"{esc(b)}</a> — {source_b.code_lines:,} lines of code</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
    )
    page = diff_page(a, b)
    site.write(page, f"{a} beside {b}", body, "diff/index.html")
    return page


def write_diff_index(site: Site, pairs: list[tuple[str, str, Path, Path]]) -> None:
    if pairs:
        items = "\n".join(
            f'<li><a href="{esc(diff_page(a, b).removeprefix("diff/"))}">{esc(a)} → {esc(b)}</a></li>'
            for a, b, _, _ in pairs
        )
        body = f'<h1>Side by side</h1>\n<p class="lede">Each rung beside the one below it.</p>\n<ul>{items}</ul>'
    else:
        body = "<h1>Side by side</h1>\n<p>No two layers have been written yet.</p>"
    site.write("diff/index.html", "Side by side", body, "diff/index.html")


# --- The ladder (index) ---


def _num(value: float | int | None, fmt: str = "{:,.0f}") -> str:
    return "—" if value is None else fmt.format(value)


INTERFACE_COLOURS = {"wsgi": "#0969da", "asgi": "#bf3989"}  # the badges' colours: 5.2:1 and 5.0:1 on white


def _machine(env: dict[str, Any]) -> str:
    """ "AMD EPYC, 2 CPUs" from a result's recorded environment ("" when none was recorded)."""
    if not env:
        return ""
    cpus = env.get("usable_cpus") or env.get("cpu_count")
    cpus = len(cpus) if isinstance(cpus, list | tuple) else cpus
    parts = [str(env.get("cpu_model") or env.get("machine") or ""), f"{cpus} CPUs" if cpus else ""]
    return ", ".join(p for p in parts if p)


def _short_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:,.0f}"


def ladder_chart(figures: Figures) -> str:
    """The ladder as two bar charts in one inline SVG: µs per request (in-process) and req/s
    (over a socket), one bar per rung, coloured by interface.  Drawn from the stored figures
    only; a rung with no figure says "not measured", never a made-up bar."""
    from layers import LAYERS

    rungs = list(LAYERS.values())
    left, panel, gap, row, top = 150, 420, 60, 30, 44
    room = panel - 150  # the longest bar leaves room for its label
    width = left + panel + gap + panel + 20
    height = top + row * len(rungs) + 12
    costs = {r.name: figures.cost(r.name) for r in rungs}
    us = {name: (cost.us if cost is not None else None) for name, cost in costs.items()}
    rps = {r.name: figures.rps(r.name) for r in rungs}
    us_max = max((v for v in us.values() if v), default=0) or 1
    rps_max = max((t.rps_max or t.rps for t in rps.values() if t), default=0) or 1
    x2 = left + panel + gap
    out = [
        f'<svg class="ladder-chart" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img" '
        'aria-label="bar charts of the ladder: microseconds per request and requests per second, per rung">',
        f'<text class="head" x="{left}" y="16">µs per request, in-process (shorter is cheaper)</text>',
        f'<text class="head" x="{x2}" y="16">requests per second over a socket (longer is faster)</text>',
    ]
    for i, rung in enumerate(rungs):
        y = top + i * row
        colour = INTERFACE_COLOURS[rung.interface]
        if i and rung.interface != rungs[i - 1].interface:
            out.append(f'<line x1="8" y1="{y - 4}" x2="{width - 8}" y2="{y - 4}" class="split"/>')
        out.append(f'<text class="rung" x="{left - 10}" y="{y + 15}" text-anchor="end">{esc(rung.name)}</text>')
        out.append(f'<text class="iface" x="8" y="{y + 15}" fill="{colour}">{rung.interface.upper()}</text>')
        value = us[rung.name]
        if value:
            w = max(room * value / us_max, 1)
            out.append(
                f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 10}" fill="{colour}">'
                f"<title>{esc(rung.name)}: {value:,.1f} µs per request</title></rect>"
            )
            out.append(f'<text class="value" x="{left + w + 6:.1f}" y="{y + 15}">{value:,.1f} µs</text>')
        else:
            out.append(f'<text class="none" x="{left}" y="{y + 15}">not measured</text>')
        t = rps[rung.name]
        if t:
            w = max(room * t.rps / rps_max, 1)
            out.append(
                f'<rect x="{x2}" y="{y + 3}" width="{w:.1f}" height="{row - 10}" fill="{colour}">'
                f"<title>{esc(rung.name)} on {esc(t.server)}: {t.rps:,.0f} req/s ({esc(t.endpoint)}, "
                f"c{t.concurrency or '?'})</title></rect>"
            )
            if t.rps_min is not None and t.rps_max is not None:  # the spread of the repeated runs
                a, b = x2 + room * t.rps_min / rps_max, x2 + room * t.rps_max / rps_max
                out.append(
                    f'<line class="spread" x1="{a:.1f}" y1="{y + row / 2 - 1}" x2="{b:.1f}" y2="{y + row / 2 - 1}"/>'
                )
            end = x2 + room * (t.rps_max or t.rps) / rps_max
            out.append(
                f'<text class="value" x="{end + 6:.1f}" y="{y + 15}">{_short_rate(t.rps)} · {esc(t.server)}</text>'
            )
        else:
            out.append(f'<text class="none" x="{x2}" y="{y + 15}">not measured</text>')
    out.append("</svg>")
    return "".join(out)


def ladder_caption(figures: Figures) -> str:
    """What the chart shows and where its figures come from: file, time, machine."""
    machine = _machine(figures.environment)
    endpoints = sorted({c.endpoint for c in figures.costs.values()})
    parts = []
    if figures.costs:
        parts.append(
            f"Left: microseconds per request for GET /{'/'.join(endpoints) or 'json'}, each rung called "
            f"in-process with no socket (<code>{esc(figures.origin)}</code>, measured "
            f"{esc(figures.measured_at or 'at an unrecorded time')}{', on ' + esc(machine) if machine else ''})."
        )
    else:
        parts.append("Left: " + missing("µs per request not measured yet", HOW_TO_MEASURE["in_process"]))
    if figures.throughput:
        t0 = figures.throughput[0]
        parts.append(
            f"Right: median requests per second over loopback at the best concurrency, each rung on its "
            f"reference server, the thin line the spread of the repeated runs (<code>"
            f"{esc(figures.ladder_origin)}</code>, measured {esc(figures.ladder_measured_at or t0.measured_at or 'at an unrecorded time')})."
        )
    else:
        parts.append("Right: " + missing("req/s not measured yet", HOW_TO_MEASURE["ladder"]))
    return " ".join(parts)


def write_index(site: Site, project: Path, figures: Figures, pairs: list[tuple[str, str, Path, Path]]) -> None:
    from layers import LAYERS

    diffs = {b: diff_page(a, b) for a, b, _, _ in pairs}
    sections = []
    for interface in ("wsgi", "asgi"):
        rows = []
        for layer in [la for la in LAYERS.values() if la.interface == interface]:
            path = project / "layers" / layer.name / "app.py"
            if path.exists():
                src = parse(path)
                name = f'<a href="{esc(source_page(path, project))}">{esc(layer.name)}</a>'
                code, comments = f"{src.code_lines:,}", f"{src.comment_lines:,}"
            else:
                name, code, comments = esc(layer.name), "(not written)", "—"
            cost = figures.cost(layer.name)
            calls = _num(cost.calls if cost else None)
            lines = _num(cost.lines if cost else None)
            us = _num(cost.us if cost else None, "{:,.1f}")
            rps = figures.rps(layer.name)
            rps_text = (
                f'{rps.rps:,.0f}<br><span class="note">{esc(rps.endpoint)}'
                f"{f', c{rps.concurrency}' if rps.concurrency else ''}<br>{esc(rps.server)}</span>"
                if rps
                else "—"
            )
            below = (
                f'<a href="{esc(diffs[layer.name])}">beside {esc(layer.below)}</a>'
                if layer.name in diffs
                else esc(layer.below or "—")
            )
            rows.append(
                f'<tr><td class="name">{name}<span class="badge {interface}">{interface.upper()}</span></td>'
                f'<td class="what">{esc(layer.description)}</td><td>{below}</td><td class="num">{code}</td>'
                f'<td class="num">{comments}</td><td class="num">{calls}</td><td class="num">{lines}</td>'
                f'<td class="num">{us}</td><td class="num">{rps_text}</td></tr>'
            )
        rows.reverse()  # the framework on top, the interface at the bottom: a ladder you climb
        unmeasured = '<br><span class="missing">not measured yet</span>'
        rps_head = "req/s" + ("" if figures.throughput else unmeasured)
        us_head = "µs / request" + ("" if figures.costs else unmeasured)
        sections.append(
            f'<h2>{interface.upper()} ladder</h2>\n<table class="ladder"><thead><tr><th>rung</th><th>what it adds'
            "</th><th>below</th><th>code lines</th><th>comment lines</th><th>calls / request</th>"
            f"<th>lines run / request</th><th>{us_head}</th><th>{rps_head}</th></tr></thead><tbody>\n"
            + "\n".join(rows)
            + "\n</tbody></table>"
        )
    server_rows = []
    for name in SCRATCH_SERVERS:
        server_path = _server_file(name, project)
        if server_path is None:
            server_rows.append(f'<tr><td class="name">{esc(name)}</td><td colspan="4">(not written yet)</td></tr>')
            continue
        files = (
            [server_path]
            if server_path.is_file()
            else [p for p in annotated_files(project) if server_path in p.parents]
        )
        srcs = [parse(p) for p in files]
        link = source_page(files[0], project) if files else ""
        measured = figures.server_rps(name)
        best = measured[0] if measured else None
        # The reference it was measured beside, in the same run (same layer, other server).
        beside = [
            t
            for t in figures.servers
            if best is not None and t.origin == best.origin and t.layer == best.layer and t.server != name
        ]
        if best is not None and any(t.variant == best.variant for t in beside):
            beside = [t for t in beside if t.variant == best.variant]  # the same parser and loop, where run
        rps_text = (
            f'{best.rps:,.0f}<br><span class="note">{esc(best.layer)} {esc(best.endpoint)}'
            f"{f' ({esc(best.variant)})' if best.variant else ''}"
            f"{f', c{best.concurrency}' if best.concurrency else ''}<br>{esc(best.provenance)}"
            + "".join(f"<br>beside {esc(t.server_label)}: {t.rps:,.0f} ({best.rps / t.rps:.2f}×)" for t in beside)
            + "</span>"
            if best
            else "—"
        )
        server_rows.append(
            f'<tr><td class="name"><a href="{esc(link)}">{esc(name)}</a><span class="badge server">server</span></td>'
            f"<td>{esc(srcs[0].docstring.split(chr(10) * 2, 1)[0].replace(chr(10), ' ') if srcs else '')}</td>"
            f'<td class="num">{sum(s.code_lines for s in srcs):,}</td>'
            f'<td class="num">{sum(s.comment_lines for s in srcs):,}</td><td class="num">{rps_text}</td></tr>'
        )
    core = [p for p in annotated_files(project) if "core" in p.relative_to(project).parts[:2]]
    if core:
        srcs = [parse(p) for p in core]
        server_rows.append(
            f'<tr><td class="name"><a href="{esc(source_page(core[0], project))}">servers/core</a>'
            '<span class="badge server">sans-I/O</span></td><td>The HTTP rules both scratch servers share, with no '
            f'socket, thread or event loop.</td><td class="num">{sum(s.code_lines for s in srcs):,}</td>'
            f'<td class="num">{sum(s.comment_lines for s in srcs):,}</td><td class="num">—</td></tr>'
        )
    sections.append(
        '<h2>Our servers</h2>\n<table class="ladder"><thead><tr><th>server</th><th>what it is</th><th>code lines</th>'
        "<th>comment lines</th><th>best req/s</th></tr></thead><tbody>\n"
        + "\n".join(server_rows)
        + "\n</tbody></table>"
    )
    floor = figures.rps("floor")
    if floor is not None:
        sections.append(
            f'<p class="note">The floor — an asyncio protocol answering fixed bytes, the most Python does on this '
            f"socket — measured {floor.rps:,.0f} req/s on {esc(floor.endpoint)}"
            f"{f' at c{floor.concurrency}' if floor.concurrency else ''}: every req/s above is a fraction of it.</p>"
        )
    provenance = []
    if figures.costs:
        provenance.append(
            f"Calls, lines run and µs per request: in-process counters from <code>"
            f"{esc(figures.origin)}</code>, measured {esc(figures.measured_at or '(no time recorded)')}"
            f" on {esc(figures.machine or 'an unrecorded machine')}."
        )
    else:
        provenance.append(
            "Calls, lines run and µs per request: " + missing("not measured yet", HOW_TO_MEASURE["in_process"])
        )
    if figures.throughput:
        provenance.append(
            f"Requests per second: <code>{esc(figures.ladder_origin)}</code>, measured "
            f"{esc(figures.ladder_measured_at or '(no time recorded)')}"
            f" on {esc(figures.machine or 'an unrecorded machine')} — median of the repeated runs; "
            'see the <a href="bench/index.html">benchmark report</a>.'
        )
    else:
        provenance.append("Requests per second: " + missing("not measured yet", HOW_TO_MEASURE["ladder"]))
    sections.append(
        '<h2>In the terminal</h2>\n<p class="note">The same source, with the same figures: '
        "<code>layercake read flask</code> · <code>layercake read --diff bare_asgi starlette</code> · "
        "<code>layercake read --diff scratch-wsgi scratch-asgi</code> · <code>layercake loc</code> · "
        "<code>layercake trace fastapi GET /items/1</code></p>"
    )
    body = (
        '<h1>The ladder</h1>\n<p class="lede">One contract, eight layers. Each rung is built on the one below it '
        "(Django stands beside Flask and FastAPI, a framework of its own); "
        "the columns say what it costs in code you read and in work done per request. Click a rung to read its "
        "annotated source, or <em>beside</em> to see it next to the rung below.</p>\n"
        f'<figure class="chart lead">{ladder_chart(figures)}<figcaption>{ladder_caption(figures)}</figcaption>'
        "</figure>\n" + "\n".join(sections) + '\n<div class="note">' + "<br>".join(provenance) + "</div>"
    )
    site.write("index.html", "The ladder", body, "index.html")


# --- Benchmarks, grid, traces ---


#: What each chart ``layercake bench --charts`` draws shows, and which table of which report
#: (docs/bench/<report>.md; tables counted from 0) it summarises -- so it is put beside that table.
CHARTS: dict[str, tuple[str, int, str]] = {
    "inprocess-us": (
        "inprocess",
        0,
        "Microseconds per request for each layer and endpoint, called in-process "
        "with no socket: what the layer alone costs.",
    ),
    "inprocess-calls": (
        "inprocess",
        0,
        "Python calls per request, stacked by the package that made them: "
        "counted, not timed, so the same on every run.",
    ),
    "ladder-rps": (
        "ladder",
        0,
        "Requests per second for each layer on its reference server, median of the "
        "repeated runs: the table's figures as bars.",
    ),
    "ladder-latency": (
        "ladder",
        1,
        "Latency percentiles (p50, p90 and p99) of every target on one endpoint, at "
        "the table's concurrency: the tail the medians above leave out.",
    ),
    "slow-concurrency": (
        "slow",
        0,
        "GET /slow?ms=50 at rising concurrency: the thread pool's ceiling against "
        "the event loop's, in requests per second and latency.",
    ),
    "concurrency": ("ladder", 1, "Requests per second and latency as concurrency rises."),
}


def chart_caption(stem: str) -> tuple[str, int, str]:
    """(report stem, table index, caption) for a chart; an unknown chart goes with the report its
    name starts with, described by that name in words."""
    if stem in CHARTS:
        return CHARTS[stem]
    report, _, what = stem.partition("-")
    return report, 0, f"From the {report} report: its {what.replace('-', ' ') or 'figures'}, drawn."


_TABLE = re.compile(r"<table>.*?</table>", re.DOTALL)


def beside_tables(body: str, figures: dict[int, list[str]]) -> str:
    """Put each table's charts beside it: ``figures`` maps a table's index in ``body`` to its
    ``<figure>``s; a chart whose table is not there goes beside the last one."""
    if not figures:
        return body
    tables = list(_TABLE.finditer(body))
    if not tables:
        return (
            body
            + '<div class="with-chart"><div class="charts">'
            + "".join(f for fs in figures.values() for f in fs)
            + "</div></div>"
        )
    wanted: dict[int, list[str]] = {}
    for index, figs in figures.items():
        wanted.setdefault(min(index, len(tables) - 1), []).extend(figs)
    out, at = [], 0
    for i, match in enumerate(tables):
        out.append(body[at : match.start()])
        if i in wanted:
            head = match.group(0).split("</tr>", 1)[0]
            wide = " wide" if head.count("<th") >= 8 else ""  # a wide table takes more of the row
            out.append(
                f'<div class="with-chart{wide}"><div class="charts">{"".join(wanted[i])}</div>'
                f'<div class="table">{match.group(0)}</div></div>'
            )
        else:
            out.append(match.group(0))
        at = match.end()
    out.append(body[at:])
    return "".join(out)


def write_bench(site: Site, bench_dir: Path, project: Path = PROJECT, method: Path | None = None) -> None:
    """The benchmark report(s) and charts from ``bench_dir``; ``method``, the methodology
    document (docs/bench.md), becomes ``bench/method.html``."""
    out = site.out / "bench"
    out.mkdir(parents=True, exist_ok=True)
    reports = (
        sorted(bench_dir.glob("*.md"), key=lambda p: p.stat().st_mtime, reverse=True) if bench_dir.is_dir() else []
    )
    images = sorted(bench_dir.rglob("*.png")) if bench_dir.is_dir() else []
    data = sorted(bench_dir.glob("*.json")) if bench_dir.is_dir() else []
    for path in [*reports, *images, *data]:
        target = out / path.relative_to(bench_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    parts = ["<h1>Benchmarks</h1>"]
    if method is not None and method.is_file():
        body = relink(prose_html(method.read_text(encoding="utf-8")), method, "bench/method.html", project, site.out)
        site.write(
            "bench/method.html", "How the benchmarks are made", f'<div class="report">{body}</div>', "bench/index.html"
        )
        parts.append(
            '<p class="lede">What is measured, how, and how to check it by hand: '
            '<a href="method.html">how the benchmarks are made</a>.</p>'
        )
    if not reports and not images:
        parts.append("<p>" + missing("not measured yet", HOW_TO_MEASURE["ladder"]) + "</p>")
        site.report.notes.append(f"no benchmark report in {bench_dir}: run `{HOW_TO_MEASURE['ladder']}`")
    shown: set[str] = set()
    lab = [r for r in reports if r.match(LAB_REPORTS)]
    reports = [r for r in reports if r not in lab]
    lab += sorted(bench_dir.glob(f"*/{LAB_REPORTS}")) if bench_dir.is_dir() else []  # e.g. threadpool-1s/
    peers = bench_dir / PEERS_REPORT
    if lab or peers.is_file():
        for report in lab:
            for link in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", report.read_text(encoding="utf-8")):
                shown.add((report.parent / link).relative_to(bench_dir).as_posix())
        pages = write_lab(site, lab, project)
        if peers.is_file():
            pages.append(write_peers(site, peers, bench_dir, project))
            shown.update(img.relative_to(bench_dir).as_posix() for img in peers.parent.glob("*.png"))
        items = "".join(f'<li><a href="{esc(href)}">{esc(title)}</a></li>' for href, title in pages)
        parts.append(
            f"<h2>The sync-vs-async lab</h2>\n<p>One question per experiment "
            f"(<code>layercake bench --experiment NAME</code>), each with its chart:</p><ul>{items}</ul>"
        )
    for report in reports:
        text = report.read_text(encoding="utf-8")
        shown.update(re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text))
    placed: dict[str, dict[int, list[str]]] = {}  # report stem -> table index -> figures
    rest = []
    stems = {r.stem for r in reports}
    for img in images:
        src = img.relative_to(bench_dir).as_posix()
        if src in shown:
            continue  # the report shows it where it wants it
        report_stem, table, caption = chart_caption(img.stem)
        figure = f'<figure><img src="{esc(src)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'
        if report_stem in stems:
            placed.setdefault(report_stem, {}).setdefault(table, []).append(figure)
        else:
            rest.append(figure)
    for report in reports:
        body = relink(prose_html(report.read_text(encoding="utf-8")), report, "bench/index.html", project, site.out)
        body = beside_tables(body, placed.get(report.stem, {}))
        parts.append(f'<div class="report" id="{esc(report.stem)}">{body}</div>')
    if rest:
        parts.append('<h2>Other charts</h2>\n<div class="report">' + "".join(rest) + "</div>")
    if data:
        links = ", ".join(f'<a href="{esc(p.name)}">{esc(p.name)}</a>' for p in data)
        parts.append(f'<p class="note">Raw results (JSON, with the machine and versions recorded): {links}</p>')
    site.write("bench/index.html", "Benchmarks", "\n".join(parts), "bench/index.html")


def write_autobahn(site: Site, project: Path) -> None:
    """Copy Autobahn's reports (``probe --websocket --websocket-reports docs/autobahn``) to ``autobahn/``, so the
    WebSocket grid's links to each case's page work in the site."""
    reports = project / "docs" / "autobahn"
    for path in sorted(reports.rglob("*")) if reports.is_dir() else []:
        if path.is_file() and path.suffix in (".html", ".json"):
            target = site.out / "autobahn" / path.relative_to(reports)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".html":  # Autobahn's pages load their logo from the web: the site loads nothing
                text = _EXTERNAL_IMG.sub(lambda m: m[1] or "", path.read_text(encoding="utf-8"))
                target.write_text(text, encoding="utf-8")
            else:
                shutil.copyfile(path, target)


_EXTERNAL_IMG = re.compile(r'<img\b(?=[^>]*\bsrc="https?://)(?:[^>]*\balt="([^"]*)")?[^>]*>')


#: The sync-vs-async lab's reports (``layercake bench --experiment NAME --markdown
#: docs/bench/experiment-NAME.md``): a page each, linked from the benchmarks page.
LAB_REPORTS = "experiment-*.md"


def write_lab(site: Site, reports: list[Path], project: Path = PROJECT) -> list[tuple[str, str]]:
    """One page per experiment report, ``bench/experiment-NAME.html``; (href, title) of each, by name."""
    pages = []
    for report in sorted(reports):
        text = report.read_text(encoding="utf-8")
        title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), report.stem)
        page = f"bench/{report.stem}.html"
        body = relink(prose_html(text), report, page, project, site.out)
        site.write(page, title.replace("`", ""), f'<div class="report">{body}</div>', "bench/index.html")
        pages.append((f"{report.stem}.html", title.replace("`", "")))
    return pages


#: ``layercake bench --peers`` beside Node.js and Go, kept in its own folder so that
#: layercake/figures.py (the newest ladder JSON in docs/bench/) keeps reading the full ladder.
PEERS_REPORT = "peers/peers.md"


def write_peers(site: Site, report: Path, bench_dir: Path, project: Path = PROJECT) -> tuple[str, str]:
    """``bench/peers.html``: the peers run's report and its charts; (href, title)."""
    title = "The seed's claim: Python beside Node.js and Go"
    body = relink(prose_html(report.read_text(encoding="utf-8")), report, "bench/peers.html", project, site.out)
    charts = "".join(
        f'<figure><img src="{esc(img.relative_to(bench_dir).as_posix())}" alt="{esc(img.stem)}">'
        f"<figcaption>{esc(img.stem)}</figcaption></figure>"
        for img in sorted(report.parent.glob("*.png"))
    )
    site.write(
        "bench/peers.html", title, f'<h1>{esc(title)}</h1><div class="report">{body}{charts}</div>', "bench/index.html"
    )
    return "peers.html", title


def _grid_source(project: Path) -> Path | None:
    """The newest grid result under docs/: ``grid.json``, ``grid/*.json`` or any ``grid*.json``."""
    docs = project / "docs"
    found = [p for p in docs.rglob("*.json") if "grid" in p.relative_to(docs).as_posix()] if docs.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


GRID_SYMBOL = {"pass": "✓", "partial": "◐", "fail": "✗", "n/a": "n/a"}
GRID_CLASS = {"pass": "ok", "partial": "partial", "fail": "fail", "n/a": "skip"}


def grid_matrix(data: dict[str, Any]) -> str:
    """The grid as ``layercake grid --json`` writes it: servers down, layers across (six
    columns fit 1280 px where thirteen servers across did not), then every failed case
    with the registry's explanation (or "unexplained")."""
    cells = {(c["layer"], c["server"]): c for c in data["cells"]}
    servers = data.get("servers") or sorted({c["server"] for c in data["cells"]})
    layers = data.get("layers") or sorted({c["layer"] for c in data["cells"]})
    head = "".join(f"<th>{esc(la)}</th>" for la in layers)
    rows = []
    for server in servers:
        tds = []
        for layer in layers:
            cell = cells.get((layer, server))
            if cell is None:
                tds.append('<td class="skip">—</td>')
                continue
            status = str(cell.get("status", ""))
            text = GRID_SYMBOL.get(status, status)
            if cell.get("total"):
                text += f" {cell.get('passed', 0)}/{cell['total']}"
            bridge = f'<br><span class="note">via {esc(cell["bridge"])}</span>' if cell.get("bridge") else ""
            title = esc(cell.get("reason") or cell.get("native_command") or "")
            tds.append(f'<td class="{GRID_CLASS.get(status, "")}" title="{title}">{esc(text)}{bridge}</td>')
        rows.append(f"<tr><th>{esc(server)}</th>{''.join(tds)}</tr>")
    failures = []
    for cell in data["cells"]:
        for failure in cell.get("failures") or []:
            known = failure.get("known")
            why = esc(known) if known else '<span class="missing">unexplained</span>'
            failures.append(
                f"<tr><td>{esc(cell['layer'])}</td><td>{esc(cell['server'])}</td>"
                f"<td>{esc(failure.get('case', ''))}</td><td>{esc(failure.get('detail', ''))}</td>"
                f"<td>{why}</td></tr>"
            )
        if cell.get("status") in ("fail", "n/a") and cell.get("reason") and not cell.get("failures"):
            failures.append(
                f"<tr><td>{esc(cell['layer'])}</td><td>{esc(cell['server'])}</td><td>—</td>"
                f"<td>{esc(str(cell['reason']).splitlines()[0])}</td><td></td></tr>"
            )
    out = (
        f'<table class="grid matrix"><thead><tr><th>server ↓ · layer →</th>{head}</tr></thead><tbody>'
        + "\n".join(rows)
        + '</tbody></table>\n<p class="note">✓ the whole contract · ◐ part of it · ✗ failed or did not start · '
        "n/a not installed. Hover a cell for the command or the reason.</p>"
    )
    if failures:
        out += (
            '<h2>What fails where, and why</h2>\n<table class="grid why"><thead><tr><th>layer</th><th>server</th>'
            "<th>case</th><th>what the contract saw</th><th>why (from the registry)</th></tr></thead><tbody>"
            + "\n".join(failures)
            + "</tbody></table>"
        )
    return out


def _cell_class(value: Any) -> str:
    text = str(value).lower()
    if value is True or text in ("ok", "pass", "passed", "yes", "✓"):
        return "ok"
    if value is False or text.startswith(("fail", "error", "no")):
        return "fail"
    if value is None or text.startswith(("skip", "n/a", "unavailable", "missing")):
        return "skip"
    return ""


def grid_table(data: Any) -> str:
    """A table from grid JSON: a list of records (one row each) or {"rows": [...]} / {"cells": [...]}."""
    rows = data
    if isinstance(data, dict):
        rows = data.get("rows") or data.get("cells") or data.get("results") or []
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return f"<pre>{esc(json.dumps(data, indent=2)[:20000])}</pre>"
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            shown = value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value)
            cells.append(f'<td class="{_cell_class(value)}">{esc("" if shown is None else shown)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>' + "\n".join(body) + "</tbody></table>"


def write_grid(site: Site, project: Path) -> None:
    source = _grid_source(project)
    parts = [
        "<h1>Compatibility grid</h1>",
        '<p class="lede">Every layer on every server: does the contract hold, natively or through a bridge?</p>',
    ]
    if source is None:
        parts.append("<p>" + missing("not generated yet", "layercake grid --json > docs/grid.json") + "</p>")
        site.report.notes.append("no grid results: run `layercake grid --json > docs/grid.json`")
    else:
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except ValueError as exc:
            parts.append(f'<p class="missing">{esc(source.name)} is not valid JSON: {esc(exc)}</p>')
        else:
            env = data.get("environment", {}) if isinstance(data, dict) else {}
            when = (env.get("when") if isinstance(env, dict) else None) or (
                data.get("measured_at") if isinstance(data, dict) else None
            )
            parts.append(
                f'<p class="note">From <code>{esc(source.relative_to(project))}</code>'
                f"{', run ' + esc(when) if when else ''}.</p>"
            )
            if (
                isinstance(data, dict)
                and isinstance(data.get("cells"), list)
                and all(isinstance(c, dict) and "layer" in c and "server" in c for c in data["cells"])
            ):
                parts.append(grid_matrix(data))
            else:
                parts.append(grid_table(data))
    site.write("grid.html", "Compatibility grid", "\n".join(parts), "grid.html")


def trace_name(layer: str, method: str, path: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"
    return f"{layer}-{method.lower()}-{slug}"


TraceRecorder = Callable[[str, str, str, str | None, Path], None]


def trace_page(site: Site, trace: Any, out: Path) -> None:
    """One trace as a page of the site: its navigation and stylesheet around the trace's body
    (the timeline, the flame chart, then every step), and a way back to the other traces."""
    from layercake.trace.flame import chrome_trace
    from layercake.trace.render import trace_body, trace_title

    # The same call tree for the viewer people already know: Perfetto or chrome://tracing.
    events = out.with_suffix(".trace.json")
    events.parent.mkdir(parents=True, exist_ok=True)
    events.write_text(json.dumps(chrome_trace(trace)), encoding="utf-8")
    site.report.written.append(events)
    back = (
        '<p class="note"><a href="index.html">← all traces</a> · the same request on every rung, or '
        f"<code>layercake trace {esc(trace.layer)} {esc(trace.method)} {esc(trace.path)}</code> in a terminal"
        f' · <a href="{esc(events.name)}">the call tree as a Trace Event file</a> (open it at ui.perfetto.dev '
        "or in chrome://tracing)</p>"
    )
    site.write(
        f"traces/{out.name}",
        trace_title(trace),
        f"<h1>{esc(trace_title(trace))}</h1>{back}{trace_body(trace)}",
        "traces/index.html",
    )


def _recorder(site: Site) -> TraceRecorder | None:
    """The trace package's recorder, when it exists: run the layer on its default server
    (ours), send the request, and write the trace as a page of the site."""
    try:
        from layercake.trace.run import trace
    except ImportError:
        return None

    def record(layer: str, method: str, path: str, body: str | None, out: Path) -> None:
        trace_page(site, trace(layer, None, method, path, body=(body or "").encode()), out)

    return record


def write_traces(
    site: Site,
    project: Path,
    enabled: bool,
    budget: float = TRACE_BUDGET,
    recorder: TraceRecorder | None = None,
    log: Callable[[str], None] = lambda _m: None,
    layers: list[str] | None = None,
) -> None:
    from layers import LAYERS

    out = site.out / "traces"
    out.mkdir(parents=True, exist_ok=True)
    recorder = recorder if recorder is not None else (_recorder(site) if enabled else None)
    saved = project / "docs" / "traces"
    deadline = time.monotonic() + budget
    rows = []
    for layer in LAYERS.values():
        if layers is not None and layer.name not in layers:
            continue
        cells = []
        for method, path, body in TRACED:
            name = trace_name(layer.name, method, path)
            target = out / f"{name}.html"
            have = False
            if (
                recorder is not None
                and (project / "layers" / layer.name / "app.py").exists()
                and time.monotonic() < deadline
            ):
                try:
                    log(f"tracing {method} {path} on {layer.name}")
                    recorder(layer.name, method, path, body, target)
                    have = target.exists()
                except Exception as exc:  # a failed trace is a note on the page, not a failed build
                    site.report.notes.append(f"trace {name} failed: {exc}")
            if not have and (saved / f"{name}.json").is_file():  # `layercake trace ... --json`: drawn here
                from layercake.trace.model import Trace

                trace_page(site, Trace.load(saved / f"{name}.json"), target)
                have = True
            if not have and (saved / f"{name}.html").is_file():
                shutil.copyfile(saved / f"{name}.html", target)
                have = True
            if have:
                if target not in site.report.written:
                    site.report.written.append(target)
                cells.append(f'<td><a href="{esc(name)}.html">{esc(method)} {esc(path)}</a></td>')
            else:
                cells.append(
                    f"<td>{missing('not traced yet', f'layercake trace {layer.name} {method} {path} --json docs/traces/{name}.json')}</td>"
                )
        rows.append(f'<tr><td class="name">{esc(layer.name)}</td>' + "".join(cells) + "</tr>")
    if not any("href" in row for row in rows):
        site.report.notes.append(
            "no traces: skipped (--no-traces) and none saved in docs/traces/"
            if not enabled
            else "no traces: the trace package or the layers are not there yet"
        )
    heads = "".join(f"<th>{esc(m)} {esc(p)}</th>" for m, p, _ in TRACED)
    body = (
        '<h1>Traces</h1>\n<p class="lede">One real request followed from the bytes on the socket through the '
        "server, the interface and the framework to the handler and back, every step labelled by the layer that "
        "did it.</p>\n"
        f'<table class="ladder"><thead><tr><th>layer</th>{heads}</tr></thead><tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>"
    )
    site.write("traces/index.html", "Traces", body, "traces/index.html")


def write_docs(site: Site, project: Path) -> None:
    """One page per project document (README, CONTRACT, servers/README, docs/*.md)."""
    rows = []
    for path, page in doc_pages(project).items():
        text = path.read_text(encoding="utf-8")
        title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("# ")), path.name)
        body = relink(prose_html(text), path, page, project, site.out)
        site.write(page, title, f'<div class="report">{body}</div>', "docs/index.html")
        rows.append(
            f'<li><a href="{esc(page.removeprefix("docs/"))}">{esc(title)}</a> '
            f'<span class="note">{esc(path.relative_to(project).as_posix())}</span></li>'
        )
    body = (
        "<h1>Docs</h1>\n<p class=\"lede\">The project's own documents; each layer's README is folded on its "
        "source page.</p>\n<ul>" + "\n".join(rows) + "</ul>"
    )
    site.write("docs/index.html", "Docs", body, "docs/index.html")


# --- Putting it together ---


def _trace_css() -> str:
    """The trace pages' styles and the package colours (one palette, trace/packages.py), if the trace package exists."""
    try:
        from layercake.trace.render import TRACE_CSS, package_css
    except ImportError:
        return ""
    return "\n/* --- trace pages (layercake/trace/render.py) --- */\n" + TRACE_CSS + package_css()


def _commit(project: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(project), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def build_site(
    out: Path | str = "site",
    *,
    project: Path = PROJECT,
    figures: Figures | None = None,
    traces: bool = True,
    trace_budget: float = TRACE_BUDGET,
    recorder: TraceRecorder | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> BuildReport:
    """Write the whole site into ``out``; what was written and what is missing."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = BuildReport(out)
    figures = figures if figures is not None else load_figures(project / "docs" / "bench")
    built_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    site = Site(out, report, built_at, _commit(project))

    css = STYLESHEET.read_text(encoding="utf-8")
    css += "\n/* --- pygments (" + PYGMENTS_STYLE + ") --- */\n"
    css += HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs(".highlight") + "\n"
    css += _trace_css()
    (out / "style.css").write_text(css, encoding="utf-8")
    report.written.append(out / "style.css")

    log("annotated source")
    sources = [parse(path) for path in annotated_files(project)]
    for source in sources:
        write_source_page(site, source, project, figures)
    write_source_index(site, sources, project)
    log("side by side")
    pairs = diff_pairs(project)
    for a, b, path_a, path_b in pairs:
        write_diff_page(site, a, b, path_a, path_b, project)
    write_diff_index(site, pairs)
    log("the ladder")
    write_index(site, project, figures, pairs)
    if figures.empty:
        report.notes.append(
            f"no benchmark figures: run `{HOW_TO_MEASURE['in_process']}` and `{HOW_TO_MEASURE['ladder']}`"
        )
    log("benchmarks and grid")
    write_bench(site, project / "docs" / "bench", project, project / "docs" / "bench.md")
    write_grid(site, project)
    write_autobahn(site, project)
    write_docs(site, project)
    from layercake.site.anatomy import write_anatomy  # noqa: PLC0415 -- it imports this module

    write_anatomy(site, project)
    write_traces(site, project, traces, trace_budget, recorder, log)
    report.seconds = time.perf_counter() - started
    return report
