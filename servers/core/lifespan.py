"""The ASGI lifespan protocol as a state machine, sans-I/O: what to send the application, what its answers mean.

Theory of operation
-------------------
ASGI lifespan spec 2.0: the server calls the application once, with a ``lifespan`` scope, for the life of the
process.  It sends ``lifespan.startup`` before the first connection and waits for ``lifespan.startup.complete`` (or
``.failed``); at the end it sends ``lifespan.shutdown`` and waits for ``lifespan.shutdown.complete`` (or
``.failed``).  The scope's ``state`` dict is what the application stores at startup; every request scope gets a
shallow copy of it ("Lifespan State").

Everyone who runs an ASGI application needs this conversation -- scratch-asgi, the in-process driver the contract
runs on, the in-process benchmark and the ASGI->WSGI bridge -- and each used to write it out again.  This class is
the one copy of its rules; the waiting (an event loop's queue and task) is ``servers/lifespan.py``.

The rules, with the spec's words:

* **Order**: during startup only ``lifespan.startup.complete`` or ``.failed`` may be sent, during shutdown only the
  shutdown pair; anything else raises :class:`~servers.core.asgi.ASGIProtocolError` naming both, as uvicorn does.
* **Unsupported**: "If an exception is raised when calling the application callable with a lifespan.startup
  message or a scope with type lifespan, the server must continue but not send any lifespan events" -- unless the
  server was told lifespan is required (``mode="on"``, uvicorn's ``--lifespan on``), when it is a failure.
* **An application that returns** without answering has nothing more to say; the server carries on (uvicorn does
  the same).

What it deliberately does not do: time out (the caller bounds its waits), or run anything.
"""

from __future__ import annotations

from typing import Any

from servers.core.asgi import ASGI_VERSION, ASGIProtocolError

__all__ = ["LIFESPAN_VERSION", "LifespanProtocol"]

#: The lifespan scope's ``asgi`` key: the callable style is ASGI 3.0; the lifespan spec's own version is 2.0.
LIFESPAN_VERSION = {"version": ASGI_VERSION["version"], "spec_version": "2.0"}

_REPLIES = {
    "startup": ("lifespan.startup.complete", "lifespan.startup.failed"),
    "shutdown": ("lifespan.shutdown.complete", "lifespan.shutdown.failed"),
}


class LifespanProtocol:
    """One lifespan conversation.  ``mode``: ``"auto"`` (an application that raises at once does not speak lifespan,
    and that is fine) or ``"on"`` (it must).

    The driver's loop: ``receive()`` hands the application :meth:`message`; the application's ``send`` goes to
    :meth:`app_sent`; when the application's call ends, :meth:`app_ended`.  The phase is answered when
    ``answered`` is true; then ``supported`` and ``failed`` say how it went.
    """

    __slots__ = ("mode", "state", "phase", "answered", "supported", "failed", "ended")

    def __init__(self, mode: str = "auto", state: dict[str, Any] | None = None) -> None:
        if mode not in ("auto", "on"):
            raise ValueError(f"lifespan mode must be 'auto' or 'on', not {mode!r}")
        self.mode = mode
        self.state: dict[str, Any] = {} if state is None else state
        self.phase = "startup"
        self.answered = False
        self.supported = True
        self.failed: str | None = None  # the application's message (or exception) when a phase failed
        self.ended = False  # the application's lifespan call has returned or raised

    @property
    def scope(self) -> dict[str, Any]:
        return {"type": "lifespan", "asgi": LIFESPAN_VERSION, "state": self.state}

    def message(self) -> dict[str, Any]:
        """The message for the application's ``receive()`` in this phase."""
        return {"type": f"lifespan.{self.phase}"}

    def begin_shutdown(self) -> bool:
        """Move to the shutdown phase; False if there is nobody to tell (unsupported, failed or ended)."""
        if not self.supported or self.failed is not None or self.ended:
            return False
        self.phase, self.answered = "shutdown", False
        return True

    def app_sent(self, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        expected = _REPLIES[self.phase]
        if not isinstance(kind, str) or kind not in expected or self.answered:
            raise ASGIProtocolError(
                f"Expected ASGI message {' or '.join(map(repr, expected))} during lifespan {self.phase}, "
                f"but got {kind!r}."
            )
        if kind.endswith(".failed"):
            self.failed = message.get("message") or "(no message)"
        self.answered = True

    def app_ended(self, exc: BaseException | None) -> None:
        """The application's lifespan call returned (``exc`` None) or raised."""
        self.ended = True
        if exc is not None and not self.answered:
            if self.phase == "startup" and self.mode == "auto":
                self.supported = False  # the spec: "continue but not send any lifespan events"
            else:
                self.failed = self.failed or f"{type(exc).__name__}: {exc}"
        self.answered = True
