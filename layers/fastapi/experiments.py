"""The experiment app on FastAPI: one 50 ms wait written three ways, and the thread-pool fix.

Theory of operation
-------------------
Not part of the contract (CONTRACT.md) and never served by ``layercake serve``: the
sync-vs-async lab (``layercake bench --experiment blocking|threadpool``,
``layercake/bench/experiments/``) needs handlers the contract must not have -- one of them is a
mistake on purpose.  The routes and their meaning are those of ``layers/starlette/experiments.py``;
what FastAPI changes is who decides where a handler runs.  ``fastapi.routing.get_request_handler``
checks ``asyncio.iscoroutinefunction(endpoint)`` once, at import: a coroutine is awaited on the
event loop, a plain ``def`` is sent to ``starlette.concurrency.run_in_threadpool`` -- anyio's
``to_thread.run_sync`` under the *default thread limiter*, 40 tokens.  (Sync dependencies go the
same way, one thread hop each.)

- ``GET /block/async-sleep?ms=50`` -- ``async def`` + ``await asyncio.sleep``: the right way.
- ``GET /block/async-time-sleep?ms=50`` -- ``async def`` + ``time.sleep``: **the mistake**; the loop
  is blocked, and every request on the worker waits.
- ``GET /block/def-sleep?ms=50`` -- ``def`` + ``time.sleep``: runs in the pool; past 40 in flight the
  rest queue for a token -- the cliff the ``threadpool`` experiment measures.
- ``GET /plaintext`` -- the contract's row 2, the bystander.
- ``GET /limiter`` -- ``{"total_tokens", "borrowed_tokens"}`` of the default limiter, so the harness
  verifies which configuration it measures.

``ms`` is validated by FastAPI from the annotation (0..10,000, CONTRACT.md row 11's bounds): a bad
value is FastAPI's own 422.

Two apps: ``app`` keeps anyio's default; ``app_raised`` raises ``total_tokens`` to
:data:`RAISED_TOKENS` in its lifespan -- the documented fix.  It has to run inside the event loop
(lifespan startup does), because the default limiter is per loop (an ``anyio.lowlevel.RunVar``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Query
from fastapi.responses import PlainTextResponse

from layers.shared.validation import SLOW_MAX, SLOW_MIN

#: What ``app_raised`` sets the limiter to: above the largest concurrency the threadpool experiment
#: sweeps (128).  Each token is a possible OS thread: raise it to what the workload needs.
RAISED_TOKENS = 256

Ms = Annotated[int, Query(ge=SLOW_MIN, le=SLOW_MAX)]


def add_routes(app: FastAPI) -> FastAPI:
    @app.get("/plaintext", response_class=PlainTextResponse)
    async def plaintext() -> str:
        return "Hello, World!"

    @app.get("/block/async-sleep")
    async def async_sleep(ms: Ms = 50) -> dict[str, Any]:
        await asyncio.sleep(ms / 1000)  # parks this coroutine; the loop serves others
        return {"slept_ms": ms, "variant": "async-sleep"}

    @app.get("/block/async-time-sleep")
    async def async_time_sleep(ms: Ms = 50) -> dict[str, Any]:
        time.sleep(ms / 1000)  # THE MISTAKE: blocks the event loop, and with it every request on this worker
        return {"slept_ms": ms, "variant": "async-time-sleep"}

    @app.get("/block/def-sleep")
    def def_sleep(ms: Ms = 50) -> dict[str, Any]:
        time.sleep(ms / 1000)  # fine here: a plain def runs in anyio's thread pool, one token per call
        return {"slept_ms": ms, "variant": "def-sleep"}

    @app.get("/limiter")
    async def limiter() -> dict[str, Any]:
        lim = anyio.to_thread.current_default_thread_limiter()
        return {"total_tokens": lim.total_tokens, "borrowed_tokens": lim.borrowed_tokens}

    return app


@asynccontextmanager
async def raise_thread_limit(app: FastAPI) -> AsyncIterator[None]:
    # The fix: more tokens for the loop this app runs on.  Lifespan startup runs on that loop.
    anyio.to_thread.current_default_thread_limiter().total_tokens = RAISED_TOKENS
    yield


app = add_routes(FastAPI(openapi_url=None))
app_raised = add_routes(FastAPI(openapi_url=None, lifespan=raise_thread_limit))
