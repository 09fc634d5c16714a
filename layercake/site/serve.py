"""A static-file WSGI application, so ``layercake site --serve`` runs on our own server.

Theory of operation
-------------------
The site is plain files; serving them is the smallest honest WSGI application (PEP
3333): map ``PATH_INFO`` to a file under one root directory, answer it with
``Content-Type`` from :mod:`mimetypes` and a ``Content-Length``, and hand the open file
to the server's ``wsgi.file_wrapper`` when it offers one (PEP 3333, "Optional
Platform-Specific File Handling") so the server may stream it without copying.
``layercake site --serve`` runs this app on ``scratch-wsgi`` through the server
registry: the documentation is served by the code it documents.

The rules it keeps:

* **Only GET and HEAD** (RFC 9110 §9.3.1–9.3.2); anything else is 405 with ``Allow``
  (§15.5.6).  HEAD gets the GET headers and no body.
* **Never outside the root.**  The path is percent-decoded by the server already
  (PEP 3333: ``PATH_INFO`` is decoded), split on ``/``, and any ``..`` segment, empty
  drive or backslash is refused with 404 before the file system is touched; the
  resolved path must still lie under the root (symlinks are followed, then checked).
* **Directories** answer their ``index.html``; a directory URL without its trailing
  slash is redirected (301) so the page's relative links resolve (what Apache's
  ``mod_dir`` ``DirectorySlash`` does).

What it deliberately does not do: ranges, conditional requests (``ETag``,
``If-Modified-Since``), compression or directory listings -- a local site of a few
hundred kilobytes needs none of them.

The root comes from the ``LAYERCAKE_SITE`` environment variable, read when the module
is imported, because the server imports ``layercake.site.serve:app`` by name in its own
process (``ServerOptions.env`` passes it there); :func:`static_app` builds one for any
directory, which is what the tests use.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Types the site uses that some systems' mime.types lacks.
_TYPES = {
    ".css": "text/css",
    ".html": "text/html",
    ".js": "text/javascript",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".md": "text/markdown",
}


def _content_type(path: Path) -> str:
    kind = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind.endswith("json") else kind


def _simple(
    start_response: StartResponse,
    status: str,
    message: str,
    extra: list[tuple[str, str]] | None = None,
    head: bool = False,
) -> list[bytes]:
    body = message.encode("utf-8")
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *(extra or [])]
    )
    return [] if head else [body]


def static_app(root: Path | str) -> WSGIApp:
    """A WSGI app serving the files under ``root``."""
    base = Path(root).resolve()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return _simple(start_response, "405 Method Not Allowed", "Method Not Allowed\n", [("Allow", "GET, HEAD")])
        path_info = environ.get("PATH_INFO", "") or "/"
        parts = path_info.split("/")
        if any(p in ("..", ".") or "\\" in p or "\0" in p or ":" in p for p in parts):
            return _simple(start_response, "404 Not Found", "Not Found\n", head=head)
        target = base.joinpath(*[p for p in parts if p])
        try:
            target = target.resolve()
            target.relative_to(base)
        except (OSError, ValueError):
            return _simple(start_response, "404 Not Found", "Not Found\n", head=head)
        if target.is_dir():
            if not path_info.endswith("/"):
                location = environ.get("SCRIPT_NAME", "") + path_info + "/"
                return _simple(
                    start_response, "301 Moved Permanently", f"See {location}\n", [("Location", location)], head=head
                )
            target = target / "index.html"
        if not target.is_file():
            return _simple(start_response, "404 Not Found", "Not Found\n", head=head)
        size = target.stat().st_size
        start_response(
            "200 OK",
            [("Content-Type", _content_type(target)), ("Content-Length", str(size)), ("Cache-Control", "no-cache")],
        )
        if head:
            return []
        handle = target.open("rb")
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(handle, 64 * 1024)
        return _chunks(handle)

    return app


def _chunks(handle: Any) -> Iterable[bytes]:
    # A generator closes the file when the server calls close() on it (PEP 3333: the
    # server must call close() on the iterable if it has one), even mid-response.
    with handle:
        while chunk := handle.read(64 * 1024):
            yield chunk


def _app_from_environment() -> WSGIApp:
    root = os.environ.get("LAYERCAKE_SITE")
    if root:
        return static_app(root)

    def missing(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return _simple(
            start_response, "500 Internal Server Error", "LAYERCAKE_SITE is not set: run `layercake site --serve`\n"
        )

    return missing


# What ``layercake site --serve`` asks scratch-wsgi to import.
app = _app_from_environment()
