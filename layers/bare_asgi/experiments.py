"""The experiment app on bare ASGI: the two routes the ``cpu`` experiment needs, by hand.

Theory of operation
-------------------
Not part of the contract (CONTRACT.md) and never served by ``layercake serve``: it exists so
the sync-vs-async lab (``layercake bench --experiment cpu``, ``layercake/bench/experiments/``)
can measure a route the contract does not have without adding it to the contract app.

- ``GET /plaintext`` -- ``Hello, World!``, as in the contract (row 2);
- ``GET /cpu?n=20000`` -- :func:`layers.shared.work.burn` ``n`` times *on the event loop*, about
  5 ms of pure Python, answered as ``{"n": n, "fnv1a": hash}``; ``n`` outside 0..2,000,000: 422.

The handler is ``async def`` but never awaits during the work, so for those 5 ms the loop runs
nothing else: no other request is parsed, no other response is written.  That is the point --
async is cooperative, and CPU work does not cooperate.  Only more processes (``--workers 2``) add
throughput.

Lifespan (the ASGI "Lifespan Protocol" spec) is acknowledged and nothing else: this app has no
store.  Anything else: 404 ``{"detail": "Not Found"}``; another method on a known path: 405 with
``Allow`` (RFC 9110 §15.5.6).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from layers.shared.work import MAX_N, burn, parse_n

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


async def _respond(send: Send, status: int, body: bytes, content_type: bytes, extra=()) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, data: Any, extra=()) -> None:
    await _respond(send, status, json.dumps(data).encode(), b"application/json", extra)


async def plaintext(scope: dict[str, Any], send: Send) -> None:
    await _respond(send, 200, b"Hello, World!", b"text/plain")


async def cpu(scope: dict[str, Any], send: Send) -> None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    n = parse_n(query["n"][0] if "n" in query else None)
    if n is None:
        detail = [{"loc": ["query", "n"], "msg": f"n must be an integer in 0..{MAX_N}", "type": "value_error"}]
        await _json(send, 422, {"detail": detail})
        return
    # No await between here and the response: the loop is held for the whole computation.
    await _json(send, 200, {"n": n, "fnv1a": burn(n)})


ROUTES: dict[str, Callable[[dict[str, Any], Send], Awaitable[None]]] = {"/plaintext": plaintext, "/cpu": cpu}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})  # no WebSocket route here
        return
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await _json(send, 404, {"detail": "Not Found"})
    elif scope["method"] not in ("GET", "HEAD"):
        await _json(send, 405, {"detail": "Method Not Allowed"}, [(b"allow", b"GET")])
    else:
        await handler(scope, send)
