"""HTTP/1.1 pieces both scratch servers share: one h11 connection per request cycle, the Date header, the request
target, canned rejections and the access-log line.

Theory of operation
-------------------
h11 is a sans-I/O state machine: ``receive_data(bytes)`` in, ``next_event()`` out.  We use it for the hard
direction, *parsing requests* (responses are written by ``writer.py``).  Our servers create **one**
``h11.Connection`` per request cycle rather than one per socket (``new_cycle``).  The usual way is to keep one and
call ``start_next_cycle()``; we do not, because h11 would then parse a pipelined head straight out of its buffer,
and every head must first pass ``servers/core/strict.py`` (see ``head.py``).  After ``EndOfMessage`` the server
takes the unparsed bytes back with ``trailing_data`` and gives them to its ``HeadReader``.  The cost is
constructing a small object per request (under a microsecond); the gain is that no byte reaches the application
without passing our checks.

The headers a server adds (RFC 9110):

* ``Date`` -- section 6.6.1: "An origin server with a clock ... MUST generate a Date header field" in 2xx, 3xx
  and 4xx responses (and MAY in others).  Its resolution is one second, so we format it at most once a second.
* ``Server`` -- section 10.2.4, optional; we send the server's name so a trace shows who answered.

This module performs no I/O: it computes bytes and strings; the servers move them.  What it deliberately does
not do: check request heads (``strict.py``) or write ordinary responses (``writer.py``) -- ``rejection_response``
is the one response written here, for a head refused before any h11 state exists.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

import h11

from servers.core.limits import Limits

if TYPE_CHECKING:
    from servers.core.writer import ResponseWriter

__all__ = [
    "BodyTooLarge",
    "ClientDisconnected",
    "DateHeader",
    "access_line",
    "new_cycle",
    "rejection_response",
    "reusable",
    "split_target",
    "status_phrase",
]


class ClientDisconnected(OSError):
    """The client went away; raised by ``send()``/``write()`` so the application stops producing a response.

    ASGI spec 2.4 (HTTP, "Send"): "If send() is called on a closed connection the server should raise a
    server-specific subclass of OSError."  A subclass of OSError because that is what a WSGI app writing to a dead
    socket would see too.
    """


class BodyTooLarge(Exception):
    """The request body exceeded ``Limits.max_body_bytes`` while being read (a chunked upload: with a
    Content-Length the server refuses before the application runs).  Raised from ``wsgi.input``/``receive()``;
    if it propagates out of the application before the response started, the server answers 413."""


def new_cycle(limits: Limits) -> h11.Connection:
    """A fresh h11 server connection for one request cycle (see the module docstring for why not one per socket).

    ``max_incomplete_event_size`` bounds what h11 buffers while waiting for a complete event: chunk-size lines and
    trailers, since heads were already measured by ``check_partial_head``.
    """
    return h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)


def reusable(conn: h11.Connection, writer: ResponseWriter) -> bool:
    """May another request follow on this socket?  Our response must be complete and allow it (``writer``: the
    persistence rules of RFC 9112 §9.3), and the client's request must have been read to its end (h11 moves to
    MUST_CLOSE for ``Connection: close`` and HTTP/1.0)."""
    return writer.finished and writer.keep_alive and conn.their_state is h11.DONE


class DateHeader:
    """RFC 9110 §6.6.1 ``Date`` value, formatted once per second (its resolution) rather than per response."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = imf_fixdate(now)
        return self._value


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imf_fixdate(seconds: float) -> bytes:
    """RFC 9110 §5.6.7 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``.  Written out rather than taken from
    ``email.utils.formatdate``, which would import ``socket`` into the sans-I/O core."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    ).encode("ascii")


_PHRASES = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def status_phrase(status: int) -> bytes:
    """The reason phrase (RFC 9112 §4: informational only; clients ignore it); empty for an unregistered code."""
    return _PHRASES.get(status, b"")


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """``(raw_path, query)`` from a request target.

    RFC 9112 §3.2: origin-form ``/path?query`` is the normal case; absolute-form ``http://host/path?query`` must be
    accepted by servers ("A server MUST accept the absolute-form in requests") and its path used; asterisk-form
    ``*`` (OPTIONS) is passed through as the path.
    """
    if target[:1] != b"/" and b"://" in target[:10]:
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"?")
    path = path.partition(b"#")[0]  # a fragment is never sent, but if it is, it is not part of the path
    return path, query


def decode_path(raw_path: bytes) -> bytes:
    """Percent-decode a path into bytes; the caller decodes those per its interface (latin-1 for WSGI, UTF-8 for
    ASGI).  ``%2F`` becomes ``/`` like in every WSGI server: the information is kept in RAW_URI/raw_path."""
    return unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path


def rejection_response(status: int, reason: str, server: bytes, date: bytes) -> bytes:
    """A complete response for a head refused before h11 saw it, written by hand because there is no h11 state
    to keep in step.  Always ``Connection: close``: after a malformed head we cannot know where the next request
    would begin (RFC 9112 §9.6 lets a server close; §2.2 says to respond 400 and close after an invalid
    request line)."""
    body = f"{status} {status_phrase(status).decode()}: {reason}\n".encode("utf-8", "replace")
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, status_phrase(status)),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            b"date: ",
            date,
            b"\r\n",
            b"server: ",
            server,
            b"\r\n\r\n",
            body,
        ]
    )


def access_line(
    client: tuple[str, int] | None,
    method: bytes,
    target: bytes,
    http_version: bytes,
    status: int,
    size: int,
    duration: float,
) -> str:
    """One access-log line, shaped like uvicorn's and gunicorn's so a reader recognises it."""
    who = f"{client[0]}:{client[1]}" if client else "-"
    return (
        f'{who} - "{method.decode("latin-1")} {target.decode("latin-1")} HTTP/{http_version.decode()}" '
        f"{status} {size} {duration * 1000:.1f}ms"
    )
