"""The contract as one ASGI application written by hand: ``scope``, ``receive``, ``send``.

Theory of operation
-------------------
ASGI (asgi.readthedocs.io, "ASGI Specification") makes an application one coroutine,
``app(scope, receive, send)``, called once per *connection scope*.  ``scope`` is a
dict describing the connection; ``receive()`` returns the next event dict from the
client side; ``send(message)`` hands an event dict to the server.  Everything a
framework does is built out of those three, and this module does all of it by hand so
the two layers above have something to be compared with:

* **lifespan** (the "Lifespan Protocol" spec): one scope of type ``lifespan`` per
  process, before any request.  ``lifespan.startup`` -> open the store ->
  ``lifespan.startup.complete``; ``lifespan.shutdown`` -> close it ->
  ``lifespan.shutdown.complete``.  The store is published in ``scope["state"]``, the
  dict the server copies (shallowly) into every later request's scope -- the spec's
  way to hand startup resources to requests without globals.
* **HTTP** (the "HTTP" connection scope spec): the router below matches
  ``scope["path"]`` (already percent-decoded by the server) against a table of
  regular expressions, then the method; each handler is itself an ASGI app.  A
  response is one ``http.response.start`` (status and headers as ``bytes`` pairs)
  then one or more ``http.response.body`` messages; ``more_body=True`` means "more
  follows", which is how ``/stream`` and ``/echo`` stream.  The request body arrives
  as ``http.request`` messages with the same ``more_body`` flag; ``/echo`` sends each
  piece back as it arrives.
* **WebSocket** (the "WebSocket" connection scope spec): ``websocket.connect`` ->
  ``websocket.accept``; every ``websocket.receive`` is echoed as ``websocket.send``;
  ``websocket.disconnect`` ends the scope.  The closing handshake (RFC 6455 §5.5.1:
  the endpoint that receives a Close frame answers with one, echoing the code) is the
  server's job, so a client's 1000 comes back as 1000 without the app sending
  anything.

Query strings are parsed with :func:`urllib.parse.parse_qsl`, validation is the shared
hand validator (``layers/shared/validation.py``), JSON is :mod:`json`: nothing here
comes from a framework.

What it deliberately doesn't do: content negotiation, cookies, ``root_path`` mounting,
trailing-slash redirects, HTTP/2 server push, the ``http.response.trailers`` and
WebSocket ``denial response`` extensions.  HEAD is answered as GET; the server drops
the body (RFC 9110 §9.3.2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

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

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LAYER = get_layer("bare_asgi")
log = logging.getLogger("layercake.layers.bare_asgi")


# --- Resources ---


class Resources:
    """The store this process serves from when the server gives no lifespan ``state``.

    Two situations need it: a server that runs lifespan but has no ``state`` key (it
    is optional: "if missing the server does not support this feature", says the
    lifespan spec), and a server or bridge that runs no lifespan at all (CONTRACT.md,
    "ASGI without lifespan"), where the store is opened lazily by the first request
    and ``startup_complete`` stays ``False`` so ``/health`` shows it.
    """

    def __init__(self) -> None:
        self.store: Store | None = None
        self.startup_complete = False


resources = Resources()


def store_of(scope: Scope) -> tuple[Store, bool]:
    """The store for this request, and whether lifespan startup opened it."""
    state = scope.get("state")
    if state and "store" in state:
        return state["store"], True
    if resources.store is None:
        # No lifespan ran: open on first use.  Handlers run on the event loop's one
        # thread and open_store() never awaits, so two requests cannot both get here.
        resources.store = open_store()
    return resources.store, resources.startup_complete


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """The lifespan scope: open the store at startup, close it at shutdown."""
    store: Store | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                store = open_store()
            except Exception:
                # Spec: report the failure; the server then refuses to start.
                await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
                return
            state = scope.get("state")
            if state is not None:
                state["store"] = store
            else:
                resources.store, resources.startup_complete = store, True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if store is not None:
                store.close()
            if resources.store is store:
                resources.store, resources.startup_complete = None, False
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- Handlers ---
# What Starlette's Request and Response classes do, by hand: read the query string and
# the headers out of the scope, read the body out of receive(), turn a body and a
# status into the two send() messages.


def query_params(scope: Scope) -> dict[str, str]:
    """The query string as name -> last value, as Starlette's QueryParams.get() sees it.

    ``query_string`` is the raw bytes after ``?`` (ASGI HTTP scope); percent-escapes
    decode as UTF-8, ``+`` as a space (the form-urlencoded rules), blank values kept.
    """
    return dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (servers send names lowercased, ASGI HTTP scope)."""
    return next((value for key, value in scope["headers"] if key == name), None)


def content_length(scope: Scope) -> int | None:
    """The declared body length, or None for a chunked upload (or a value we cannot read)."""
    raw = header(scope, b"content-length")
    return int(raw) if raw is not None and raw.isdigit() else None


class Disconnect(Exception):
    """``http.disconnect`` arrived before the body ended: nobody is left to answer."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refused with 413 once it is known to pass ``limit``.

    The declared length is checked before the first ``receive()``: a server sends
    ``100 Continue`` only when the app asks for the body, so a client that waits for
    it never sends the oversized body at all.  A chunked upload is counted as it
    arrives and refused as soon as it passes the limit, never buffered beyond it.
    """
    declared = content_length(scope)
    if declared is not None and declared > limit:
        raise HTTPError(413, "Content Too Large")
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnect
        body += message.get("body", b"")
        if len(body) > limit:
            raise HTTPError(413, "Content Too Large")
        if not message.get("more_body", False):
            return bytes(body)


async def send_response(
    send: Send, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A complete response in two messages; the body's length is known, so say it."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    # The same encoding as Starlette's JSONResponse: compact, UTF-8, and no NaN (which
    # JSON cannot carry) -- a bug should fail here, not reach a client as invalid JSON.
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    await send_response(send, status, body, b"application/json", headers)


async def index(scope: Scope, receive: Receive, send: Send) -> None:
    page = index_page(LAYER.name, LAYER.description).encode("utf-8")
    await send_response(send, 200, page, b"text/html; charset=utf-8")


async def plaintext(scope: Scope, receive: Receive, send: Send) -> None:
    await send_response(send, 200, b"Hello, World!", b"text/plain; charset=utf-8")


async def json_hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, {"message": "Hello, World!"})


async def get_item(scope: Scope, receive: Receive, send: Send) -> None:
    item_id = parse_item_id(scope["path_params"]["item_id"])
    store, _ = store_of(scope)
    item = store.get(item_id)
    if item is None:
        raise HTTPError(404, "Item not found")
    await send_json(send, 200, item)


async def list_items(scope: Scope, receive: Receive, send: Send) -> None:
    limit, offset = parse_page(query_params(scope))
    store, _ = store_of(scope)
    items, total = store.list(limit, offset)
    await send_json(send, 200, {"items": items, "limit": limit, "offset": offset, "total": total})


async def create_item(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(scope, receive, MAX_ITEM_BODY)
    content_type = header(scope, b"content-type")
    new = parse_new_item(body, content_type.decode("latin-1") if content_type is not None else None)
    store, _ = store_of(scope)
    item = store.create(new["name"], new["price"], new["tags"])
    await send_json(send, 201, item, [(b"location", b"/items/%d" % item["id"])])


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    n = parse_stream_n(query_params(scope))
    # No content-length: the server must frame the body itself (chunked encoding in
    # HTTP/1.1, RFC 9112 §7.1), and each message below becomes one chunk.
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain; charset=utf-8")]}
    )
    for i in range(n):
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Send each piece of the request body back as it arrives.

    A declared length over the limit is a 413 before anything is read.  A chunked
    upload can only be counted, and by the time it passes the limit the 200 and the
    first 16 MiB have gone out: the status cannot change, so the app raises and the
    server drops the connection -- the client sees a body without its last chunk,
    which is how HTTP/1.1 says "this response is incomplete" (RFC 9112 §8).
    Buffering the whole upload first would buy a clean 413 at the cost of holding
    16 MiB per request and of not streaming at all.
    """
    declared = content_length(scope)
    if declared is not None and declared > MAX_ECHO_BODY:
        raise HTTPError(413, "Content Too Large")
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}
    )
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnect
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > MAX_ECHO_BODY:
            raise HTTPError(413, "Content Too Large")
        more = message.get("more_body", False)
        await send({"type": "http.response.body", "body": chunk, "more_body": more})
        if not more:
            return


async def headers(scope: Scope, receive: Receive, send: Send) -> None:
    seen: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        # Header bytes are latin-1 by HTTP's history (RFC 9110 §5.5); repeats are one
        # comma-separated list (RFC 9110 §5.3), except Set-Cookie, which no request has.
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        seen[name] = f"{seen[name]}, {value}" if name in seen else value
    await send_json(send, 200, seen)


async def inspect_request(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, {"layer": LAYER.name, "interface": "asgi", "request": json_safe(scope)})


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    ms = parse_slow_ms(query_params(scope))
    await asyncio.sleep(ms / 1000)  # yields the event loop: other requests run meanwhile
    await send_json(send, 200, {"slept_ms": ms})


async def error(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the /error handler failed on purpose")


async def health(scope: Scope, receive: Receive, send: Send) -> None:
    store, startup_complete = store_of(scope)
    await send_json(send, 200, {"status": "ok", "startup_complete": startup_complete, "items": store.count()})


def _payload_size(message: Message) -> int:
    """The size in bytes of a ``websocket.receive`` message's payload (text as UTF-8)."""
    text = message.get("text")
    if text is not None:
        return len(text.encode("utf-8"))
    return len(message.get("bytes") or b"")


async def websocket_echo(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":  # the client left during the handshake
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return  # the server already answered the client's Close frame
        if _payload_size(message) > MAX_WS_MESSAGE:
            # RFC 6455 §7.4.1: 1009, "a message that is too big for it to process".
            # Most servers enforce their own limit first (uvicorn's --ws-max-size is
            # also 16 MiB); this one holds whatever the server allows.
            await send({"type": "websocket.close", "code": 1009})
            return
        # Spec: a receive message has exactly one of "text" and "bytes" set.
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


# --- Errors ---


class HTTPError(Exception):
    """Stop the handler and answer ``{"detail": detail}`` with ``status``."""

    def __init__(self, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(status, detail)
        self.status, self.detail, self.headers = status, detail, headers or []


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 404, {"detail": "Not Found"})


def method_not_allowed(allowed: list[str]) -> ASGIApp:
    """405, listing what the path does allow (RFC 9110 §15.5.6: a 405 MUST carry Allow)."""

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 405, {"detail": "Method Not Allowed"}, [(b"allow", ", ".join(allowed).encode("latin-1"))])

    return respond


async def handle_errors(handler: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``handler``, turning its exceptions into responses while that is still possible.

    Once ``http.response.start`` has gone out the status is fixed; an exception after
    that is re-raised, and the ASGI spec has the server close the connection, which
    tells the client the response is incomplete.  An unexpected exception before it
    is logged with its traceback and answered with a generic 500 that says nothing
    about the cause (the text of an exception can hold paths, SQL, secrets).
    """
    started = False

    async def tracking_send(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await handler(scope, receive, tracking_send)
    except Disconnect:
        return  # nobody to answer
    except HTTPError as exc:
        if started:
            raise
        await send_json(send, exc.status, {"detail": exc.detail}, exc.headers)
    except ValidationFailed as exc:
        if started:
            raise
        await send_json(send, 422, exc.detail())
    except Exception:
        log.exception("unhandled exception in %s %s", scope["method"], scope["path"])
        if started:
            raise
        await send_json(send, 500, {"detail": "Internal Server Error"})


# --- Application ---

# (path pattern, {method: handler}), tried in order; a named group becomes a path
# parameter.  ``[^/]+`` is what Starlette's default "str" convertor matches too.
ROUTES: list[tuple[re.Pattern[str], dict[str, ASGIApp]]] = [
    (re.compile(r"/"), {"GET": index}),
    (re.compile(r"/plaintext"), {"GET": plaintext}),
    (re.compile(r"/json"), {"GET": json_hello}),
    (re.compile(r"/items/(?P<item_id>[^/]+)"), {"GET": get_item}),
    (re.compile(r"/items"), {"GET": list_items, "POST": create_item}),
    (re.compile(r"/stream"), {"GET": stream}),
    (re.compile(r"/echo"), {"POST": echo}),
    (re.compile(r"/headers"), {"GET": headers}),
    (re.compile(r"/inspect"), {"GET": inspect_request}),
    (re.compile(r"/slow"), {"GET": slow}),
    (re.compile(r"/error"), {"GET": error}),
    (re.compile(r"/health"), {"GET": health}),
]
WEBSOCKET_ROUTES: dict[str, ASGIApp] = {"/ws": websocket_echo}


def route(scope: Scope) -> ASGIApp:
    """The handler for an HTTP scope; path parameters go into ``scope["path_params"]``."""
    for pattern, methods in ROUTES:
        match = pattern.fullmatch(scope["path"])
        if match is None:
            continue
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        if method not in methods:
            allowed = sorted({*methods, "HEAD"} if "GET" in methods else methods)
            return method_not_allowed(allowed)
        scope["path_params"] = match.groupdict()
        return methods[method]
    return not_found


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI application: one call per connection scope."""
    if scope["type"] == "http":
        await handle_errors(route(scope), scope, receive, send)
    elif scope["type"] == "websocket":
        handler = WEBSOCKET_ROUTES.get(scope["path"])
        if handler is not None:
            await handler(scope, receive, send)
        else:
            # Closing before accepting makes the server refuse the handshake with 403.
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1000})
    elif scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    else:
        # Spec: an app should raise on a scope type it does not understand.
        raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")
