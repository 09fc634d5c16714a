"""HTTP/1.1 pieces both scratch servers share: the exceptions an application sees, the Date header, the request
target, the canned rejection and the access-log line.

Theory of operation
-------------------
Small helpers with no state worth a module of their own.  Parsing is ``parsers.py`` (behind the strict gate,
``strict.py``); every decision about a connection is ``connection.py``; ordinary responses are written by
``writer.py``.

The headers a server adds (RFC 9110):

* ``Date`` -- section 6.6.1: "An origin server with a clock ... MUST generate a Date header field" in 2xx, 3xx
  and 4xx responses (and MAY in others).  Its resolution is one second, so we format it at most once a second.
* ``Server`` -- section 10.2.4, optional; we send the server's name so a trace shows who answered.

This module performs no I/O: it computes bytes and strings; the servers move them.  What it deliberately does
not do: check request heads (``strict.py``) or write ordinary responses (``writer.py``) -- ``rejection_response``
is the one response written here, for a request refused before any response writer exists.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from urllib.parse import unquote_to_bytes

__all__ = [
    "ClientDisconnected",
    "DateHeader",
    "RequestBodyError",
    "access_line",
    "rejection_response",
    "split_target",
    "peer",
    "status_phrase",
]


class ClientDisconnected(OSError):
    """The client went away; raised by ``send()``/``write()`` so the application stops producing a response.

    ASGI spec 2.4 (HTTP, "Send"): "If send() is called on a closed connection the server should raise a
    server-specific subclass of OSError."  A subclass of OSError because that is what a WSGI app writing to a dead
    socket would see too.
    """


class RequestBodyError(Exception):
    """Reading the request body failed by the client's fault: over ``Limits.max_body_bytes`` while counting a chunked
    upload (413), a malformed chunk (400), a body that stopped coming (408).  Raised from ``wsgi.input`` and
    ``receive()`` (the connection's ``BodyError`` event, as an exception the application can let propagate); if it
    does and the response has not started, the server answers ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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


PHRASES = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def status_phrase(status: int) -> bytes:
    """The reason phrase (RFC 9112 §4: informational only; clients ignore it); empty for an unregistered code."""
    return PHRASES.get(status, b"")


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


def rejection_response(
    status: int, reason: str, server: bytes, date: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> bytes:
    """A complete response for a head refused before h11 saw it, written by hand because there is no h11 state
    to keep in step.  Always ``Connection: close``: after a malformed head we cannot know where the next request
    would begin (RFC 9112 §9.6 lets a server close; §2.2 says to respond 400 and close after an invalid
    request line).  ``headers``: fields the status requires, e.g. ``Sec-WebSocket-Version`` with a 426 (RFC 6455
    §4.4: the server "MUST ... include a Sec-WebSocket-Version header field" listing the versions it speaks)."""
    body = f"{status} {status_phrase(status).decode()}: {reason}\n".encode("utf-8", "replace")
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, status_phrase(status)),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            *[name + b": " + value + b"\r\n" for name, value in headers or ()],
            b"date: ",
            date,
            b"\r\n",
            b"server: ",
            server,
            b"\r\n\r\n",
            body,
        ]
    )


def peer(client: tuple[str, int] | None) -> str:
    """``host:port`` of a client for a log line, ``-`` when the socket had no peer address."""
    return f"{client[0]}:{client[1]}" if client else "-"


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
    return (
        f'{peer(client)} - "{method.decode("latin-1")} {target.decode("latin-1")} HTTP/{http_version.decode()}" '
        f"{status} {size} {duration * 1000:.1f}ms"
    )
