"""The ASGI lifespan conversation on an asyncio loop: the waiting around ``servers/core/lifespan.py``'s rules.

One task runs ``app(lifespan_scope, receive, send)`` for the life of the process; :meth:`LifespanRunner.startup`
and :meth:`LifespanRunner.shutdown` hand it a message and wait until the core's :class:`LifespanProtocol` says the
phase was answered.  scratch-asgi, the in-process contract driver (``layercake/inprocess.py``), the in-process
benchmark (``layercake/bench/costs.py``) and the ASGI->WSGI bridge (``servers/bridges.py``) all run lifespan
through this class, so they agree on what an application's answer means.

What it deliberately does not do: log or print (each caller says what a failure means for it), or time out on its
own (``timeout`` bounds a wait when the caller asks).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from servers.core.lifespan import LifespanProtocol

__all__ = ["LifespanRunner"]


class LifespanRunner:
    """``await startup()`` before serving, ``await shutdown()`` after; ``protocol`` holds the outcome
    (``supported``, ``failed``) and the ``state`` dict to copy into request scopes."""

    def __init__(self, app: Any, mode: str = "auto", state: dict[str, Any] | None = None) -> None:
        self.app = app
        self.protocol = LifespanProtocol(mode, state)
        self.messages: list[dict[str, Any]] = []  # what the application sent, in order (for the tools that show it)
        # Made here, used on whichever loop runs startup() (asyncio binds a queue or an event to a loop on first use).
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> dict[str, Any]:
        return self.protocol.state

    async def _main(self) -> None:
        protocol = self.protocol
        error: BaseException | None = None
        try:
            await self.app(protocol.scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 -- the protocol decides: unsupported or failed
            error = exc
            if isinstance(exc, asyncio.CancelledError) and protocol.answered:
                error = None
        finally:
            protocol.app_ended(error)
            self._answered.set()

    async def _receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        self.protocol.app_sent(message)  # raises ASGIProtocolError for a message out of order
        self.messages.append(message)
        self._answered.set()

    async def startup(self, timeout: float | None = None) -> LifespanProtocol:
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._inbox.put(self.protocol.message())
        await asyncio.wait_for(self._answered.wait(), timeout)
        return self.protocol

    async def shutdown(self, timeout: float | None = None) -> LifespanProtocol:
        if self._task is None or not self.protocol.begin_shutdown():
            return self.protocol
        self._answered.clear()
        await self._inbox.put(self.protocol.message())
        try:
            await asyncio.wait_for(self._answered.wait(), timeout)
        finally:
            if not self._task.done():
                self._task.cancel()  # the application's lifespan call is over: do not leave it pending
                with contextlib.suppress(BaseException):
                    await self._task
        return self.protocol
