"""The HTML page each layer answers at ``GET /`` (CONTRACT.md, item 1).

The page is built once per process from the layer registry, so the six layers serve
pages that differ only in the layer's own name and description.  Escaping uses the
standard library's ``html.escape``: the page holds no user input, but the habit costs
nothing.
"""

from __future__ import annotations

import html

ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/plaintext"),
    ("GET", "/json"),
    ("GET", "/items/1"),
    ("GET", "/items?limit=10&offset=0"),
    ("POST", "/items"),
    ("GET", "/stream?n=5"),
    ("POST", "/echo"),
    ("GET", "/headers"),
    ("GET", "/inspect"),
    ("GET", "/slow?ms=50"),
    ("GET", "/error"),
    ("GET", "/health"),
    ("WS", "/ws"),
)


def index_page(layer: str, description: str) -> str:
    """The small HTML index: the layer's name and a link to every contract route."""
    items = "\n".join(
        f'    <li><code>{m}</code> <a href="{html.escape(p)}">{html.escape(p)}</a></li>'
        if m == "GET"
        else f"    <li><code>{m}</code> {html.escape(p)}</li>"
        for m, p in ROUTES
    )
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>layercake: {html.escape(layer)}</title></head>\n<body>\n"
        f"  <h1>layercake &middot; {html.escape(layer)}</h1>\n"
        f"  <p>{html.escape(description)}</p>\n  <ul>\n{items}\n  </ul>\n</body>\n</html>\n"
    )
