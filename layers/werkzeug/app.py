"""werkzeug: the contract on Werkzeug's Request, Response, routing.Map and exceptions.

Theory of operation
-------------------
This is still a plain WSGI callable (PEP 3333): ``LayercakeApp.__call__(environ,
start_response)``.  What Werkzeug adds over ``bare_wsgi`` is the *toolkit* a framework
is made of, each piece used here the way its documentation shows:

* ``werkzeug.wrappers.Request`` wraps the environ: ``request.args`` (the query,
  decoded), ``request.headers`` (the ``HTTP_*`` keys as a header mapping),
  ``request.content_length``, and ``request.stream`` -- ``wsgi.input`` already limited
  to ``CONTENT_LENGTH``, or left open when the server sets ``wsgi.input_terminated``,
  or empty when it has neither (the PEP 3333 rule ``bare_wsgi`` applies by hand).
* ``werkzeug.wrappers.Response`` is itself a WSGI application: calling
  ``response(environ, start_response)`` makes the status line, the header list and
  the ``Content-Length`` of a fixed body, and wraps the body so ``close()`` reaches it.
* ``werkzeug.routing.Map`` of ``Rule`` objects replaces the hand-walked table:
  ``map.bind_to_environ(environ).match()`` returns the endpoint and the path
  parameters, or raises ``NotFound`` or ``MethodNotAllowed`` (with ``Allow`` ready),
  and ``build()`` turns an endpoint back into a URL (``Location`` of a new item).
* ``werkzeug.exceptions``: every HTTP error is an exception that knows its status,
  name and headers; ``dispatch`` catches them and answers in the contract's JSON.

What Werkzeug deliberately leaves to us, and this file therefore does: the
application object (a small class, as in Werkzeug's own tutorial), where resources
live (an attribute of that object), JSON (by hand, as in every layer below FastAPI),
validation (``layers/shared/validation.py``) and what a 500 looks like.  There is no
app context, no ``g``, no decorators -- that is Flask, one rung up.  And no WebSocket:
WSGI cannot hold a connection, so ``/ws`` is a 404.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from layers import get_layer
from layers.shared.introspect import json_safe
from layers.shared.pages import index_page
from layers.shared.store import Store, open_store
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

LAYER = "werkzeug"

logger = logging.getLogger("layercake.layers.werkzeug")

# How much of the request body one read asks for: 64 KiB, what Werkzeug's own
# LimitedStream.readall() reads per call.
READ_SIZE = 64 * 1024


# --- Resources ---
# Werkzeug has no app context and no dependency injection: whoever holds the
# application object holds its resources.  So the store is an attribute of it,
# ``LayercakeApp.store``, opened in ``__init__`` -- which runs at import, when the
# module-level ``app`` below is built, since WSGI has no startup hook.  Handlers
# receive the application object and read ``app.store``.  It is never closed: the
# process ending closes the in-memory database.

INDEX_PAGE = index_page(LAYER, get_layer(LAYER).description)


# --- Handlers ---
# Every handler is ``handler(app, request, **path_parameters) -> Response``; the
# routing Map below names the handler function itself as each rule's endpoint.


def dumps(data: Any) -> str:
    """JSON by hand, encoded as Starlette's JSONResponse does (compact, UTF-8, no NaN),
    so every layer sends the same bytes for the same answer."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Response encodes the str as UTF-8 and adds the Content-Length.
    return Response(dumps(data), status=status, headers=headers, mimetype="application/json")


def query(request: Request) -> dict[str, str]:
    """``request.args`` as name -> value, keeping the *last* of a repeated name.

    ``request.args`` is a MultiDict whose ``args[name]`` is the *first* value;
    Starlette (so FastAPI) keeps the last, and the shared validator follows FastAPI.
    """
    return {name: values[-1] for name, values in request.args.lists()}


def request_body(request: Request, limit: int) -> Iterator[bytes]:
    """The body as an iterator of chunks: 413 now if the declared length is over
    ``limit``, 413 later (raised by the iterator) once more than ``limit`` arrived.

    Werkzeug has a knob for this, ``Request.max_content_length``, and it is right about
    a declared length.  For a body without one it wraps the stream in
    ``LimitedStream(is_max=True)``, which cannot tell "exactly the limit" from "more"
    without reading past the limit: ``get_data()`` silently truncates an oversized body
    and a read loop refuses a body of exactly the limit.  So the size is counted here.
    """
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    # request.stream is limited to Content-Length (never read past it, PEP 3333), or is
    # wsgi.input itself when the server terminates it, or empty when neither holds.
    return _read_chunks(request.stream, limit)


def _read_chunks(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    received = 0
    while chunk := stream.read(READ_SIZE):
        received += len(chunk)
        if received > limit:
            raise RequestEntityTooLarge()
        yield chunk


def index(app: LayercakeApp, request: Request) -> Response:
    return Response(INDEX_PAGE, mimetype="text/html")


def plaintext(app: LayercakeApp, request: Request) -> Response:
    return Response("Hello, World!", mimetype="text/plain")


def json_hello(app: LayercakeApp, request: Request) -> Response:
    return json_response({"message": "Hello, World!"})


def get_item(app: LayercakeApp, request: Request, item_id: str) -> Response:
    item = app.store.get(parse_item_id(item_id))
    if item is None:
        return json_response({"detail": "Item not found"}, 404)
    return json_response(item)


def list_items(app: LayercakeApp, request: Request) -> Response:
    limit, offset = parse_page(query(request))
    items, total = app.store.list(limit, offset)
    return json_response({"items": items, "limit": limit, "offset": offset, "total": total})


def create_item(app: LayercakeApp, request: Request) -> Response:
    # Consumed inside the handler, so a body that grows past 1 MiB is still a 413.
    body = b"".join(request_body(request, MAX_ITEM_BODY))
    item = app.store.create(**parse_new_item(body, request.content_type))
    # build() is the Map run backwards; bound to this environ it includes SCRIPT_NAME.
    location = app.url_map.bind_to_environ(request.environ).build(get_item, {"item_id": item["id"]})
    return json_response(item, 201, {"Location": location})


def stream(app: LayercakeApp, request: Request) -> Response:
    n = parse_stream_n(query(request))

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            yield f"chunk {i}\n".encode("ascii")

    # A generator is not a sequence, so Response sets no Content-Length and the server
    # sends each chunk as it comes (chunked encoding on HTTP/1.1).
    return Response(chunks(), mimetype="text/plain")


def echo(app: LayercakeApp, request: Request) -> Response:
    # The body iterator is the response body: each read goes straight back out.
    # A declared length over 16 MiB is a 413 here, before reading.  A chunked upload
    # that passes 16 MiB is found only while streaming, after "200 OK" went out: the
    # iterator raises RequestEntityTooLarge into the server, which aborts the response
    # (the client sees it incomplete).  Buffering up to 16 MiB to keep the 413 would
    # stop this being an echo; see bare_wsgi's echo for the whole argument.
    return Response(request_body(request, MAX_ECHO_BODY), mimetype="application/octet-stream")


def headers(app: LayercakeApp, request: Request) -> Response:
    # request.headers is EnvironHeaders: a live view of the HTTP_* keys (plus
    # CONTENT_TYPE and CONTENT_LENGTH), names given back in Title-Case.
    return json_response({name.lower(): value for name, value in request.headers.items()})


def inspect_request(app: LayercakeApp, request: Request) -> Response:
    return json_response({"layer": LAYER, "interface": "wsgi", "request": json_safe(request.environ)})


def slow(app: LayercakeApp, request: Request) -> Response:
    ms = parse_slow_ms(query(request))
    time.sleep(ms / 1000)  # blocks this worker thread, uses no CPU
    return json_response({"slept_ms": ms})


def error(app: LayercakeApp, request: Request) -> Response:
    raise RuntimeError("GET /error raises on purpose; this text must never reach the client")


def health(app: LayercakeApp, request: Request) -> Response:
    # The store was opened when the app object was built, at import: startup is done.
    return json_response({"status": "ok", "startup_complete": True, "items": app.store.count()})


# --- Errors ---


def http_error(exc: HTTPException) -> Response:
    """A Werkzeug HTTP exception in the contract's JSON: ``{"detail": <its name>}``.

    ``get_response()`` keeps the status and the headers the exception chose -- the
    ``Allow`` of a MethodNotAllowed -- and only the HTML body is replaced.
    """
    response = exc.get_response()
    response.set_data(dumps({"detail": exc.name}))
    response.mimetype = "application/json"
    return response


def validation_error(exc: ValidationFailed) -> Response:
    return json_response(exc.detail(), 422)


def internal_error(exc: Exception, request: Request) -> Response:
    # The traceback goes to the log; the client gets a generic body, never the text.
    logger.error("unhandled exception in %s %s", request.method, request.path, exc_info=exc)
    return http_error(InternalServerError())


# --- Application ---
# The routing table.  "<item_id>" uses the default converter (any one non-empty path
# segment) on purpose: "<int:item_id>" would answer 404 for "/items/abc", and the
# contract (following FastAPI) says 422 -- get_item validates the string itself.
# Werkzeug adds HEAD to every GET rule, so HEAD works and Allow lists it.
#
# There is no "/ws": a WebSocket handler needs the connection after the response, and
# a WSGI application only ever returns a body.  So "/ws" is a 404 here; the ASGI
# layers have it (CONTRACT.md, item 14).
URL_MAP = Map(
    [
        Rule("/", endpoint=index, methods=["GET"]),
        Rule("/plaintext", endpoint=plaintext, methods=["GET"]),
        Rule("/json", endpoint=json_hello, methods=["GET"]),
        Rule("/items/<item_id>", endpoint=get_item, methods=["GET"]),
        Rule("/items", endpoint=list_items, methods=["GET"]),
        Rule("/items", endpoint=create_item, methods=["POST"]),
        Rule("/stream", endpoint=stream, methods=["GET"]),
        Rule("/echo", endpoint=echo, methods=["POST"]),
        Rule("/headers", endpoint=headers, methods=["GET"]),
        Rule("/inspect", endpoint=inspect_request, methods=["GET"]),
        Rule("/slow", endpoint=slow, methods=["GET"]),
        Rule("/error", endpoint=error, methods=["GET"]),
        Rule("/health", endpoint=health, methods=["GET"]),
    ]
)


class LayercakeApp:
    """The application object: its resources, its URL map, and the WSGI callable."""

    def __init__(self) -> None:
        self.store: Store = open_store()  # the resource: see "Resources" above
        self.url_map = URL_MAP

    def dispatch(self, request: Request) -> Response:
        """Route the request, run the handler, turn exceptions into responses."""
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            handler, values = adapter.match()  # raises NotFound / MethodNotAllowed
            return handler(self, request, **values)
        except HTTPException as exc:
            return http_error(exc)
        except ValidationFailed as exc:
            return validation_error(exc)
        except Exception as exc:
            return internal_error(exc, request)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        # A Response is a WSGI application too: it calls start_response and returns
        # the body wrapped so that the server's close() reaches our generators.
        return response(environ, start_response)


app = LayercakeApp()
