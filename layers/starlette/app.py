"""The contract on Starlette: Request and Response classes, a Router, lifespan, WebSocket.

Theory of operation
-------------------
Starlette keeps ASGI's one idea -- everything is an ``(scope, receive, send)`` app --
and gives each part of ``bare_asgi`` a class.  A request flows:

``Starlette.__call__`` -> ``ServerErrorMiddleware`` (the last-resort 500) ->
``ExceptionMiddleware`` (our handlers below, by exception class) -> ``Router`` (tries
each ``Route.matches(scope)``: a full match handles it, a path-only match is a 405,
none is a 404) -> ``Route.handle`` -> ``request_response(endpoint)``, which builds a
``Request`` around the scope and ``receive``, awaits the endpoint, and calls the
``Response`` it returns as an ASGI app, which sends ``http.response.start`` and
``http.response.body``.  ``WebSocketRoute`` does the same for the WebSocket scope
with a ``WebSocket`` object; the ``lifespan=`` context manager runs inside the
router's handling of the lifespan scope.

What this layer adds over ``bare_asgi``: the routing table becomes ``Route`` objects
with path convertors and automatic HEAD/405; query strings, headers and bodies are
read through ``Request``; responses are classes that set ``content-length`` and
``content-type``; errors are exception handlers; body limits are a per-route option
(``max_body_size``, Starlette's ``RequestBodyLimitMiddleware``); the store lives on
``app.state``.

What it deliberately doesn't: validation.  Starlette has none, so the shared hand
validator (``layers/shared/validation.py``) does exactly what it does in
``bare_asgi`` -- pydantic belongs to the FastAPI layer.

Specs: ASGI "HTTP", "WebSocket" and "Lifespan" (Starlette implements them; the
comments below say where its choices show), RFC 9110 for status codes and ``Allow``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Match, Route, WebSocketRoute
from starlette.types import Receive
from starlette.websockets import WebSocket

from layers import get_layer
from layers.shared.introspect import json_safe
from layers.shared.pages import index_page
from layers.shared.store import Store, open_store
from layers.shared.validation import (
    MAX_ECHO_BODY,
    MAX_ITEM_BODY,
    MAX_WS_MESSAGE,
    ValidationFailed,
    parse_item_id,
    parse_new_item,
    parse_page,
    parse_slow_ms,
    parse_stream_n,
)

LAYER = get_layer("starlette")
log = logging.getLogger("layercake.layers.starlette")


# --- Resources ---


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the store at lifespan startup, close it at shutdown.

    Code before ``yield`` runs on ``lifespan.startup``, after it on
    ``lifespan.shutdown``; Starlette sends the ``.complete`` (or ``.failed``) replies.
    """
    app.state.store = open_store()
    app.state.startup_complete = True
    try:
        yield
    finally:
        app.state.store.close()
        del app.state.store
        app.state.startup_complete = False


def store_of(request: Request) -> tuple[Store, bool]:
    """The store on ``app.state``, and whether lifespan startup opened it.

    Without lifespan (CONTRACT.md, "ASGI without lifespan") the first request opens
    it; handlers run on the event loop's one thread, so two cannot race here.
    """
    state = request.app.state
    if getattr(state, "store", None) is None:
        state.store = open_store()
        state.startup_complete = False
    return state.store, state.startup_complete


# --- Handlers ---


async def index(request: Request) -> Response:
    return HTMLResponse(index_page(LAYER.name, LAYER.description))


async def plaintext(request: Request) -> Response:
    return PlainTextResponse("Hello, World!")


async def json_hello(request: Request) -> Response:
    return JSONResponse({"message": "Hello, World!"})


async def get_item(request: Request) -> Response:
    item_id = parse_item_id(request.path_params["item_id"])
    store, _ = store_of(request)
    item = store.get(item_id)
    if item is None:
        raise HTTPException(404, "Item not found")
    return JSONResponse(item)


async def list_items(request: Request) -> Response:
    # QueryParams.get() answers the last value of a repeated name, as parse_page expects.
    limit, offset = parse_page(request.query_params)
    store, _ = store_of(request)
    items, total = store.list(limit, offset)
    return JSONResponse({"items": items, "limit": limit, "offset": offset, "total": total})


async def create_item(request: Request) -> Response:
    # The route's max_body_size wraps receive(): a declared Content-Length over the
    # limit raises 413 before the first read, a chunked body as soon as it passes it.
    body = await request.body()
    new = parse_new_item(body, request.headers.get("content-type"))
    store, _ = store_of(request)
    item = store.create(new["name"], new["price"], new["tags"])
    return JSONResponse(item, status_code=201, headers={"Location": f"/items/{item['id']}"})


async def stream(request: Request) -> Response:
    n = parse_stream_n(request.query_params)

    async def chunks() -> AsyncIterator[str]:
        for i in range(n):
            yield f"chunk {i}\n"  # one http.response.body message each, more_body=True

    return StreamingResponse(chunks(), media_type="text/plain")


class EchoResponse(StreamingResponse):
    """A ``StreamingResponse`` whose body iterator is the request's own body.

    For servers that speak ASGI HTTP spec < 2.4 (uvicorn's HTTP scope says 2.3),
    ``StreamingResponse`` runs a second task that calls ``receive()`` until
    ``http.disconnect``, so it can stop streaming when the client goes away.  Here
    the body iterator is ``receive()``'s other reader: that watcher would swallow
    pieces of the upload and the echo would come back with holes.  The request
    stream notices a disconnect itself (it raises ``ClientDisconnect``), so the
    watcher only has to wait until the response is done, when it is cancelled.
    """

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await asyncio.Event().wait()


async def echo(request: Request) -> Response:
    # Pulling the first piece before the response exists lets the route's body limit
    # refuse a declared Content-Length over 16 MiB as a 413 (the limit is checked on
    # the first read).  A chunked upload that passes 16 MiB later raises inside the
    # stream, after the 200 went out: the server drops the connection (see bare_asgi).
    body = request.stream()
    first = await anext(body)

    async def pieces() -> AsyncIterator[bytes]:
        yield first
        async for piece in body:
            yield piece

    return EchoResponse(pieces(), media_type="application/octet-stream")


async def headers(request: Request) -> Response:
    # Headers is a case-insensitive multi-dict over scope["headers"]; getlist()
    # gives a repeated header's values in order.
    names = dict.fromkeys(request.headers.keys())
    return JSONResponse({name: ", ".join(request.headers.getlist(name)) for name in names})


async def inspect_request(request: Request) -> Response:
    # request.scope is the scope as the endpoint sees it: the server's keys plus what
    # Starlette added on the way (app, router, route, endpoint, path_params, ...).
    return JSONResponse({"layer": LAYER.name, "interface": "asgi", "request": json_safe(request.scope)})


async def slow(request: Request) -> Response:
    ms = parse_slow_ms(request.query_params)
    await asyncio.sleep(ms / 1000)
    return JSONResponse({"slept_ms": ms})


async def error(request: Request) -> Response:
    raise RuntimeError("the /error handler failed on purpose")


async def health(request: Request) -> Response:
    store, startup_complete = store_of(request)
    return JSONResponse({"status": "ok", "startup_complete": startup_complete, "items": store.count()})


async def websocket_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        # receive() is the raw ASGI message: the echo has to keep text and binary
        # apart, which receive_text()/receive_bytes() would each refuse half of.
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text, data = message.get("text"), message.get("bytes")
        size = len(text.encode("utf-8")) if text is not None else len(data or b"")
        if size > MAX_WS_MESSAGE:
            await websocket.close(code=1009)  # RFC 6455 §7.4.1: message too big
            return
        if text is not None:
            await websocket.send_text(text)
        else:
            await websocket.send_bytes(data or b"")


# --- Errors ---


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path.

    A ``Route`` knows only its own methods, so with ``GET /items`` and ``POST /items``
    as two routes Starlette's 405 would say ``Allow: GET, HEAD``.  RFC 9110 §15.5.6
    wants the target resource's methods: ask every route that matches the path.
    """
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def http_error(request: Request, exc: Exception) -> Response:
    """``HTTPException`` -- the router's 404 and 405, a handler's 404, the body limit's 413."""
    assert isinstance(exc, HTTPException)
    response_headers = dict(exc.headers or {})
    if exc.status_code == 405:
        response_headers["Allow"] = allowed_methods(request)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=response_headers)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationFailed)
    return JSONResponse(exc.detail(), status_code=422)


async def server_error(request: Request, exc: Exception) -> Response:
    """The 500 for anything unhandled, installed into ``ServerErrorMiddleware``.

    That middleware sends this response and then re-raises, so the server logs the
    exception as well; the body stays generic (no exception text, no traceback).
    """
    log.error("unhandled exception in %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500)


# --- Application ---

routes = [
    Route("/", index),
    Route("/plaintext", plaintext),
    Route("/json", json_hello),
    Route("/items/{item_id}", get_item),
    Route("/items", list_items, methods=["GET"]),
    Route("/items", create_item, methods=["POST"], max_body_size=MAX_ITEM_BODY),
    Route("/stream", stream),
    Route("/echo", echo, methods=["POST"], max_body_size=MAX_ECHO_BODY),
    Route("/headers", headers),
    Route("/inspect", inspect_request),
    Route("/slow", slow),
    Route("/error", error),
    Route("/health", health),
    WebSocketRoute("/ws", websocket_echo),
]

app = Starlette(
    routes=routes,
    lifespan=lifespan,
    exception_handlers={HTTPException: http_error, ValidationFailed: validation_error, Exception: server_error},
)
