"""Starlette's anatomy: from bare ASGI to a Starlette app, one feature per step.

Theory of operation
-------------------
Each function below builds one small, complete ASGI application, and each adds exactly
one thing over the function before it -- its docstring's first line says what.  They
all answer the same request the same way (``layercake.anatomy.ITEM_REQUEST``)::

    PUT /items/42?q=cake   {"name":"cake","price":9.5}
    -> 200 application/json  {"item_id":42,"name":"cake","price":9.5,"q":"cake"}

so ``layercake anatomy starlette`` can measure each step in-process and report what the
step added: µs per request, and the Python calls and lines the request runs.  What a
step does not yet get from Starlette it does by hand, the way ``bare_asgi`` does
everything -- the step that brings the feature replaces that hand work, so its delta is
what the feature costs *over doing it yourself*, which is the question people ask.

The ladder: by hand -> ``Router`` + ``Route`` (matching, the ``:int`` convertor) ->
the ``Request`` object (query and JSON body) -> a function endpoint returning a
``Response`` (``request_response`` wraps it) -> ``JSONResponse`` -> the ``Starlette``
application (its fixed middleware: ``ServerErrorMiddleware``, ``ExceptionMiddleware``)
-> a no-op pure ASGI middleware -> a no-op ``BaseHTTPMiddleware`` -> the endpoint's
work in ``run_in_threadpool``.

What it deliberately doesn't do: validate (Starlette has no validation; see the
FastAPI anatomy), or handle anything but this one request well -- a wrong path is a
404 and that is all.  The contract's full app is ``layers/starlette/app.py``.

Specs: ASGI "HTTP" (scope, ``http.request``, ``http.response.start``/``body``) and
"Lifespan" (the bare variant answers it by hand; Starlette's ``Router`` does it after).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from layercake.anatomy import ITEM_ANSWER, ITEM_REQUEST, Ladder, Step, serve_steps

ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]
JSON_HEADERS = [(b"content-type", b"application/json")]


def dumps(value: Any) -> bytes:
    """JSON the way Starlette's ``JSONResponse`` renders it (compact, UTF-8), for the by-hand steps."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def lifespan_by_hand(receive: Receive, send: Send) -> None:
    """ASGI Lifespan by hand: acknowledge startup and shutdown; nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive) -> bytes:
    """The request body by hand: ``http.request`` messages until ``more_body`` is false (ASGI HTTP)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def send_json(send: Send, payload: bytes, status: int = 200) -> None:
    """A response by hand: start (status, headers) then one body message."""
    headers = [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# --- the steps ---


def bare_asgi() -> ASGI:
    """Bare ASGI: the request routed, parsed and answered by hand (the baseline).

    Everything is done with the standard library: the path split on ``/``, the query
    by ``urllib.parse.parse_qs``, the body read from ``receive`` and decoded with
    ``json.loads``, the answer encoded with ``json.dumps`` and sent as two messages.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan_by_hand(receive, send)
        parts = scope["path"].split("/")  # "/items/42" -> ["", "items", "42"]
        if scope["method"] != "PUT" or len(parts) != 3 or parts[1] != "items" or not parts[2].isdigit():
            return await send_json(send, b'{"detail":"Not Found"}', 404)
        q = parse_qs(scope["query_string"].decode("latin-1"))["q"][0]
        item = json.loads(await read_body(receive))
        answer = {"item_id": int(parts[2]), "name": item["name"], "price": item["price"], "q": q}
        await send_json(send, dumps(answer))

    return app


class ItemByHand:
    """The item endpoint as a raw ASGI app (a class, so ``Route`` passes it scope, receive, send as they are)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        q = parse_qs(scope["query_string"].decode("latin-1"))["q"][0]
        item = json.loads(await read_body(receive))
        answer = {"item_id": scope["path_params"]["item_id"], "name": item["name"], "price": item["price"], "q": q}
        await send_json(send, dumps(answer))


def router() -> ASGI:
    """Starlette's ``Router`` and ``Route``: path matching and the ``{item_id:int}`` convertor.

    The router tries each route's compiled regex against the path and method; the match
    puts ``item_id`` -- already an ``int``, by the convertor -- into
    ``scope["path_params"]``.  The endpoint is still a raw ASGI app that reads the query
    and the body by hand.  The router also answers the lifespan scope now.
    """
    return Router([Route("/items/{item_id:int}", ItemByHand(), methods=["PUT"])])


class ItemWithRequest:
    """The item endpoint reading through Starlette's ``Request``, still answering by hand."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        item = await request.json()
        q = request.query_params["q"]
        answer = {"item_id": request.path_params["item_id"], "name": item["name"], "price": item["price"], "q": q}
        await send_json(send, dumps(answer))


def request_object() -> ASGI:
    """The ``Request`` object: ``query_params`` and ``await request.json()`` instead of parsing by hand.

    ``Request`` wraps the scope and ``receive``; ``query_params`` parses the query string
    into an immutable multi-dict on first use, ``json()`` reads the whole body
    (``stream()`` over ``receive``) and decodes it.
    """
    return Router([Route("/items/{item_id:int}", ItemWithRequest(), methods=["PUT"])])


async def item_response(request: Request) -> Response:
    item = await request.json()
    q = request.query_params["q"]
    answer = {"item_id": request.path_params["item_id"], "name": item["name"], "price": item["price"], "q": q}
    return Response(dumps(answer), media_type="application/json")


def response_object() -> ASGI:
    """A function endpoint returning a ``Response``: ``request_response`` builds the ``Request`` and sends the answer.

    A plain ``async def endpoint(request)`` is wrapped by ``Route`` in
    ``request_response``, which makes the ``Request``, awaits the endpoint, and calls the
    returned ``Response`` as an ASGI app (it sets ``content-length`` and sends both
    messages) -- inside the exception-handler wrapper every Starlette endpoint gets.
    """
    return Router([Route("/items/{item_id:int}", item_response, methods=["PUT"])])


async def item_json(request: Request) -> JSONResponse:
    item = await request.json()
    q = request.query_params["q"]
    return JSONResponse(
        {"item_id": request.path_params["item_id"], "name": item["name"], "price": item["price"], "q": q}
    )


def json_response() -> ASGI:
    """``JSONResponse``: the answer encoded by Starlette (``json.dumps`` compact, ``allow_nan=False``)."""
    return Router([Route("/items/{item_id:int}", item_json, methods=["PUT"])])


def starlette_app() -> ASGI:
    """The ``Starlette`` application: its fixed middleware stack around the router.

    ``Starlette(routes=...)`` builds, on its first request, ``ServerErrorMiddleware``
    (the last-resort 500) -> ``ExceptionMiddleware`` (handlers by exception class and
    status) -> the router, and puts itself in ``scope["app"]``.
    """
    return Starlette(routes=[Route("/items/{item_id:int}", item_json, methods=["PUT"])])


class NoopASGIMiddleware:
    """A pure ASGI middleware that does nothing: it passes scope, receive and send straight on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def asgi_middleware() -> ASGI:
    """A no-op pure ASGI middleware: one more ``await`` between the stack and the router."""
    return Starlette(
        routes=[Route("/items/{item_id:int}", item_json, methods=["PUT"])],
        middleware=[Middleware(NoopASGIMiddleware)],
    )


class NoopBaseHTTPMiddleware(BaseHTTPMiddleware):
    """A ``BaseHTTPMiddleware`` that does nothing but ``call_next``."""

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        return await call_next(request)


def base_http_middleware() -> ASGI:
    """A no-op ``BaseHTTPMiddleware``: ``dispatch(request, call_next)``, on top of the pure one.

    ``call_next`` runs the rest of the app in a task of an anyio task group, and hands
    the response back through a memory object stream: the body is re-streamed to the
    real ``send`` -- which is what costs, even when ``dispatch`` does nothing.
    """
    return Starlette(
        routes=[Route("/items/{item_id:int}", item_json, methods=["PUT"])],
        middleware=[Middleware(NoopASGIMiddleware), Middleware(NoopBaseHTTPMiddleware)],
    )


def answer_of(item_id: int, q: str, item: dict[str, Any]) -> JSONResponse:
    """The endpoint's work as a plain (sync) function -- what a ``def`` endpoint would be."""
    return JSONResponse({"item_id": item_id, "name": item["name"], "price": item["price"], "q": q})


async def item_threadpool(request: Request) -> JSONResponse:
    item = await request.json()
    return await run_in_threadpool(answer_of, request.path_params["item_id"], request.query_params["q"], item)


def threadpool() -> ASGI:
    """``run_in_threadpool``: the endpoint's sync work runs on a worker thread.

    This is what Starlette (and FastAPI) do with every plain ``def`` endpoint:
    ``anyio.to_thread.run_sync`` hands the call to a worker thread and the event loop
    waits for it -- a thread hand-off both ways per request.  (A ``def`` endpoint could
    not read the body, which is async; so the body is read first, as FastAPI does.)
    """
    return Starlette(
        routes=[Route("/items/{item_id:int}", item_threadpool, methods=["PUT"])],
        middleware=[Middleware(NoopASGIMiddleware), Middleware(NoopBaseHTTPMiddleware)],
    )


LADDER = Ladder(
    "starlette",
    "asgi",
    ITEM_REQUEST,
    ITEM_ANSWER,
    (
        Step(bare_asgi, adds="asgi by hand"),
        Step(router, adds="router"),
        Step(request_object, adds="request object"),
        Step(response_object, adds="response object"),
        Step(json_response, adds="json response"),
        Step(starlette_app, adds="starlette app"),
        Step(asgi_middleware, adds="pure asgi middleware"),
        Step(base_http_middleware, adds="basehttpmiddleware"),
        Step(threadpool, adds="threadpool", threads=True),
    ),
    title="Starlette, feature by feature: from a hand-written ASGI app to a Starlette app with middleware.",
)
__getattr__ = serve_steps(LADDER)  # PEP 562: `layers.starlette.anatomy:router_app` is the built app, for servers
