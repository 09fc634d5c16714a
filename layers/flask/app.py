"""flask: the contract on Flask -- decorators, contexts, ``g`` and teardown, error handlers.

Theory of operation
-------------------
Flask is built on Werkzeug (the rung below): the same ``Request``/``Response``
wrappers, the same ``routing.Map`` and HTTP exceptions.  What it adds, and this file
uses the way Flask's documentation shows:

* the application object, ``Flask(__name__)``, which *is* the WSGI callable (PEP 3333):
  ``app(environ, start_response)`` calls ``app.wsgi_app``, which pushes a request
  context, dispatches, and pops the context again;
* routes declared by decorators (``@app.get``, ``@app.post``) beside their handlers:
  each adds a ``Rule`` to ``app.url_map``, the Map the Werkzeug layer builds by hand;
* context locals: ``request`` and ``g`` are module-level names that point at the
  current request's objects (``contextvars`` underneath), so handlers take only their
  path parameters as arguments;
* ``g`` and ``@app.teardown_appcontext`` for per-request resources -- the store here;
* ``@app.errorhandler`` functions, looked up by exception class, for 404, 405, 413,
  422 and 500, instead of Werkzeug's hand-written ``try``/``except`` in ``dispatch``;
* automatic ``HEAD`` and ``OPTIONS`` for every route.

What it deliberately doesn't use: Flask's JSON (``jsonify`` or returning a dict goes
through ``app.json``, which sorts keys): the contract asks for JSON by hand in every
layer below FastAPI, so the bytes match; validation is ``layers/shared/validation.py``.
No blueprints, sessions or templates -- the contract needs none.  And no WebSocket:
WSGI cannot hold a connection, so ``/ws`` is a 404.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import IO, Any

from flask import Flask, Response, abort, g, request, url_for
from werkzeug.exceptions import HTTPException, InternalServerError

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

LAYER = "flask"

logger = logging.getLogger("layercake.layers.flask")

# How much of the request body one read asks for: 64 KiB, what Werkzeug's own
# LimitedStream.readall() reads per call.
READ_SIZE = 64 * 1024

# In Flask the application object comes first: every decorator below registers on it.
app = Flask(__name__)


# --- Resources ---
# Flask's idiom for a resource (its tutorial's ``get_db``): a function that puts the
# resource on ``g`` the first time a request asks for it, and a teardown function
# that lets go of it when the app context ends -- after the response, even when the
# handler raised.  ``g`` lives exactly as long as one request's app context.
#
# The store itself is process-wide and opened here, at import: an in-memory SQLite
# database lives only as long as its connection, so opening one per request (as the
# tutorial does for a database file) would give every request an empty catalogue.
# ``g`` holds this request's handle on it; the teardown drops the handle, and the
# process ending closes the database.  WSGI has no startup hook, so import is startup.
STORE = open_store()


def get_store() -> Store:
    """This request's store, taken from ``g`` (put there on first use)."""
    if "store" not in g:
        g.store = STORE
    return g.store


@app.teardown_appcontext
def release_store(exc: BaseException | None) -> None:
    """Runs when the app context is popped, after every request: drop the handle."""
    g.pop("store", None)


INDEX_PAGE = index_page(LAYER, get_layer(LAYER).description)


# --- Handlers ---
# Each handler takes only its path parameters: the request is the context-local
# ``request``, and ``@app.get``/``@app.post`` put the route beside the function.


def dumps(data: Any) -> str:
    """JSON by hand, encoded as Starlette's JSONResponse does (compact, UTF-8, no NaN),
    so every layer sends the same bytes for the same answer."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # flask.Response is Werkzeug's Response with Flask's defaults.
    return Response(dumps(data), status=status, headers=headers, mimetype="application/json")


def query() -> dict[str, str]:
    """``request.args`` as name -> value, keeping the *last* of a repeated name.

    ``request.args`` is Werkzeug's MultiDict, whose ``args[name]`` is the *first*
    value; Starlette (so FastAPI) keeps the last, and the shared validator follows it.
    """
    return {name: values[-1] for name, values in request.args.lists()}


def request_body(limit: int) -> Iterator[bytes]:
    """The body as an iterator of chunks: 413 now if the declared length is over
    ``limit``, 413 later (raised by the iterator) once more than ``limit`` arrived.

    Flask's knob for this is ``request.max_content_length`` (settable per request since
    Flask 3.1); it is Werkzeug's, with the same flaw for bodies without a length -- it
    cannot tell "exactly the limit" from "more" -- so the size is counted here, as in
    the Werkzeug layer.
    """
    if request.content_length is not None and request.content_length > limit:
        abort(413)
    # Taking request.stream now, inside the view, means the iterator needs no request
    # context later: it reads the stream object, not the context-local ``request``.
    # (A generator that used ``request`` itself would need flask.stream_with_context,
    # which keeps the request context -- and g -- alive until the body is sent.)
    return _read_chunks(request.stream, limit)


def _read_chunks(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    received = 0
    while chunk := stream.read(READ_SIZE):
        received += len(chunk)
        if received > limit:
            abort(413)
        yield chunk


@app.get("/")
def index() -> Response:
    return Response(INDEX_PAGE, mimetype="text/html")


@app.get("/plaintext")
def plaintext() -> Response:
    return Response("Hello, World!", mimetype="text/plain")


@app.get("/json")
def json_hello() -> Response:
    return json_response({"message": "Hello, World!"})


# "<item_id>" is the default converter (one non-empty path segment) on purpose:
# "<int:item_id>" would answer 404 for "/items/abc"; the contract says 422.
@app.get("/items/<item_id>")
def get_item(item_id: str) -> Response:
    item = get_store().get(parse_item_id(item_id))
    if item is None:
        return json_response({"detail": "Item not found"}, 404)
    return json_response(item)


@app.get("/items")
def list_items() -> Response:
    limit, offset = parse_page(query())
    items, total = get_store().list(limit, offset)
    return json_response({"items": items, "limit": limit, "offset": offset, "total": total})


@app.post("/items")
def create_item() -> Response:
    # Consumed inside the view, so a body that grows past 1 MiB is still a 413.
    body = b"".join(request_body(MAX_ITEM_BODY))
    item = get_store().create(**parse_new_item(body, request.content_type))
    # url_for builds from the endpoint name (the function's name) and the current
    # request's SCRIPT_NAME -- Werkzeug's Map.build, with the binding done for us.
    return json_response(item, 201, {"Location": url_for("get_item", item_id=item["id"])})


@app.get("/stream")
def stream() -> Response:
    n = parse_stream_n(query())

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            yield f"chunk {i}\n".encode("ascii")

    # A generator: no Content-Length, each chunk sent as it comes.  It uses nothing
    # from the request context, so it needs no stream_with_context.
    return Response(chunks(), mimetype="text/plain")


@app.post("/echo")
def echo() -> Response:
    # The body iterator is the response body: each read goes straight back out.
    # A declared length over 16 MiB is a 413 here, before reading.  A chunked upload
    # that passes 16 MiB is found only while streaming, after "200 OK" went out; the
    # iterator's abort(413) then escapes Flask's error handlers (the view has long
    # returned) into the server, which aborts the response.  See bare_wsgi's echo.
    return Response(request_body(MAX_ECHO_BODY), mimetype="application/octet-stream")


@app.get("/headers")
def headers() -> Response:
    # request.headers is Werkzeug's EnvironHeaders over the HTTP_* keys.
    return json_response({name.lower(): value for name, value in request.headers.items()})


@app.get("/inspect")
def inspect_request() -> Response:
    return json_response({"layer": LAYER, "interface": "wsgi", "request": json_safe(request.environ)})


@app.get("/slow")
def slow() -> Response:
    ms = parse_slow_ms(query())
    time.sleep(ms / 1000)  # blocks this worker thread, uses no CPU
    return json_response({"slept_ms": ms})


@app.get("/error")
def error() -> Response:
    raise RuntimeError("GET /error raises on purpose; this text must never reach the client")


@app.get("/health")
def health() -> Response:
    # The store was opened at import, before the first request: startup is done.
    return json_response({"status": "ok", "startup_complete": True, "items": get_store().count()})


# --- Errors ---
# Flask finds the handler for an exception by walking its class's MRO, so NotFound,
# MethodNotAllowed and RequestEntityTooLarge all reach http_error, ValidationFailed
# reaches validation_error, and anything else reaches internal_error.


@app.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    """``{"detail": <the exception's name>}``, keeping its status and headers (Allow)."""
    response = exc.get_response()
    response.set_data(dumps({"detail": exc.name}))
    response.mimetype = "application/json"
    return response  # type: ignore[return-value]  # werkzeug's get_response is typed as its own Response; Flask serves it as is


@app.errorhandler(ValidationFailed)
def validation_error(exc: ValidationFailed) -> Response:
    return json_response(exc.detail(), 422)


@app.errorhandler(Exception)
def internal_error(exc: Exception) -> Response:
    # Without this handler Flask would log the exception itself (Flask.log_exception,
    # to the logger named after the app's import name) and answer 500; this one logs
    # to the same logger name as every other layer.  The traceback goes to the log;
    # the client gets a generic body, never the exception's text.
    logger.error("unhandled exception in %s %s", request.method, request.path, exc_info=exc)
    return http_error(InternalServerError())


# --- Application ---
# ``app`` was created at the top, because the decorators above register on it: the
# routing table is ``app.url_map``, built by them -- print it with
#   python -c "from layers.flask.app import app; print(app.url_map)"
# Flask adds HEAD to every GET route and OPTIONS to every route, so Allow on a 405
# lists them too.
#
# There is no "/ws": a WebSocket handler needs the connection after the response, and
# a WSGI application only ever returns a body.  So "/ws" is a 404 here; the ASGI
# layers have it (CONTRACT.md, item 14).
