"""The site's anatomy pages: for each registered ladder, the waterfall, the table, and each step's code.

Theory of operation
-------------------
``anatomy/<layer>.html`` joins two sources.  The figures come from the committed run,
``docs/anatomy/<layer>.json`` (written by ``layercake anatomy LAYER --out docs/anatomy``),
and its chart ``docs/anatomy/<layer>.png``; nothing is measured at build time.  The code
comes from the ladder itself (:func:`layercake.anatomy.ladders`), read when the site is
built: for each step its docstring, and the lines that step changes in the variant's
function -- a diff against the step before, so the page shows the few lines a feature
takes -- each linked to its line on the annotated source page.  A ladder with no
committed run still gets its page, with the steps and their code, and says how to
measure it.

``anatomy/index.html`` lists the ladders with each one's headline.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from layercake.anatomy import where_calls_go
from layercake.site.build import Site, esc, missing, prose_html, source_page

HOW_TO_MEASURE = "layercake anatomy {layer} --out docs/anatomy"


def step_changes(
    before: list[tuple[int, str]] | None, after: list[tuple[int, str]]
) -> list[tuple[str, int | None, str]]:
    """The lines a step changes: ``("+", line, text)`` added, ``("-", None, text)`` removed.

    Compared without indentation, so a block that only moved inward is not "changed".
    The first step (no ``before``) is all additions.
    """
    if before is None:
        return [("+", n, text) for n, text in after]
    a = [t.strip() for _, t in before]
    b = [t.strip() for _, t in after]
    out: list[tuple[str, int | None, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            out += [("-", None, before[i][1]) for i in range(i1, i2)]
        if op in ("replace", "insert"):
            out += [("+", after[j][0], after[j][1]) for j in range(j1, j2)]
    return out


_LEXER = PythonLexer(stripnl=False, ensurenl=False)
_FORMATTER = HtmlFormatter(nowrap=True)


def changes_html(changes: list[tuple[str, int | None, str]], source_href: str) -> str:
    """The changed lines, highlighted; each added line links to its line on the source page."""
    if not changes:
        return '<p class="note">No line of the function changes: the step is in what it calls or how it is built.</p>'
    width = min(len(t) - len(t.lstrip()) for _, _, t in changes if t.strip())
    rows = []
    for sign, number, text in changes:
        code = highlight(text[width:] + "\n", _LEXER, _FORMATTER).rstrip("\n")
        where = (
            f'<a class="ln" href="{esc(source_href)}#L-{number}">{number}</a>' if number else '<span class="ln"></span>'
        )
        rows.append(f'<span class="{"add" if sign == "+" else "del"}">{where}{esc(sign)} {code}</span>')
    return '<pre class="highlight anatomy-diff">' + "".join(rows) + "</pre>"  # the spans are blocks


def inline(text: str) -> str:
    """A step title for HTML: escaped, its `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def _num(value: float | int | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:+d}" if signed else f"{value:,d}"
    return f"{value:+.1f}" if signed else f"{value:,.1f}"


def table_html(doc: dict[str, Any]) -> str:
    server = doc["settings"].get("server")
    head = (
        "<tr><th>#</th><th>step</th><th>what it adds</th><th>best CPU µs</th><th>Δ µs</th><th>calls</th>"
        "<th>Δ calls</th><th>where Δ calls go</th><th>lines run</th><th>Δ lines</th>"
    )
    head += f"<th>req/s on {esc(server)}</th><th>p99 ms</th></tr>" if server else "</tr>"
    rows = []
    for r in doc["steps"]:
        name = f'<td class="name"><a href="#{esc(r["step"])}">{esc(r["step"])}</a></td><td class="what">{inline(r["title"])}</td>'
        if r.get("problem"):
            rows.append(
                f"<tr><td class=num>{r['index']}</td>{name}<td colspan=7>not measured: {esc(r['problem'])}</td></tr>"
            )
            continue
        c, d = r["counters"], r.get("delta") or {}
        exact = "" if r.get("exact", True) else "≈"
        cells = [
            _num((r.get("us_per_request") or {}).get("best")),
            _num(d.get("us"), True),
            f"{c['calls']:,}{exact}",
            _num(d.get("calls"), True),
            f"{c['lines']:,}",
            _num(d.get("lines"), True),
        ]
        if server:
            s = r.get("server") or {}
            p99 = s.get("p99_us")
            cells += [f"{s['rps']:,.0f}" if "rps" in s else "–", f"{p99 / 1000:.2f}" if p99 else "–"]
        numbers = [f"<td class=num>{x}</td>" for x in cells]
        numbers.insert(4, f'<td class="note">{esc(where_calls_go(r.get("delta")))}</td>')  # after Δ calls
        rows.append(f"<tr><td class=num>{r['index']}</td>{name}{''.join(numbers)}</tr>")
    return f'<table class="ladder">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table>"


def _load_run(docs: Path, layer: str) -> dict[str, Any] | None:
    path = docs / f"{layer}.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return doc if doc.get("kind") == "anatomy" else None


def write_anatomy(site: Site, project: Path, docs: Path | None = None) -> list[str]:
    """Every ladder's page and the index; the pages written.  ``docs``: where the runs are
    (default ``docs/anatomy`` of ``project``)."""
    from layercake.anatomy import get_ladder, ladders

    docs = docs if docs is not None else project / "docs" / "anatomy"
    out = site.out / "anatomy"
    out.mkdir(parents=True, exist_ok=True)
    pages, items = [], []
    for layer in ladders():
        ladder = get_ladder(layer)
        doc = _load_run(docs, layer)
        page = f"anatomy/{layer}.html"
        root = site.root(page)
        command = HOW_TO_MEASURE.format(layer=layer)
        req = ladder.request
        parts = [
            f"<h1>Anatomy of {esc(layer)}</h1>",
            f'<p class="lede">{esc(ladder.title)} Every step answers <code>{esc(req.method)} {esc(req.path)}</code> '
            f"with the body <code>{esc(req.body.decode())}</code> the same way, and adds one feature over the step "
            "above it; the code below each step is what it changes.</p>",
        ]
        if doc is None:
            parts.append(f"<p>{missing('not measured yet', command)}</p>")
            site.report.notes.append(f"no anatomy run for {layer}: run `{command}`")
        else:
            if doc.get("headline"):
                parts.append(f'<p class="headline"><strong>Headline.</strong> {esc(doc["headline"])}</p>')
            chart = docs / f"{layer}.png"
            if chart.is_file():
                shutil.copyfile(chart, out / chart.name)
                parts.append(
                    f'<figure><img src="{esc(chart.name)}" alt="waterfall: what each {esc(layer)} step adds">'
                    "<figcaption>Each bar starts where the step above ended and is as long as what the step "
                    "adds (CPU µs per request, in-process).</figcaption></figure>"
                )
            shutil.copyfile(docs / f"{layer}.json", out / f"{layer}.json")
            parts.append(table_html(doc))
            parts.append(
                f'<p class="note">Measured {esc(doc["measured_at"])} with <code>{esc(doc["command"])}</code>; '
                f"load average {esc(doc['environment'].get('loadavg_at_start'))}. CPU µs: the fastest batch, timed "
                "interleaved with the other steps (medians are in the JSON); calls and lines: one request, counted deterministically "
                "(≈: a worker thread takes part, the stdlib's calls vary by a few between runs). "
                f'Raw results: <a href="{esc(layer)}.json">{esc(layer)}.json</a>.</p>'
            )
        rows = {r["step"]: r for r in (doc or {}).get("steps", [])}
        previous = None
        for i, step in enumerate(ladder.steps, 1):
            path, first, _last = step.source
            href = f"{root}{source_page(path, project)}"
            code = step.code()
            rest = step.doc.split("\n\n", 1)[1] if "\n\n" in step.doc else ""
            r = rows.get(step.key)
            figure = ""
            if r and r.get("delta"):
                d = r["delta"]
                figure = f' <span class="note">{_num(d["us"], True)} µs, {_num(d["calls"], True)} calls</span>'
            parts.append(
                f'<section class="anatomy-step" id="{esc(step.key)}">'
                f"<h2>{i}. <code>{esc(step.key)}</code> — {inline(step.title)}{figure}</h2>"
                f"{prose_html(rest) if rest else ''}"
                f"{changes_html(step_changes(previous, code), href)}"
                f'<p class="note"><a href="{esc(href)}#L-{first}">{esc(path.relative_to(project).as_posix())}, '
                f"line {first}</a> · change: <code>{esc(step.change)}</code></p></section>"
            )
            previous = code
        site.write(page, f"Anatomy of {layer}", "\n".join(parts), "anatomy/index.html")
        pages.append(page)
        headline = esc(doc["headline"]) if doc and doc.get("headline") else missing("not measured yet", command)
        items.append(f'<li><a href="{esc(layer)}.html">{esc(layer)}</a> — {len(ladder.steps)} steps. {headline}</li>')
    body = (
        '<h1>Anatomy</h1>\n<p class="lede">What each feature of a framework costs one request: a ladder of '
        "small apps answering the same request, each one feature more than the one before "
        "(<code>layercake anatomy LAYER</code>).</p>\n<ul>" + "\n".join(items) + "</ul>"
    )
    site.write("anatomy/index.html", "Anatomy", body, "anatomy/index.html")
    return pages
