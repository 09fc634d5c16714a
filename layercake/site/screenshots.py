"""Screenshots of the built site in a real browser: ``layercake site --screenshots DIR``.

Theory of operation
-------------------
The site is served by our own ``scratch-wsgi`` (:func:`layercake.site.start_site_server`)
on a free loopback port, and headless Chromium loads each page over HTTP and writes a
PNG -- the same path a reader's browser takes, so a page that only works from disk, or
a stylesheet the server mislabels, shows up as a wrong picture.  The README's
screenshots are made this way, and the site's browser test uses :func:`screenshot` and
:func:`is_blank` to check that pages render at all.

Chromium runs with a fresh, throw-away profile and every background service off
(no sync, no component updates, no QUIC), so it touches nothing but the loopback
server.  One quirk worth knowing: ``--screenshot`` captures before a URL's ``#fragment``
scroll is painted, so pages are shot from their top.

What it deliberately doesn't do: drive the page (no clicks, no scripts -- the site has
none) or compare pixels against a reference; a screenshot is checked only for not
being blank.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from layercake.errors import LayercakeError

WINDOW = (1280, 900)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# The pages the README and docs/screenshots/ show: the ladder (its chart first), one layer's
# annotated source, a trace (its timeline and flame chart), the benchmarks (charts beside tables)
# and a rung beside the one below it (the lines that differ marked).
README_PAGES: dict[str, str] = {
    "site-index.png": "index.html",
    "site-source-flask.png": "source/layers/flask/app.py.html",
    "site-trace-flask.png": "traces/flask-get-json.html",
    "site-bench.png": "bench/index.html",
    "site-diff-flask.png": "diff/werkzeug--flask.html",
}
# Taller windows where the picture worth showing is further down: the trace page's flame
# chart comes after its timeline, the benchmarks' second chart after the first table.
WINDOWS: dict[str, tuple[int, int]] = {
    "site-trace-flask.png": (1280, 1600),
    "site-bench.png": (1280, 1300),
}


def chromium() -> str | None:
    """The Chromium executable, if installed (Debian's package is ``chromium``)."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(url: str, png: Path, window: tuple[int, int] = WINDOW, timeout: float = 90.0) -> Path:
    """Load ``url`` in headless Chromium and write what it shows to ``png``."""
    browser = chromium()
    if browser is None:
        raise LayercakeError("screenshots need Chromium: apt-get install chromium")
    png.parent.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="layercake-chromium-"))
    try:
        done = subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={window[0]},{window[1]}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not png.is_file():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise LayercakeError(f"chromium wrote no screenshot of {url}:\n{tail}")
    return png


def is_blank(png: Path) -> bool:
    """True when the picture is (nearly) one colour: nothing was rendered."""
    import matplotlib.image as mpimg
    import numpy as np

    rgb = mpimg.imread(str(png))[..., :3]
    colours = np.unique((rgb.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    return float(rgb.std()) < 0.05 or len(colours) < 50


def take_screenshots(out: Path, dest: Path, pages: dict[str, str] | None = None) -> list[Path]:
    """Serve the site in ``out`` on scratch-wsgi and write a PNG of each page into ``dest``.

    A page the build did not write (a trace, with ``--no-traces``) is skipped: the PNGs
    returned are the ones made.
    """
    from layercake.site import start_site_server

    written = []
    with start_site_server(out) as server:
        for name, page in (pages or README_PAGES).items():
            if not (Path(out) / page).is_file():
                continue
            png = screenshot(f"{server.url}/{page}", dest / name, WINDOWS.get(name, WINDOW))
            if is_blank(png):
                raise LayercakeError(f"the screenshot of {page} is blank: the page did not render")
            written.append(png)
    return written


_MEASURE = "_layercake-measure.html"
_HARNESS = (
    "<!doctype html><html><body style='margin:0'><iframe id='f' src='/{page}' width='{width}' height='900' "
    "style='border:0'></iframe><pre id='out'>not loaded</pre><script>"
    "document.getElementById('f').onload = function () {{ var d = this.contentDocument.documentElement;"
    " document.getElementById('out').textContent = 'width=' + d.scrollWidth + '/' + d.clientWidth; }};"
    "</script></body></html>"
)
_MEASURED = re.compile(r"width=(\d+)/(\d+)")


def page_widths(out: Path, pages: list[str], width: int = WINDOW[0]) -> dict[str, tuple[int, int]]:
    """(content width, window width) of each page loaded ``width`` pixels wide in Chromium.

    A page fits when the two are equal: nothing sticks out sideways.  The site has no
    script, so the measuring is done from outside it: a throw-away page next to the site
    (same origin, so it may look inside) loads each page in an iframe of that width and
    writes ``scrollWidth`` into its own DOM, which ``--dump-dom`` prints.
    """
    from layercake.site import start_site_server

    browser = chromium()
    if browser is None:
        raise LayercakeError("measuring pages needs Chromium: apt-get install chromium")
    harness = Path(out) / _MEASURE
    found: dict[str, tuple[int, int]] = {}
    profile = Path(tempfile.mkdtemp(prefix="layercake-chromium-"))
    try:
        with start_site_server(out) as server:
            for page in pages:
                harness.write_text(_HARNESS.format(page=page, width=width), encoding="utf-8")
                done = subprocess.run(
                    [
                        browser,
                        *CHROMIUM_FLAGS,
                        f"--user-data-dir={profile}",
                        "--virtual-time-budget=5000",
                        "--dump-dom",
                        f"{server.url}/{_MEASURE}",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=90,
                    check=False,
                )
                match = _MEASURED.search(done.stdout)
                if match is None:
                    raise LayercakeError(f"chromium could not measure {page}")
                found[page] = (int(match.group(1)), int(match.group(2)))
    finally:
        harness.unlink(missing_ok=True)
        shutil.rmtree(profile, ignore_errors=True)
    return found
