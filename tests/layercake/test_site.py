"""layercake site: the static site's structure, its static-file server, and a real browser."""

from __future__ import annotations

import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import matplotlib.image as mpimg
import pytest

from layercake.figures import Cost, Figures, Throughput
from layercake.site import annotated_files, build_site, source_page, start_site_server
from layercake.site.build import BuildReport, Site, grid_table, write_bench, write_grid, write_traces
from layercake.site.screenshots import is_blank, take_screenshots
from layercake.site.serve import static_app
from layers import LAYERS

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.external: list[str] = []
        self.classes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                # A prose link to the web (a spec, a project) is fine offline; anything the
                # page loads (stylesheet, image, script) must come from the site itself.
                if tag == "a" and urlsplit(value).scheme in ("http", "https", "mailto"):
                    self.external.append(value)
                else:
                    self.links.append(value)
            if name == "class" and value:
                self.classes.extend(value.split())


def parsed(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def local_targets(site: Path, page: Path) -> list[Path]:
    """The files the links in ``page`` point at; anything loaded from elsewhere fails the test."""
    base = "file://" + str(page)
    out = []
    for link in parsed(page).links:
        parts = urlsplit(urljoin(base, link))
        assert parts.scheme == "file", f"{page.name} loads something from outside the site: {link}"
        out.append(Path(parts.path))
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildReport]:
    out = tmp_path_factory.mktemp("site")
    report = build_site(out, traces=False)
    return out, report


def test_builds_quickly_and_says_what_is_missing(site: tuple[Path, BuildReport]):
    out, report = site
    assert (out / "index.html").is_file() and (out / "style.css").is_file()
    assert report.pages >= 6
    assert report.seconds < 60


def test_every_link_from_every_page_exists(site: tuple[Path, BuildReport]):
    out, _ = site
    pages = sorted(out.rglob("*.html"))
    seen: set[Path] = set()
    todo = [out / "index.html"]
    while todo:  # crawl from the index: everything reachable exists
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for target in local_targets(out, page):
            assert target.exists(), f"{page.relative_to(out)} links to missing {target}"
            if target.suffix == ".html":
                todo.append(target)
    assert set(pages) <= seen | {p for p in pages if p.parent.name == "traces"}, "every page is reachable"


def test_every_annotated_file_has_a_page_with_code(site: tuple[Path, BuildReport]):
    out, _ = site
    files = annotated_files(PROJECT)
    assert any(p.name == "validation.py" for p in files)  # layers/shared, written first
    index_links = {t.resolve() for t in local_targets(out, out / "source" / "index.html")}
    for path in files:
        page = out / source_page(path, PROJECT)
        assert page.is_file(), f"no page for {path}"
        assert page.resolve() in index_links
        classes = parsed(page).classes
        assert "section" in classes and "prose" in classes and "code" in classes
        if parsed_code_lines(path):
            assert "highlight" in classes, f"{page} has no highlighted code block"


def parsed_code_lines(path: Path) -> int:
    from layercake.source import parse

    return parse(path).code_lines


def test_every_written_layer_is_on_the_ladder(site: tuple[Path, BuildReport]):
    out, _ = site
    html = (out / "index.html").read_text(encoding="utf-8")
    for layer in LAYERS.values():
        assert f">{layer.name}<" in html
        if layer.source.exists():
            assert source_page(layer.source, PROJECT) in html


def test_unmeasured_figures_are_said_plainly(tmp_path: Path):
    build_site(tmp_path, figures=Figures(), traces=False)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "not measured yet" in html and "layercake bench" in html


def test_measured_figures_are_quoted_with_their_origin(tmp_path: Path):
    figures = Figures(
        costs={"bare_wsgi": Cost("bare_wsgi", "json", 7.25, 4321, 99, {}, "2026-11-29 01:00 UTC", "docs/bench/a.json")},
        throughput=[
            Throughput(
                "bare_wsgi",
                "gunicorn",
                "plaintext",
                64,
                6789.0,
                measured_at="2026-11-29 01:05 UTC",
                origin="docs/bench/b.json",
            )
        ],
        origin="docs/bench/a.json",
        measured_at="2026-11-29 01:00 UTC",
        ladder_origin="docs/bench/b.json",
        ladder_measured_at="2026-11-29 01:05 UTC",
    )
    build_site(tmp_path, figures=figures, traces=False)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "4,321" in html and "7.2" in html and "6,789" in html
    assert "docs/bench/a.json" in html and "docs/bench/b.json" in html and "2026-11-29 01:05 UTC" in html


def test_the_index_shows_the_ladder_as_a_chart_before_any_table(tmp_path: Path):
    figures = Figures(
        costs={
            "bare_asgi": Cost("bare_asgi", "json", 4.5, 18, 77, {}, "2026-11-29T02:38:22Z", "docs/bench/a.json"),
            "fastapi": Cost("fastapi", "json", 35.0, 166, 480, {}, "2026-11-29T02:38:22Z", "docs/bench/a.json"),
        },
        throughput=[Throughput("fastapi", "uvicorn", "json", 64, 14289.0, 13644.0, 14352.0, origin="b.json")],
        origin="docs/bench/a.json",
        measured_at="2026-11-29T02:38:22Z",
        ladder_origin="docs/bench/b.json",
        ladder_measured_at="2026-11-29T02:39:13Z",
        environment={"cpu_model": "AMD EPYC", "usable_cpus": [0, 1]},
    )
    build_site(tmp_path, figures=figures, traces=False)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    chart = html[html.index("<svg") : html.index("</svg>")]
    assert html.index("<svg") < html.index("<table")  # shows before it tells
    bars = re.findall(r"<rect [^>]*width=\"([\d.]+)\"[^>]*><title>([^<]*)</title>", chart)
    widths = {title.split(":")[0].split(" on ")[0]: float(w) for w, title in bars}
    assert widths["fastapi"] > widths["bare_asgi"]  # bars in proportion to the figures
    assert widths["fastapi"] / widths["bare_asgi"] == pytest.approx(35.0 / 4.5, rel=0.01)
    assert "35.0 µs" in chart and "14.3k · uvicorn" in chart
    rungs = len(LAYERS)  # every rung gets a row; only two have µs and one has req/s here: no bar invented
    assert chart.count("not measured") == (rungs - 2) + (rungs - 1)
    caption = html[html.index("<figcaption>") : html.index("</figcaption>")]
    assert "docs/bench/a.json" in caption and "2026-11-29T02:39:13Z" in caption and "AMD EPYC, 2 CPUs" in caption
    from layercake.site.build import INTERFACE_COLOURS
    from layercake.trace.packages import contrast_ratio

    assert all(contrast_ratio(c) >= 4.5 for c in INTERFACE_COLOURS.values())  # bars and labels readable on white


def test_bench_charts_sit_beside_their_tables_with_captions(tmp_path: Path):
    bench = tmp_path / "bench-results"
    bench.mkdir()
    (bench / "ladder.md").write_text(
        "# Ladder\n\n## At a glance\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Every cell\n\n| c |\n|---|\n| 3 |\n"
    )
    for name in ("ladder-rps.png", "ladder-latency.png", "ladder-mystery-chart.png"):
        (bench / name).write_bytes(b"\x89PNG fake")
    site = _site(tmp_path / "out")
    write_bench(site, bench)
    html = (tmp_path / "out" / "bench" / "index.html").read_text(encoding="utf-8")
    pairs = re.findall(
        r'<div class="with-chart[^"]*"><div class="charts">(.*?)</div><div class="table">(.*?)</div></div>',
        html,
        re.DOTALL,
    )
    assert len(pairs) == 2
    (charts_a, table_a), (charts_b, table_b) = pairs
    assert 'src="ladder-rps.png"' in charts_a and "<td>1</td>" in table_a  # the glance table's chart
    assert 'src="ladder-mystery-chart.png"' in charts_a  # unknown: with its report's first table
    assert 'src="ladder-latency.png"' in charts_b and "<td>3</td>" in table_b
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert len(captions) == 3 and not any(c.endswith(".png") or c in ("ladder-rps", "ladder-latency") for c in captions)
    assert any("Requests per second" in c for c in captions) and any("mystery chart" in c for c in captions)


def test_grid_rows_are_servers_so_six_layer_columns_fit(tmp_path: Path):
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    shutil.copyfile(Path(__file__).parent / "fixtures" / "grid.json", project / "docs" / "grid.json")
    write_grid(_site(tmp_path / "out"), project)
    html = (tmp_path / "out" / "grid.html").read_text(encoding="utf-8")
    head = html[html.index("<thead>") : html.index("</thead>")]
    assert "<th>bare_wsgi</th>" in head and "scratch-asgi" not in head
    assert "<tr><th>scratch-asgi</th>" in html


def test_side_by_side_marks_the_lines_that_differ(tmp_path: Path):
    from layercake.site.build import differing_lines
    from layercake.source import Block, Line, Section

    def block(*texts: str) -> Block:
        lines = [Line(i + 1, t) for i, t in enumerate(texts)]
        return Block("k", [Section(prose="", code=lines, heading=None)])

    left, right = block("x = 1", "", "    y = 2", "return x"), block("x = 1", "y = 2", "z = 3", "return x")
    assert differing_lines(left, right) == (set(), {3})  # indentation is not a difference; blank lines never are
    assert differing_lines(None, right) == (set(), {1, 2, 3, 4})
    site = _site(tmp_path)
    from layercake.site.build import write_diff_page

    write_diff_page(
        site, "werkzeug", "flask", PROJECT / "layers/werkzeug/app.py", PROJECT / "layers/flask/app.py", PROJECT
    )
    html = (tmp_path / "diff" / "werkzeug--flask.html").read_text(encoding="utf-8")
    assert html.count('class="hll"') > 10 and "lines differ" in html
    assert "from flask import" in re.sub(r"<[^>]+>", "", "".join(re.findall(r'<span class="hll">.*?\n', html)))


def _scratch_wsgi_reason() -> str | None:
    if not (PROJECT / "servers" / "scratch_wsgi.py").exists():
        return "servers/scratch_wsgi.py is not written yet"
    return None


def _site(tmp_path: Path) -> Site:
    return Site(tmp_path, BuildReport(tmp_path), "now", "abc1234")


def test_bench_page_shows_the_report_and_its_charts(tmp_path: Path):
    bench = tmp_path / "bench-results"
    bench.mkdir()
    (bench / "ladder.md").write_text(
        "# Ladder\n\n| layer | req/s |\n|---|---|\n| flask | 1 |\n\n![ladder](ladder.png)\n"
    )
    (bench / "ladder.png").write_bytes(b"\x89PNG fake")
    (bench / "latency.png").write_bytes(b"\x89PNG fake")
    site = _site(tmp_path / "out")
    write_bench(site, bench)
    page = tmp_path / "out" / "bench" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert "<table>" in html and 'src="ladder.png"' in html and 'src="latency.png"' in html
    for target in local_targets(tmp_path / "out", page):
        if target.parent == page.parent:  # the report's own files (nav links need the whole site)
            assert target.exists()


def test_relink_points_project_links_at_site_pages(tmp_path: Path):
    from layercake.site.build import relink

    doc = PROJECT / "layers" / "flask" / "README.md"
    html = (
        '<p><a href="app.py#create_item">app</a> <a href="../../CONTRACT.md">contract</a> '
        '<a href="../../pyproject.toml">pyproject</a> <a href="../werkzeug/README.md">below</a> '
        '<a href="https://peps.python.org/pep-3333/">PEP 3333</a> <a href="#here">here</a>'
        '<img alt="shot" src="../../docs/screenshots/site-index.png"></p>'
    )
    out = relink(html, doc, "source/layers/flask/app.py.html", PROJECT, tmp_path)
    assert '<a href="../../../source/layers/flask/app.py.html#create_item">app</a>' in out
    assert '<a href="../../../docs/CONTRACT.html">contract</a>' in out
    assert '<a href="../../../source/layers/werkzeug/app.py.html">below</a>' in out  # a README lives on its page
    assert "pyproject" in out and "pyproject.toml" not in out  # no page for it: text kept, link dropped
    assert 'href="https://peps.python.org/pep-3333/"' in out and 'href="#here"' in out
    assert 'src="../../../files/docs/screenshots/site-index.png"' in out
    assert (tmp_path / "files" / "docs" / "screenshots" / "site-index.png").is_file()


def test_project_documents_have_pages(site: tuple[Path, BuildReport]):
    out, _ = site
    from layercake.site.build import doc_pages

    pages = doc_pages(PROJECT)
    assert PROJECT.joinpath("CONTRACT.md").resolve() in pages
    for page in pages.values():
        assert (out / page).is_file()
        assert "<h1" in (out / page).read_text(encoding="utf-8")


def test_grid_table_from_records():
    html = grid_table(
        [
            {"layer": "flask", "server": "uvicorn", "result": "pass"},
            {"layer": "flask", "server": "waitress", "result": "fail: 3 cases"},
        ]
    )
    assert html.count("<tr>") == 3 and 'class="ok"' in html and 'class="fail"' in html


def test_grid_page_from_layercake_grid_json(tmp_path: Path):
    # fixtures/grid.json is real `layercake grid --json` output (two layers, three servers).
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    shutil.copyfile(Path(__file__).parent / "fixtures" / "grid.json", project / "docs" / "grid.json")
    site = _site(tmp_path / "out")
    write_grid(site, project)
    html = (tmp_path / "out" / "grid.html").read_text(encoding="utf-8")
    assert "<th>bare_wsgi</th>" in html and "<th>scratch-asgi</th>" in html
    assert "✓ 23/23" in html and "via wsgi-&gt;asgi" in html
    assert "What fails where, and why" in html and "unexplained" in html


def test_grid_page_says_when_there_is_no_grid(tmp_path: Path):
    site = _site(tmp_path / "out")
    write_grid(site, tmp_path)
    html = (tmp_path / "out" / "grid.html").read_text(encoding="utf-8")
    assert "not generated yet" in html and "layercake grid --json" in html


def test_trace_pages_come_from_the_recorder(tmp_path: Path):
    calls = []

    def recorder(layer: str, method: str, path: str, body: str | None, out: Path) -> None:
        calls.append((layer, method, path))
        out.write_text(f"<html>{layer} {method} {path}</html>")

    site = _site(tmp_path)
    write_traces(site, PROJECT, True, recorder=recorder)
    written = [la.name for la in LAYERS.values() if la.source.exists()]
    assert {c[0] for c in calls} == set(written)
    assert ("GET", "/json") in {(m, p) for _, m, p in calls} and ("POST", "/items") in {(m, p) for _, m, p in calls}
    linked = [
        t
        for t in local_targets(tmp_path, tmp_path / "traces" / "index.html")
        if t.parent.name == "traces" and t.name != "index.html"
    ]
    assert len(linked) == len(calls) and all(t.exists() for t in linked)


@pytest.mark.skipif(_scratch_wsgi_reason() is not None, reason=str(_scratch_wsgi_reason()))
def test_real_trace_pages_for_one_layer(tmp_path: Path):
    site = _site(tmp_path)
    write_traces(site, PROJECT, True, layers=["bare_wsgi"])
    for name in ("bare_wsgi-get-json", "bare_wsgi-post-items"):
        html = (tmp_path / "traces" / f"{name}.html").read_text(encoding="utf-8")
        assert "Request bytes" in html and "Response bytes" in html and "← all traces" in html
        # the site's own frame: its navigation and stylesheet, no page-private styles
        assert '<header class="top">' in html and 'href="../style.css"' in html and "<style" not in html
        assert html.index("class='wf'") < html.index("<svg") < html.index("Request bytes")  # pictures first
    assert "201 Created" in (tmp_path / "traces" / "bare_wsgi-post-items.html").read_text(encoding="utf-8")


def test_a_saved_trace_is_drawn_in_the_site_layout(tmp_path: Path):
    from layercake.trace.model import Trace

    sample = Path(__file__).parent / "fixtures" / "trace-bare_wsgi-get-json.json"
    project = tmp_path / "project"
    (project / "docs" / "traces").mkdir(parents=True)
    shutil.copyfile(sample, project / "docs" / "traces" / "bare_wsgi-get-json.json")
    (project / "layers").mkdir()
    write_traces(_site(tmp_path / "out"), project, False)
    html = (tmp_path / "out" / "traces" / "bare_wsgi-get-json.html").read_text(encoding="utf-8")
    assert '<header class="top">' in html and "<svg" in html and Trace.load(sample).path in html
    events = json.loads((tmp_path / "out" / "traces" / "bare_wsgi-get-json.trace.json").read_text(encoding="utf-8"))
    assert 'href="bare_wsgi-get-json.trace.json"' in html and any(e["ph"] == "X" for e in events["traceEvents"])


# --- The static-file app ---


def call(app, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    got: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(
        app(
            {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "wsgi.input": io.BytesIO()}, start_response
        )
    )
    return got["status"], got["headers"], body  # type: ignore[return-value]


def test_static_app_serves_files_and_refuses_the_rest(tmp_path: Path):
    (tmp_path / "index.html").write_text("<p>hi</p>")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_text("sub")
    (tmp_path.parent / "secret.txt").write_text("no")
    app = static_app(tmp_path)
    status, headers, body = call(app, "/")
    assert status == "200 OK" and body == b"<p>hi</p>" and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Length"] == str(len(body))
    assert call(app, "/sub")[0].startswith("301") and call(app, "/sub")[1]["Location"] == "/sub/"
    assert call(app, "/sub/")[2] == b"sub"
    assert call(app, "/../secret.txt")[0].startswith("404")
    assert call(app, "/nope.html")[0].startswith("404")
    status, headers, body = call(app, "/index.html", "HEAD")
    assert status == "200 OK" and body == b"" and headers["Content-Length"] == "9"
    status, headers, _ = call(app, "/", "POST")
    assert status.startswith("405") and headers["Allow"] == "GET, HEAD"


# --- Served by our own server, seen by a real browser ---


@pytest.mark.skipif(_scratch_wsgi_reason() is not None, reason=str(_scratch_wsgi_reason()))
def test_site_served_on_scratch_wsgi(site: tuple[Path, BuildReport]):
    out, _ = site
    with start_site_server(out) as server:
        index = httpx.get(server.url + "/", timeout=10)
        assert index.status_code == 200 and "The ladder" in index.text
        css = httpx.get(server.url + "/style.css", timeout=10)
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert httpx.get(server.url + "/../../etc/passwd", timeout=10).status_code in (400, 404)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`)")
@pytest.mark.skipif(_scratch_wsgi_reason() is not None, reason=str(_scratch_wsgi_reason()))
def test_chromium_renders_the_index_and_a_source_page(site: tuple[Path, BuildReport], tmp_path: Path):
    out, _ = site
    source = source_page(annotated_files(PROJECT)[0], PROJECT)
    pngs = take_screenshots(out, tmp_path, {"index.png": "index.html", "source.png": source})
    for png in pngs:
        pixels = mpimg.imread(str(png))
        assert pixels.shape[:2] == (900, 1280)
        assert not is_blank(png), f"{png.name} is blank"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`)")
@pytest.mark.skipif(_scratch_wsgi_reason() is not None, reason=str(_scratch_wsgi_reason()))
def test_pages_fit_1280_pixels(site: tuple[Path, BuildReport], tmp_path: Path):
    from layercake.site.screenshots import page_widths

    out, _ = site
    pages = ["index.html", "grid.html", "bench/index.html", "diff/werkzeug--flask.html"]
    widths = page_widths(out, pages)
    assert all(content == window for content, window in widths.values()), widths
    # the measure can fail: a page wider than the window is reported wider
    (out / "wide.html").write_text('<div style="width:2000px">wide</div>')
    try:
        content, window = page_widths(out, ["wide.html"])["wide.html"]
    finally:
        (out / "wide.html").unlink()
    assert content >= 2000 > window


def test_a_blank_picture_is_called_blank(tmp_path: Path):
    # The check above must be able to fail: a one-colour PNG is blank, a varied one is not.
    import numpy as np

    mpimg.imsave(tmp_path / "white.png", np.ones((90, 128, 3)))
    noise = np.random.default_rng(7).random((90, 128, 3))
    mpimg.imsave(tmp_path / "noise.png", noise)
    assert is_blank(tmp_path / "white.png") and not is_blank(tmp_path / "noise.png")
