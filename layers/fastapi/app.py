"""The contract on FastAPI: pydantic models validate and serialise, Depends injects the store.

Theory of operation
-------------------
FastAPI is Starlette underneath -- ``FastAPI`` subclasses ``Starlette``, ``APIRoute``
subclasses ``Route`` -- so everything in ``layers/starlette/app.py`` still happens.
What changes is who reads the request: a handler no longer takes a ``Request`` and
parses it, it *declares* what it needs in its signature (a path ``int``, query ``int``
with bounds, a pydantic model for the body, the store from a dependency) and FastAPI
works out, once at import time, how to produce each argument.  A request flows:

``APIRoute`` (a ``Route`` whose endpoint is ``request_response(get_request_handler(...))``)
-> the handler's ``app(request)`` reads the body (``await request.body()``, JSON-decoded
when ``Content-Type`` is JSON) -> ``solve_dependencies`` builds every argument: path and
query values and the body go through pydantic (each ``ModelField.validate``), and
``get_store`` is called -> any errors are raised together as one
``RequestValidationError`` (a 422) -> ``run_endpoint_function`` awaits the handler ->
``serialize_response`` validates the return value against the ``response_model`` and
dumps it to JSON bytes with pydantic's serializer (``jsonable_encoder`` + ``json.dumps``
when there is no response model) -> a ``Response`` is sent as in Starlette.

What this layer adds over ``starlette``: validation from type annotations (the same
rules as ``layers/shared/validation.py``, which was written to mimic these models and
gives the same ``type``/``msg`` strings), response models, dependency injection, and
``/docs`` + ``/openapi.json`` generated from all of that, for free.

What it deliberately doesn't: anything Starlette already did.  Responses that are not
JSON (HTML, text, streams) are Starlette's classes, WebSockets are Starlette's
``WebSocket``.  Every handler is ``async def``: a plain ``def`` handler or dependency
would be run in a thread pool, a cost the layers below don't pay.

Specs: ASGI "HTTP", "WebSocket" and "Lifespan" (through Starlette), RFC 9110,
OpenAPI 3.1 for the generated schema.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import Receive

from layers import get_layer
from layers.shared.introspect import json_safe
from layers.shared.pages import index_page
from layers.shared.store import Store, open_store
from layers.shared.validation import (
    LIMIT_DEFAULT,
    LIMIT_MAX,
    LIMIT_MIN,
    MAX_ECHO_BODY,
    MAX_ITEM_BODY,
    MAX_WS_MESSAGE,
    NAME_MAX,
    NAME_MIN,
    OFFSET_DEFAULT,
    OFFSET_MIN,
    SLOW_DEFAULT,
    SLOW_MAX,
    SLOW_MIN,
    STREAM_DEFAULT,
    STREAM_MAX,
    STREAM_MIN,
)

LAYER = get_layer("fastapi")
log = logging.getLogger("layercake.layers.fastapi")


# --- Resources ---


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the store at lifespan startup, close it at shutdown (as in Starlette)."""
    app.state.store = open_store()
    app.state.startup_complete = True
    try:
        yield
    finally:
        app.state.store.close()
        del app.state.store
        app.state.startup_complete = False


async def get_store(request: Request) -> Store:
    """The store, as a dependency: handlers ask for it with ``Depends(get_store)``.

    Without lifespan (CONTRACT.md, "ASGI without lifespan") the first request opens
    it.  ``async def`` keeps it on the event loop: FastAPI runs a plain ``def``
    dependency in its thread pool, once per request.
    """
    state = request.app.state
    if getattr(state, "store", None) is None:
        state.store = open_store()
        state.startup_complete = False
    return state.store


StoreDep = Annotated[Store, Depends(get_store)]


# The models.  ``strict=True`` refuses what pydantic would otherwise coerce: "12" or
# true as a price, 5 as a name.  ``allow_inf_nan=False``: Python's json module reads
# NaN and 1e400 (inf), JSON cannot write them back.  Unknown fields are ignored
# (pydantic's default ``extra="ignore"``).


class NewItem(BaseModel):
    name: Annotated[str, Field(min_length=NAME_MIN, max_length=NAME_MAX, strict=True)]
    price: Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
    tags: list[StrictStr] = []


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


class ItemPage(BaseModel):
    items: list[Item]
    limit: int
    offset: int
    total: int


class Hello(BaseModel):
    message: str


class Slept(BaseModel):
    slept_ms: int


class Health(BaseModel):
    status: str
    startup_complete: bool
    items: int


class Detail(BaseModel):
    """The body of every error but 422 (documented in /docs through ``responses=``)."""

    detail: str


# --- Handlers ---


async def index() -> str:
    return index_page(LAYER.name, LAYER.description)


async def plaintext() -> str:
    return "Hello, World!"


async def json_hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


async def get_item(item_id: Annotated[int, Path()], store: StoreDep) -> dict[str, Any]:
    item = store.get(item_id)
    if item is None:
        raise HTTPException(404, "Item not found")
    return item


async def list_items(
    store: StoreDep,
    limit: Annotated[int, Query(ge=LIMIT_MIN, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=OFFSET_MIN)] = OFFSET_DEFAULT,
) -> dict[str, Any]:
    items, total = store.list(limit, offset)
    return {"items": items, "limit": limit, "offset": offset, "total": total}


async def create_item(item: NewItem, store: StoreDep, response: Response) -> dict[str, Any]:
    # ``item`` arrives validated; the route's max_body_size refused anything over 1 MiB
    # before pydantic saw it.  ``response`` is FastAPI's way to add headers to the
    # response it will build from the return value.
    created = store.create(item.name, item.price, item.tags)
    response.headers["Location"] = f"/items/{created['id']}"
    return created


async def stream(n: Annotated[int, Query(ge=STREAM_MIN, le=STREAM_MAX)] = STREAM_DEFAULT) -> StreamingResponse:
    async def chunks() -> AsyncIterator[str]:
        for i in range(n):
            yield f"chunk {i}\n"

    return StreamingResponse(chunks(), media_type="text/plain")


class EchoResponse(StreamingResponse):
    """Starlette's ``StreamingResponse`` without its disconnect watcher (see the Starlette
    layer: below ASGI spec 2.4 the watcher reads ``receive()`` and would swallow parts
    of the upload the body iterator is reading)."""

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await asyncio.Event().wait()


async def echo(request: Request) -> Response:
    # A raw body stream is not something to validate: the handler takes the Request,
    # exactly as in Starlette.  The first read checks a declared Content-Length against
    # the route's max_body_size, so that 413 comes before the 200.
    body = request.stream()
    first = await anext(body)

    async def pieces() -> AsyncIterator[bytes]:
        yield first
        async for piece in body:
            yield piece

    return EchoResponse(pieces(), media_type="application/octet-stream")


async def headers(request: Request) -> dict[str, str]:
    names = dict.fromkeys(request.headers.keys())
    return {name: ", ".join(request.headers.getlist(name)) for name in names}


async def inspect_request(request: Request) -> dict[str, Any]:
    return {"layer": LAYER.name, "interface": "asgi", "request": json_safe(request.scope)}


async def slow(ms: Annotated[int, Query(ge=SLOW_MIN, le=SLOW_MAX)] = SLOW_DEFAULT) -> dict[str, int]:
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


async def error() -> None:
    raise RuntimeError("the /error handler failed on purpose")


async def health(request: Request, store: StoreDep) -> dict[str, Any]:
    return {"status": "ok", "startup_complete": request.app.state.startup_complete, "items": store.count()}


async def websocket_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
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
    """Every method some route serves at this path (RFC 9110 §15.5.6; see the Starlette
    layer: an ``APIRoute`` is a ``Route`` and knows only its own methods)."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's ``HTTPException`` (FastAPI's subclasses it): 404, 405, the body limit's 413."""
    assert isinstance(exc, StarletteHTTPException)
    response_headers = dict(exc.headers or {})
    if exc.status_code == 405:
        response_headers["Allow"] = allowed_methods(request)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=response_headers)


def _json_input(value: float | bytes) -> float | str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value if math.isfinite(value) else None


async def validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own 422, made safe for every input.

    The default handler encodes ``exc.errors()`` with ``jsonable_encoder`` and fails
    with a 500 on two inputs: a NaN or infinite price (``{"price": 1e400}`` is valid
    JSON; JSON cannot carry the float back) and a non-UTF-8 body sent as ``text/plain``
    (the raw bytes are the input).  Those become ``null`` and replacement characters;
    the hand validator does the same.
    """
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors(), custom_encoder={float: _json_input, bytes: _json_input})
    return JSONResponse({"detail": errors}, status_code=422)


async def server_error(request: Request, exc: Exception) -> Response:
    """The generic 500 (``ServerErrorMiddleware`` sends it, then re-raises for the server to log)."""
    log.error("unhandled exception in %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for /docs: these statuses answer ``{"detail": str}`` (the ``Detail`` model)."""
    return {status: {"model": Detail} for status in statuses}


# --- Application ---

app = FastAPI(
    title=f"layercake: {LAYER.name}",
    description=LAYER.description,
    lifespan=lifespan,
    exception_handlers={
        StarletteHTTPException: http_error,
        RequestValidationError: validation_error,
        Exception: server_error,
    },
)

# The routing table.  ``@app.get(path, ...)`` on each handler is the same call; a table
# keeps the layout of the layers below, so a diff shows what each route gained.
app.add_api_route("/", index, response_class=HTMLResponse)
app.add_api_route("/plaintext", plaintext, response_class=PlainTextResponse)
app.add_api_route("/json", json_hello, response_model=Hello)
app.add_api_route("/items/{item_id}", get_item, response_model=Item, responses=documented(404))
app.add_api_route("/items", list_items, response_model=ItemPage)
app.add_api_route(
    "/items",
    create_item,
    methods=["POST"],
    status_code=201,
    response_model=Item,
    max_body_size=MAX_ITEM_BODY,
    responses=documented(413),
)
app.add_api_route("/stream", stream, response_class=StreamingResponse)
app.add_api_route(
    "/echo",
    echo,
    methods=["POST"],
    response_class=StreamingResponse,
    max_body_size=MAX_ECHO_BODY,
    responses=documented(413),
)
app.add_api_route("/headers", headers, response_model=dict[str, str])
app.add_api_route("/inspect", inspect_request, response_model=dict[str, Any])
app.add_api_route("/slow", slow, response_model=Slept)
app.add_api_route("/error", error, responses=documented(500))
app.add_api_route("/health", health, response_model=Health)
app.add_api_websocket_route("/ws", websocket_echo)
