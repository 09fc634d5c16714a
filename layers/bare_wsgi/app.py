"""bare_wsgi: the whole contract (CONTRACT.md) as one PEP 3333 callable, by hand.

Theory of operation
-------------------
A WSGI application is a callable ``app(environ, start_response)`` (PEP 3333, "The
Application/Framework Side").  The server hands it ``environ``, a dict of CGI
variables (``REQUEST_METHOD``, ``PATH_INFO``, ``QUERY_STRING``, ``CONTENT_LENGTH``,
one ``HTTP_*`` key per request header) plus the ``wsgi.*`` keys, of which this file
uses ``wsgi.input`` (the request body, a file-like object) and the de facto
``wsgi.input_terminated``.  The application calls ``start_response(status, headers)``
once and returns an iterable of bytestrings: the body.  That is the whole interface,
and this file uses nothing else -- only the standard library and ``layers/shared``.

What a framework would do, done here by hand and in plain sight:

* routing: ``ROUTES`` is a table of path templates and the handler for each method;
  ``match`` walks it.  A path that matches no template is 404; a path that matches
  but not for this method is 405 with ``Allow`` (RFC 9110 §15.5.6: a 405 "MUST
  generate an Allow header field").
* request parsing: the path is re-decoded from latin-1 to UTF-8 (PEP 3333,
  "Unicode Issues": the server puts bytes in ``str`` as latin-1), the query string
  is split with ``urllib.parse``, headers are read back out of ``HTTP_*`` keys.
* the body: read from ``wsgi.input`` 64 KiB at a time, never past ``CONTENT_LENGTH``
  (PEP 3333: "the application should not attempt to read more data than is
  specified by the CONTENT_LENGTH variable"), see ``request_body``.
* responses: a handler returns ``(status, headers, body_iterable)``; ``app`` turns the
  status code into a status line and calls ``start_response``.  Header names and
  values are ``str`` and the body items are ``bytes`` (PEP 3333, "Unicode Issues").
* errors: handlers raise ``HTTPError`` or ``ValidationFailed``; any other exception
  is logged with its traceback and answered with a generic 500.

HEAD is not in the contract, but every framework above derives it from GET, so this
layer does too, by hand: the GET handler runs and its body is dropped (RFC 9110 §9.3.2;
PEP 3333 leaves that to the application, and wsgiref would send the body).

What it deliberately doesn't do: content negotiation,
``wsgi.file_wrapper``, the ``write()`` callable that ``start_response`` returns (a
PEP 3333 legacy for old frameworks: this app only returns iterables), and WebSocket:
WSGI has no way to hold a connection open, so ``/ws`` is a 404 here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import IO, Any
from urllib.parse import parse_qsl

from layers import get_layer
from layers.shared.introspect import json_safe
from layers.shared.pages import index_page
from layers.shared.store import open_store
from layers.shared.validation import (
    MAX_ECHO_BODY,
    MAX_ITEM_BODY,
    ValidationFailed,
    parse_item_id,
    parse_new_item,
    parse_page,
    parse_slow_ms,
    parse_stream_n,
)

LAYER = "bare_wsgi"

logger = logging.getLogger("layercake.layers.bare_wsgi")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
Reply = tuple[int, Headers, Iterable[bytes]]  # what every handler returns
Handler = Callable[..., Reply]

# How much of the request body one read asks for.  64 KiB is what Werkzeug's
# LimitedStream reads per call and uvicorn's flow-control high-water mark: big enough
# that a 16 MiB echo is 256 reads, small enough that a request holds little memory.
READ_SIZE = 64 * 1024


# --- Resources ---
# The store is opened here, at import, once per process: a WSGI server imports the
# application module before it serves anything, and WSGI has no startup or shutdown
# hook (no lifespan), so import time *is* startup.  Every handler reads this module
# global.  It is never closed: the process ending closes the in-memory database.
STORE = open_store()
STARTUP_COMPLETE = True  # opened above, before the first request could arrive

INDEX_PAGE = index_page(LAYER, get_layer(LAYER).description).encode("utf-8")


# --- Handlers ---
# The small by-hand tools every handler shares come first: building a response,
# reading the query string and the body.  A framework hides exactly these.


def json_reply(status: int, data: Any, headers: Headers | None = None) -> Reply:
    """A JSON response.  The encoding matches Starlette's JSONResponse (compact, UTF-8,
    no NaN), so every layer sends the same bytes for the same answer."""
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])], [body]


def text_reply(status: int, body: bytes, content_type: str) -> Reply:
    return status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], [body]


def query(environ: Environ) -> dict[str, str]:
    """The query string as name -> value.  A repeated name keeps its *last* value, as
    Starlette (and so FastAPI) does; blank values are kept, so ``?limit=`` is a 422 and
    not the default."""
    # QUERY_STRING holds the raw bytes of the target as latin-1 (PEP 3333); take the
    # bytes back and read them as UTF-8 before percent-decoding, as a browser meant them.
    raw = environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace")
    return dict(parse_qsl(raw, keep_blank_values=True, errors="replace"))


def content_length(environ: Environ) -> int | None:
    """``CONTENT_LENGTH`` as an int, or None when absent or empty (PEP 3333: it "may be
    empty or absent").  A value that is not digits is treated as absent: a conforming
    server has already answered such a request 400 (RFC 9112 §6.3)."""
    value = environ.get("CONTENT_LENGTH", "")
    return int(value) if value.isascii() and value.isdigit() else None


def request_body(environ: Environ, limit: int) -> Iterator[bytes]:
    """The request body as an iterator of chunks, refusing more than ``limit`` bytes.

    The declared length is checked *now*, before a byte is read: a 17 MiB upload with a
    Content-Length is refused without being received.  The body itself is read lazily,
    as the iterator is consumed; once more than ``limit`` bytes have arrived (possible
    only without a Content-Length), it raises ``HTTPError(413)``.  Who consumes it
    decides what that raise means: inside a handler it becomes a 413 response, handed
    to the server as a response body (``echo``) it aborts the response.
    """
    length = content_length(environ)
    if length is not None and length > limit:
        raise HTTPError(413)
    if length is None and not environ.get("wsgi.input_terminated"):
        # No length and no promise that the stream ends: PEP 3333 lets an application
        # treat an absent CONTENT_LENGTH as zero, and reading anyway could block on the
        # next request's bytes.  ``wsgi.input_terminated`` is the de facto extension
        # (mod_wsgi, gunicorn, Werkzeug's server) by which a server says its wsgi.input
        # returns EOF at the end of the body -- how a chunked upload reaches WSGI.
        return iter(())
    return _read_chunks(environ["wsgi.input"], length, limit)


def _read_chunks(stream: IO[bytes], length: int | None, limit: int) -> Iterator[bytes]:
    remaining = length  # None: read until EOF, which the server guarantees
    received = 0
    while remaining is None or remaining > 0:
        # read() always with a size: PEP 333 required one and wsgiref.validate still
        # refuses read() without it (PEP 3333 only says a server "should allow" that),
        # and a size is how we never read past CONTENT_LENGTH.
        chunk = stream.read(READ_SIZE if remaining is None else min(READ_SIZE, remaining))
        if not chunk:
            break  # the end of a terminated body, or a client that sent less than it said
        received += len(chunk)
        if received > limit:
            raise HTTPError(413)
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def index(environ: Environ) -> Reply:
    return text_reply(200, INDEX_PAGE, "text/html; charset=utf-8")


def plaintext(environ: Environ) -> Reply:
    return text_reply(200, b"Hello, World!", "text/plain; charset=utf-8")


def json_hello(environ: Environ) -> Reply:
    return json_reply(200, {"message": "Hello, World!"})


def get_item(environ: Environ, item_id: str) -> Reply:
    item = STORE.get(parse_item_id(item_id))
    if item is None:
        return json_reply(404, {"detail": "Item not found"})
    return json_reply(200, item)


def list_items(environ: Environ) -> Reply:
    limit, offset = parse_page(query(environ))
    items, total = STORE.list(limit, offset)
    return json_reply(200, {"items": items, "limit": limit, "offset": offset, "total": total})


def create_item(environ: Environ) -> Reply:
    # Consumed here, inside the handler: a body that grows past 1 MiB raises before
    # start_response is called, so the client gets a proper 413.
    body = b"".join(request_body(environ, MAX_ITEM_BODY))
    # The body is JSON only if Content-Type says so (see layers/shared/validation.py).
    item = STORE.create(**parse_new_item(body, environ.get("CONTENT_TYPE") or None))
    # The URL of the new item is relative to where the app is mounted: SCRIPT_NAME is
    # the mount point (empty at the root), PATH_INFO the rest (PEP 3333, environ).
    location = f"{environ.get('SCRIPT_NAME', '')}/items/{item['id']}"
    return json_reply(201, item, [("Location", location)])


def stream(environ: Environ) -> Reply:
    n = parse_stream_n(query(environ))

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            yield f"chunk {i}\n".encode("ascii")

    # A generator and no Content-Length: the server sends each chunk as it is yielded
    # (PEP 3333, "Buffering and Streaming": a server "must not delay the transmission of
    # any block"), with chunked encoding on HTTP/1.1.
    return 200, [("Content-Type", "text/plain; charset=utf-8")], chunks()


def echo(environ: Environ) -> Reply:
    # The body iterator *is* the response body: each 64 KiB read goes straight back
    # out, so memory per request stays one chunk whatever the upload's size.
    #
    # The 16 MiB limit, and the compromise it forces:
    # - with a Content-Length, request_body refuses an oversized upload here, before
    #   reading it and before the status line exists: a real 413;
    # - without one (a chunked upload), the size is known only by counting while
    #   streaming, and by then "200 OK" has gone out.  When the count passes 16 MiB
    #   the iterator raises and the server aborts the response: the client gets an
    #   incomplete body: on HTTP/1.1 it lacks the terminating chunk (RFC 9112 §8);
    #   only a close-delimited HTTP/1.0 response, like wsgiref's, cannot show it.
    #   RFC 9110 §15.5.14 lets a server refuse content that is too large by closing
    #   the connection; after the status, it is the only way.
    #   The alternative -- buffering chunked uploads up to 16 MiB to keep the 413 --
    #   would turn echo into store-and-forward and hold 16 MiB per request; the
    #   contract asks for a body "streamed back as it is read" and a huge upload
    #   "refused without being buffered", so this layer streams.
    return 200, [("Content-Type", "application/octet-stream")], request_body(environ, MAX_ECHO_BODY)


def headers(environ: Environ) -> Reply:
    # The server has already folded repeated headers into one value (PEP 3333 follows
    # CGI, RFC 3875 §4.1.18) and renamed each header to HTTP_<NAME> with "-" as "_";
    # undo the renaming.  Content-Type and Content-Length have CGI keys of their own.
    found: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key
        else:
            continue
        found[name.replace("_", "-").lower()] = value
    return json_reply(200, found)


def inspect_request(environ: Environ) -> Reply:
    return json_reply(200, {"layer": LAYER, "interface": "wsgi", "request": json_safe(environ)})


def slow(environ: Environ) -> Reply:
    ms = parse_slow_ms(query(environ))
    # Blocks this thread and uses no CPU: a threaded server serves others meanwhile,
    # a single-threaded one serves nobody -- which is what /slow is there to show.
    time.sleep(ms / 1000)
    return json_reply(200, {"slept_ms": ms})


def error(environ: Environ) -> Reply:
    raise RuntimeError("GET /error raises on purpose; this text must never reach the client")


def health(environ: Environ) -> Reply:
    return json_reply(200, {"status": "ok", "startup_complete": STARTUP_COMPLETE, "items": STORE.count()})


# --- Errors ---


class HTTPError(Exception):
    """An answer other than success, decided by the router or a handler.

    The body is ``{"detail": <the status's reason phrase>}`` -- "Not Found", "Method
    Not Allowed", "Request Entity Too Large" -- the same text Werkzeug's exceptions use.
    The ASGI layers say "Content Too Large" for 413, RFC 9110's name, which Starlette's
    body limit uses (and ``http.HTTPStatus`` from Python 3.13 on).
    """

    def __init__(self, status: int, headers: Headers | None = None) -> None:
        self.status = status
        self.detail = HTTPStatus(status).phrase
        self.headers = headers or []
        super().__init__(f"{status} {self.detail}")


def error_reply(exc: Exception, environ: Environ) -> Reply:
    """The response for an exception that escaped routing or a handler."""
    if isinstance(exc, HTTPError):
        return json_reply(exc.status, {"detail": exc.detail}, exc.headers)
    if isinstance(exc, ValidationFailed):
        return json_reply(422, exc.detail())
    # Anything else is a bug.  The traceback goes to the log; the client gets a generic
    # body, never the exception's text (it could hold paths, SQL or secrets).
    logger.error("unhandled exception in %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), exc_info=exc)
    return json_reply(500, {"detail": "Internal Server Error"})


# --- Application ---
# The routing table: path template -> {method: handler}.  "{name}" matches one
# non-empty path segment and is passed to the handler as a keyword argument, as a
# string: get_item validates it itself, so "/items/abc" is a 422 (as in FastAPI), not
# the 404 a typed route converter would give.
#
# There is no "/ws": a WebSocket handler needs the connection after the response,
# and a WSGI application only ever returns a body.  So "/ws" falls through to 404 --
# the ASGI layers have it (CONTRACT.md, item 14).
ROUTES: list[tuple[str, dict[str, Handler]]] = [
    ("/", {"GET": index}),
    ("/plaintext", {"GET": plaintext}),
    ("/json", {"GET": json_hello}),
    ("/items/{item_id}", {"GET": get_item}),
    ("/items", {"GET": list_items, "POST": create_item}),
    ("/stream", {"GET": stream}),
    ("/echo", {"POST": echo}),
    ("/headers", {"GET": headers}),
    ("/inspect", {"GET": inspect_request}),
    ("/slow", {"GET": slow}),
    ("/error", {"GET": error}),
    ("/health", {"GET": health}),
]

_COMPILED = [(template.split("/"), methods) for template, methods in ROUTES]


def match(path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
    """The methods of the first route whose template matches ``path``, and its parameters."""
    segments = path.split("/")
    for pattern, methods in _COMPILED:
        if len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern, segments, strict=True):
            if want.startswith("{"):
                if not got:
                    break  # "/items/" is not an item: a parameter is never empty
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            return methods, params
    return None


def allow(methods: dict[str, Handler]) -> str:
    """The Allow header of a 405: the route's methods, and HEAD wherever GET is."""
    return ", ".join([*methods, "HEAD"] if "GET" in methods else methods)


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI application (PEP 3333): route, call the handler, start the response."""
    method = environ["REQUEST_METHOD"]
    # PATH_INFO is already percent-decoded by the server, as latin-1 (PEP 3333); the
    # bytes were UTF-8 on the wire.  An empty PATH_INFO means the mount point itself.
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace") or "/"
    try:
        found = match(path)
        if found is None:
            raise HTTPError(404)
        methods, params = found
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            raise HTTPError(405, [("Allow", allow(methods))])
        status, headers, body = handler(environ, **params)
    except Exception as exc:
        status, headers, body = error_reply(exc, environ)
    if method == "HEAD":
        # RFC 9110 §9.3.2: the GET answer's status and headers (Content-Length
        # included) without its content.  A generator body is closed, never run.
        close = getattr(body, "close", None)
        if close is not None:
            close()
        body = []
    # PEP 3333: the status is a str, "<code> <reason>", and start_response only stores
    # the headers -- the server sends them with the first non-empty body chunk, so a
    # streaming body's first read happens before anything is on the wire.
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return body
