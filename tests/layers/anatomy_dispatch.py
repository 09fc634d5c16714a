"""Every anatomy variant behind one app per interface, for checking them on one real server.

Starting a server per variant would cost a second each; instead one server runs a
dispatcher that hands each request to the variant named in its ``x-anatomy-step``
header (``LAYER/STEP``).  The dispatcher answers the ASGI lifespan itself and passes the
request on untouched otherwise, so each variant sees exactly what a server gave it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from layercake.anatomy import get_ladder, ladders

HEADER = "x-anatomy-step"


def _variants(interface: str) -> dict[str, Any]:
    out = {}
    for name in ladders():
        ladder = get_ladder(name)
        if ladder.interface == interface:
            out.update({f"{name}/{step.key}": step.build() for step in ladder.steps})
    return out


ASGI_VARIANTS = _variants("asgi")
WSGI_VARIANTS = _variants("wsgi")


async def asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    key = dict(scope["headers"]).get(HEADER.encode(), b"").decode()
    await ASGI_VARIANTS[key](scope, receive, send)


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    return WSGI_VARIANTS[environ["HTTP_" + HEADER.upper().replace("-", "_")]](environ, start_response)
