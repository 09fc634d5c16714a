"""The experiment app on Starlette: one 50 ms wait written three ways, and the thread-pool fix.

Theory of operation
-------------------
Not part of the contract (CONTRACT.md) and never served by ``layercake serve``: the
sync-vs-async lab (``layercake bench --experiment blocking|threadpool``,
``layercake/bench/experiments/``) needs handlers the contract must not have -- one of them is a
mistake on purpose.  The same wait, ``ms`` milliseconds (default 50, 0..10,000 as CONTRACT.md
row 11), written three ways:

- ``GET /block/async-sleep`` -- ``async def`` + ``await asyncio.sleep``: the right way.  The
  coroutine parks on a timer and the event loop serves everyone else meanwhile.
- ``GET /block/async-time-sleep`` -- ``async def`` + ``time.sleep``: **the mistake**.  Nothing in
  ``time.sleep`` yields to the loop, so for those 50 ms the whole process serves nobody: every
  other request on this worker, however trivial, waits behind it.
- ``GET /block/def-sleep`` -- ``def`` + ``time.sleep``: Starlette sees a plain function
  (``starlette.routing.request_response`` checks ``is_async_callable``) and runs it with
  ``run_in_threadpool``, i.e. ``anyio.to_thread.run_sync``: the loop stays free, but each call
  borrows one of the *default thread limiter's* tokens -- 40 of them unless someone raises it.
  The 41st concurrent call waits for a token.

``GET /plaintext`` is the contract's route (row 2), the bystander the ``blocking`` experiment times.
``GET /limiter`` answers the default limiter's ``{"total_tokens", "borrowed_tokens"}``, so the
harness verifies which configuration it is measuring.

Two apps: ``app`` keeps anyio's default; ``app_raised`` raises ``total_tokens`` to
:data:`RAISED_TOKENS` in its lifespan startup -- the fix, which has to run *inside* the event loop
because the default limiter is per loop (an ``anyio.lowlevel.RunVar``), so setting it at import
time would touch no loop at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from layers.shared.validation import ValidationFailed, parse_slow_ms

#: What ``app_raised`` sets the limiter to: above the largest concurrency the threadpool experiment
#: sweeps (128), so the pool never queues there.  Each token is a possible OS thread (~8 MiB of
#: virtual stack, a few hundred KiB resident once used): raise it to what the workload needs, not to
#: "infinity".
RAISED_TOKENS = 256


def _ms(request: Request) -> int:
    return parse_slow_ms(request.query_params)  # raises the contract's 422 for a bad value


async def plaintext(request: Request) -> Response:
    return PlainTextResponse("Hello, World!")


async def async_sleep(request: Request) -> Response:
    ms = _ms(request)
    await asyncio.sleep(ms / 1000)  # parks this coroutine; the loop serves others
    return JSONResponse({"slept_ms": ms, "variant": "async-sleep"})


async def async_time_sleep(request: Request) -> Response:
    ms = _ms(request)
    time.sleep(ms / 1000)  # THE MISTAKE: blocks the event loop, and with it every request on this worker
    return JSONResponse({"slept_ms": ms, "variant": "async-time-sleep"})


def def_sleep(request: Request) -> Response:
    ms = _ms(request)
    time.sleep(ms / 1000)  # fine here: a plain def runs in anyio's thread pool, one token per call
    return JSONResponse({"slept_ms": ms, "variant": "def-sleep"})


async def limiter(request: Request) -> Response:
    lim = anyio.to_thread.current_default_thread_limiter()
    return JSONResponse({"total_tokens": lim.total_tokens, "borrowed_tokens": lim.borrowed_tokens})


ROUTES = [
    Route("/plaintext", plaintext),
    Route("/block/async-sleep", async_sleep),
    Route("/block/async-time-sleep", async_time_sleep),
    Route("/block/def-sleep", def_sleep),
    Route("/limiter", limiter),
]


@asynccontextmanager
async def raise_thread_limit(app: Starlette) -> AsyncIterator[None]:
    # The fix: more tokens for the loop this app runs on.  Lifespan startup runs on that loop.
    anyio.to_thread.current_default_thread_limiter().total_tokens = RAISED_TOKENS
    yield


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationFailed)
    return JSONResponse(exc.detail(), status_code=422)


HANDLERS = {ValidationFailed: validation_error}
app = Starlette(routes=ROUTES, exception_handlers=HANDLERS)
app_raised = Starlette(routes=ROUTES, exception_handlers=HANDLERS, lifespan=raise_thread_limit)
