"""A minimum data rate for request heads and bodies, sans-I/O: fed byte counts and timestamps, it answers
whether the client has fallen below the rate.

Theory of operation
-------------------
A timeout alone bounds how long a client may take, not how slowly it may send: a client that trickles one byte a
second keeps a connection (a thread, in a threaded server) for the whole header timeout, and one that trickles
a body has no bound at all.  Apache's ``mod_reqtimeout`` answers with ``MinRate``: ``header=20-40,MinRate=500``
gives a request head 20 seconds, extended by one second for every 500 bytes received.  This tracker keeps the
same rule, written as a deadline::

    deadline = start + grace + received / min_rate      (time spent paused does not count)

The client is *too slow* once ``now`` passes the deadline: it has had ``grace`` seconds plus one second per
``min_rate`` bytes it sent, and it used them up.  A normal client sends its head in one segment and its body as
fast as the network allows, and never comes near it; a slowloris client sending a byte a second is cut after
``grace`` seconds (plus a few milliseconds), not after the whole header timeout.  The deadline only moves
forward as bytes arrive, so the I/O shell can set one timer (``loop.call_at(deadline)`` or a socket timeout of
``deadline - now``), re-arm it on data, and ask :meth:`RateTracker.too_slow` when it fires.

Time the server is not reading does not count against the client: :meth:`pause` when the server stops reading
(the app is not consuming the body, flow control paused the transport), :meth:`resume` when it reads again.

How the servers call it (one tracker per request head, and one per request body):

* head: ``RateTracker.start(limits.min_rate, limits.min_rate_grace, now)`` when the head's first byte arrives
  (where ``header_timeout`` starts); ``received(len(data), now)`` on every read until the head is complete;
  when ``too_slow(now)`` the server answers 408 Request Timeout and closes, as for the header timeout.
  ``header_timeout`` stays the hard cap: the rate can only cut a client earlier, never keep one longer.
* body: a new tracker when the app first asks for the body; ``received`` per read, ``pause``/``resume`` around
  flow-control pauses; when ``too_slow``, 408 if no response has started, else close the connection.

``min_rate = 0`` disables it (``RateTracker.start`` returns ``None``).

What it deliberately does not do: look at the clock, a socket or a timer -- the caller passes ``now`` (a
monotonic time), so the rule is a pure function that tests can drive with made-up times.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RateTracker"]


@dataclass
class RateTracker:
    """Bytes received against a minimum rate, after a grace period (Apache ``mod_reqtimeout`` ``MinRate``)."""

    min_rate: float  # bytes per second the client must keep up, on average, after the grace period
    grace: float  # seconds allowed on top of one second per ``min_rate`` bytes
    started: float  # monotonic time the measured transfer started
    bytes: int = 0
    paused_for: float = 0.0  # seconds spent paused (not counted)
    paused_at: float | None = None

    @classmethod
    def start(cls, min_rate: float, grace: float, now: float) -> RateTracker | None:
        """A tracker from ``now``; ``None`` when ``min_rate`` is 0 (no minimum)."""
        if min_rate <= 0:
            return None
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, not {grace}")
        return cls(float(min_rate), float(grace), now)

    def received(self, nbytes: int, now: float) -> None:
        """``nbytes`` arrived at ``now`` (a read also ends a pause: the server is reading)."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        self.resume(now)
        self.bytes += nbytes

    def pause(self, now: float) -> None:
        """The server stopped reading; the time until :meth:`resume` is not the client's."""
        if self.paused_at is None:
            self.paused_at = now

    def resume(self, now: float) -> None:
        if self.paused_at is not None:
            self.paused_for += max(0.0, now - self.paused_at)
            self.paused_at = None

    def deadline(self) -> float:
        """When the client becomes too slow, if no more bytes arrive (``inf`` while paused)."""
        if self.paused_at is not None:
            return float("inf")
        return self.started + self.paused_for + self.grace + self.bytes / self.min_rate

    def too_slow(self, now: float) -> bool:
        """Has the client fallen below ``min_rate`` after the grace period?"""
        return now > self.deadline()

    def rate(self, now: float) -> float:
        """The average rate so far, bytes per second of unpaused time (for logs and errors)."""
        paused = self.paused_for + (now - self.paused_at if self.paused_at is not None else 0.0)
        elapsed = now - self.started - paused
        return self.bytes / elapsed if elapsed > 0 else float("inf")

    def describe(self, now: float) -> str:
        """Why the client was cut, in words for the log."""
        return (
            f"{self.bytes} bytes in {now - self.started - self.paused_for:.1f} s ({self.rate(now):.0f} B/s), "
            f"below the minimum of {self.min_rate:g} B/s after {self.grace:g} s of grace"
        )
