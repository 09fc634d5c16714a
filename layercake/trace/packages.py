"""Which package a frame belongs to: the colours of a trace.

Theory of operation
-------------------
A trace is only readable if every frame says whose work it is: the server's, the
bridge's, the framework's, the layer's own handler, or the standard library's.  This
module answers that for a file path (Python frames) or a module name (C functions),
with a table and a handful of ordered rules -- first match wins:

0. a user's own app (``--app``: its top-level package or file, named by
   ``$LAYERCAKE_APP_ROOT``, see :mod:`layercake.apps`) is ``layer``, like a layer's code;
1. ``layercake/trace/`` is the tracer itself (shown, so it can be discounted);
2. ``servers/bridges.py`` and ``a2wsgi`` are the bridge;
3. ``servers/`` is our server, ``layers/<name>/`` and ``layers/shared/`` the layer;
4. inside site-packages, the top-level package name looks up :data:`SITE_PACKAGES`;
5. in the standard library, ``wsgiref`` and ``http/server.py`` are a server (the
   stdlib's), everything else is ``stdlib``; frozen modules (``<frozen ...>``) too;
6. anything else is ``other``.

C functions (profile ``c_call`` events) carry no file.  A builtin that belongs to no
module of its own (``len``, ``dict.get``, ``list.append``) is charged to its caller's
package, as most profilers' "by package" views do: ``isinstance`` called by Starlette
is Starlette's cost.  A C function of a named module is classified by that module
(``pydantic_core`` is pydantic, ``_socket`` is stdlib).

Colours: each package has a rich colour for the terminal and a CSS colour for the web
(:data:`WEB_COLOURS`).  The web colours are used both as text on the page's white and as
the fill behind white text in the flame chart, so each keeps a WCAG 2.x contrast ratio of
at least 4.5:1 against white (the "AA" level for body text, WCAG 2.2 §1.4.3), and every
two of them stay at least 20 apart in CIELAB (ΔE*76; about 2.3 is a just-noticeable
difference, so 20 is "another colour", not "another shade") -- Flask and Werkzeug used to
be two yellows at 1.8:1 and 2.6:1 that a reader could not tell apart.  ``tests`` check both.

What it deliberately doesn't do: guess from function names.  A path is the only
honest signal; a package we don't know falls into ``other`` rather than a wrong colour.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Package:
    name: str
    colour: str  # a rich colour name, for the terminal (the site uses WEB_COLOURS)
    description: str


#: Every package a trace can show, in the order a request meets them (the legend's order).
PACKAGES: tuple[Package, ...] = (
    Package("server", "bright_blue", "the HTTP server: ours (servers/) or a third-party one"),
    Package("h11", "blue", "the h11 HTTP/1.1 state machine (our servers, uvicorn --http h11, hypercorn)"),
    Package("bridge", "magenta", "a2wsgi and servers/bridges.py: one interface carried over the other"),
    Package("anyio", "bright_magenta", "anyio: the thread pool behind Starlette's run_in_threadpool"),
    Package("starlette", "cyan", "Starlette"),
    Package("fastapi", "green", "FastAPI"),
    Package("pydantic", "bright_green", "pydantic and pydantic-core"),
    Package("werkzeug", "dark_orange3", "Werkzeug"),
    Package("flask", "yellow", "Flask (and jinja2, itsdangerous, markupsafe, blinker)"),
    Package("django", "dark_green", "Django (and sqlparse)"),
    Package("asgiref", "orchid", "asgiref: Django's sync_to_async / async_to_sync thread hops"),
    Package("layer", "bright_red", "the layer's own code: layers/<name>/ and layers/shared/ (or your --app's)"),
    Package("stdlib", "white", "the Python standard library"),
    Package("trace", "bright_black", "the tracer itself: recording middleware and profiler"),
    Package("other", "grey50", "anything else"),
)
COLOURS: dict[str, str] = {p.name: p.colour for p in PACKAGES}

#: The site's colour for each package (and for packages a trace may add, such as Django):
#: at least 4.5:1 against white, and pairwise distinct (see the module docstring).
WEB_COLOURS: dict[str, str] = {
    "server": "#1f5fbf",
    "h11": "#5a4fcf",
    "bridge": "#8e24aa",
    "anyio": "#c2185b",
    "starlette": "#00796b",
    "fastapi": "#2e7d32",
    "pydantic": "#0277bd",
    "werkzeug": "#b34700",
    "flask": "#6b6b00",
    "django": "#0c4b33",
    "asgiref": "#9c2780",
    "layer": "#c62828",
    "stdlib": "#4a6272",
    "trace": "#7a5c7a",
    "other": "#6d4c41",
}
WEB_FALLBACK = "#4a4a4a"  # a package with no colour of its own: dark grey, 8.9:1


def web_colour(package: str) -> str:
    """The CSS colour of ``package`` on the site (dark grey for one without its own)."""
    return WEB_COLOURS.get(package, WEB_FALLBACK)


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a ``#rrggbb`` colour (sRGB, D65)."""
    r, g, b = (_linear(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str = "#ffffff") -> float:
    """WCAG 2.x contrast ratio between two colours, from 1 (none) to 21 (black on white)."""
    light, dark = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def cielab(colour: str) -> tuple[float, float, float]:
    """CIELAB (D65) coordinates of a ``#rrggbb`` colour."""
    r, g, b = (_linear(c) for c in _rgb(colour))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def colour_distance(a: str, b: str) -> float:
    """ΔE*76: the Euclidean distance of two colours in CIELAB."""
    return sum((p - q) ** 2 for p, q in zip(cielab(a), cielab(b), strict=True)) ** 0.5


#: site-packages top-level name -> package.
SITE_PACKAGES: dict[str, str] = {
    "uvicorn": "server",
    "uvicorn_worker": "server",
    "hypercorn": "server",
    "gunicorn": "server",
    "waitress": "server",
    "granian": "server",
    "httptools": "server",
    "uvloop": "server",
    "h11": "h11",
    "wsproto": "h11",
    "a2wsgi": "bridge",
    "anyio": "anyio",
    "sniffio": "anyio",
    "starlette": "starlette",
    "fastapi": "fastapi",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "annotated_types": "pydantic",
    "typing_extensions": "pydantic",
    "typing_inspection": "pydantic",
    "werkzeug": "werkzeug",
    "flask": "flask",
    "jinja2": "flask",
    "itsdangerous": "flask",
    "markupsafe": "flask",
    "blinker": "flask",
    "django": "django",
    "sqlparse": "django",
    "asgiref": "asgiref",
}

_STDLIB_DIRS = tuple(
    str(Path(p).resolve()) + "/" for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_STDLIB_SERVERS = ("wsgiref/", "http/server.py", "socketserver.py")
_SITE = "/site-packages/"
# A user's own app (--app): a directory ending in "/" or one file; set by layercake.apps.
_APP_ROOT = os.environ.get("LAYERCAKE_APP_ROOT", "")


@lru_cache(maxsize=4096)
def classify_file(filename: str) -> str:
    """The package of a Python source file (see the module docstring for the rules)."""
    if filename.startswith("<frozen"):
        return "stdlib"
    if filename.startswith("<"):  # "<string>": code generated by exec (dataclasses, namedtuple)
        return "other"
    path = str(Path(filename).resolve())
    if _APP_ROOT and (path == _APP_ROOT or (_APP_ROOT.endswith("/") and path.startswith(_APP_ROOT))):
        return "layer"
    if _SITE in path:
        top = path.split(_SITE, 1)[1].split("/", 1)[0]
        if top == "werkzeug" and path.endswith("/werkzeug/serving.py"):
            return "server"  # werkzeug's development server, not its request wrappers
        return SITE_PACKAGES.get(top.removesuffix(".py"), "other")
    repo = str(REPO) + "/"
    if path.startswith(repo):
        rel = path[len(repo) :]
        if rel.startswith("layercake/trace/"):
            return "trace"
        if rel == "servers/bridges.py":
            return "bridge"
        if rel.startswith("servers/"):
            return "server"
        if rel.startswith("layers/") and "/" in rel[len("layers/") :]:
            return "layer"
        return "other"
    for stdlib in _STDLIB_DIRS:
        if path.startswith(stdlib):
            rel = path[len(stdlib) :]
            return "server" if rel.startswith(_STDLIB_SERVERS) else "stdlib"
    return "other"


@lru_cache(maxsize=1024)
def classify_module(module: str | None) -> str | None:
    """The package of a C function's module; None: charge it to the caller."""
    if not module or module == "builtins":
        return None
    top = module.split(".", 1)[0]
    if top in SITE_PACKAGES:
        return SITE_PACKAGES[top]
    if top.lstrip("_") in sys.stdlib_module_names or top in sys.stdlib_module_names:
        return "stdlib"
    return "other"


def short_path(filename: str) -> str:
    """A path a reader recognises: relative to the repo, to site-packages or to the stdlib."""
    if filename.startswith("<"):
        return filename
    path = str(Path(filename).resolve())
    if _SITE in path:
        return path.split(_SITE, 1)[1]
    repo = str(REPO) + "/"
    if path.startswith(repo):
        return path[len(repo) :]
    for stdlib in _STDLIB_DIRS:
        if path.startswith(stdlib):
            return path[len(stdlib) :]
    return path
