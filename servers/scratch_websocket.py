"""scratch-asgi's WebSocket cycle: one accepted (or refused) WebSocket, as tasks and callbacks on the event loop.

Theory of operation
-------------------
An ASGI WebSocket is one long application call: ``websocket.connect`` first, then ``websocket.accept`` or
``websocket.close`` from the app, then messages both ways until one side closes (ASGI WebSocket spec 2.4).  This
module is the event-loop side of that conversation for scratch-asgi (``scratch_asgi.py`` starts it when its
connection reports a ``WebSocketRequest``): a queue of messages for the app's ``receive()``, flow control on the
socket when the app falls behind, and the timers that close a connection whose peer never finishes the close
handshake.  The rules live in the core: the handshake's answers in ``core/connection.py`` (``accept_websocket``,
``deny_websocket``), the frames in ``core/websocket.py``'s wsproto session.  It is a module of its own so that
``scratch_asgi.py`` holds the HTTP server alone and reads beside ``scratch_wsgi.py``: WSGI has no WebSockets.

What it deliberately does not do: permessage-deflate (RFC 7692; we never agree to it, RFC 6455 §9.1), or pings of
its own (a client or proxy may ping; we always answer).

Spec: ASGI WebSocket spec 2.4; RFC 6455 §5 (frames, via wsproto), §7 (closing).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from servers.core.asgi import ASGIProtocolError, websocket_scope
from servers.core.events import RequestHead
from servers.core.http import ClientDisconnected, access_line
from servers.core.websocket import WebSocketSession

if TYPE_CHECKING:
    from servers.scratch_asgi import Connection

# WebSocket messages queued for an app that is not calling receive(): above this, stop reading
# (the websockets library's max_queue is 16 too; uvicorn passes it --ws-max-queue, default 32).
WS_QUEUE_HIGH = 16

log = logging.getLogger("layercake.server")
access_log = logging.getLogger("layercake.access")


class WebSocketCycle:
    """One WebSocket: the ASGI conversation before the handshake (``websocket.connect``, then ``accept`` or
    ``close``), and the core's wsproto session after it."""

    def __init__(self, connection: Connection, head: RequestHead) -> None:
        server = connection.server
        self.connection = connection
        self.transport = connection.transport
        self.conn = connection.conn
        self.head = head
        self.scope = websocket_scope(head, server=server.server_address, client=connection.client, state=server.state)
        self.session: WebSocketSession | None = None
        self.messages: deque[dict[str, Any]] = deque([{"type": "websocket.connect"}])
        self.wakeup = asyncio.Event()
        self.closed: dict[str, Any] | None = None  # the websocket.disconnect message, once the socket is gone
        self.handshake_done = False

    # -- from the connection ---------------------------------------------------------------------------------
    def feed(self, data: bytes | None) -> None:
        assert self.session is not None  # frames are fed only after the handshake
        outcome = self.session.receive_data(data)
        if outcome.output and not self.transport.is_closing():
            self.transport.write(outcome.output)
        for message in outcome.messages:
            self._deliver(message)
        if outcome.close:
            self.transport.close()  # RFC 6455 §7.1.1: the server closes the TCP connection first
        if len(self.messages) > WS_QUEUE_HIGH:
            self.connection.flow.pause_reading()

    def _deliver(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.disconnect":
            self.closed = message
        else:
            self.messages.append(message)
        self.wakeup.set()

    def on_disconnect(self) -> None:
        if self.closed is None:
            if self.session is not None:
                self.feed(None)  # wsproto reports 1006 (abnormal closure: no close frame)
            else:
                self.closed = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        self.wakeup.set()

    def shutdown(self, code: int) -> None:
        if self.session is None:
            self.transport.close()
            return
        data = self.session.shutdown(code)
        if data:
            self.transport.write(data)
        self._deliver({"type": "websocket.disconnect", "code": code, "reason": "server shutting down"})
        self.connection.loop.call_later(1.0, self.transport.close)  # a moment for the client's close frame

    # -- the app's receive and send ----------------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        while not self.messages and self.closed is None:
            self.wakeup.clear()
            if self.session is not None:
                self.connection.flow.resume_reading()
            await self.wakeup.wait()
        if self.messages:
            return self.messages.popleft()
        assert self.closed is not None  # the loop above ends with a message or the disconnect
        return self.closed

    async def send(self, message: dict[str, Any]) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if self.session is None:  # before the handshake
            if self.closed is not None:
                raise ClientDisconnected(f"client disconnected before the handshake; {kind!r} not sent")
            if kind == "websocket.accept":
                response, first_frames = self.conn.accept_websocket(message)
                self.transport.write(response)
                self.handshake_done = True
                self.session = WebSocketSession(self.connection.limits.max_ws_message, first_frames)
                self._log()
                self.feed(b"")
                self.connection.flow.resume_reading()
            elif kind == "websocket.close":
                self._deny(self.conn.deny_websocket())
            else:
                raise ASGIProtocolError(
                    f"Expected ASGI message 'websocket.accept' or 'websocket.close', but got {kind!r}."
                )
            return
        data = self.session.send(message)  # raises once closed (ASGI 2.4), with who closed it
        if data and not self.transport.is_closing():
            self.transport.write(data)
            if self.connection.flow.write_paused:  # a client not reading slows the app down, not our memory
                await self.connection.flow.drain()
        if kind == "websocket.close":
            # Our close frame is out; the client answers with its own (handled in feed, which closes TCP).  If it
            # never does, close anyway after the keep-alive timeout.
            self.connection.loop.call_later(self.connection.limits.keepalive_timeout, self.transport.close)

    def _deny(self, response: bytes) -> None:
        self.handshake_done = True
        self.transport.write(response)
        self._log()
        self.connection.websocket = None
        self.connection.after_response()

    async def run(self) -> None:
        try:
            await self.connection.server.app(self.scope, self.receive, self.send)
        except ClientDisconnected as exc:
            log.debug("%s %s", self.connection.client, exc)
        except Exception:
            log.exception("application error in WebSocket %s", self.scope["raw_path"].decode("latin-1"))
            if not self.handshake_done:
                self._deny(self.conn.send_error(500, "Internal Server Error"))
            elif self.session is not None and self.closed is None:
                # RFC 6455 §7.4.1, 1011: "a server is terminating the connection because it encountered an
                # unexpected condition that prevented it from fulfilling the request."
                self._close_after_app(1011)
        else:
            if not self.handshake_done:
                log.error("ASGI callable returned without accepting or closing the WebSocket")
                self._deny(self.conn.send_error(500, "Internal Server Error"))
            elif self.session is not None and self.session.closed_by is None:
                self._close_after_app(1000)  # the app is done with it: a normal closure

    def _close_after_app(self, code: int) -> None:
        assert self.session is not None  # called only once the handshake is done
        try:
            data = self.session.send({"type": "websocket.close", "code": code})
        except (ClientDisconnected, ASGIProtocolError):
            return
        if not self.transport.is_closing():
            self.transport.write(data)
        self.connection.loop.call_later(self.connection.limits.keepalive_timeout, self.transport.close)

    def _log(self) -> None:
        if self.connection.server.config.access_log:
            head, writer = self.head, self.conn.writer
            status = writer.status if writer is not None else 0
            access_log.info(
                access_line(self.connection.client, b"WEBSOCKET", head.target, head.http_version, status, 0, 0.0)
            )
