"""Writing a response: status line, header fields and body framing, by hand (RFC 9112 §4, §5, §6, §9).

Theory of operation
-------------------
The two directions of HTTP are not equally hard.  *Parsing* a request means facing bytes from a stranger: every
ambiguity is a potential smuggling bug, so we use h11 for it, behind our strict checks.  *Writing* a response means
serialising bytes we produce ourselves from a status, a header list and body chunks; the rules fit on a page, and
they are this module.  We used to send through h11 as well; profiling showed its send path (event objects,
header normalisation, the state machine) was a third of a plaintext request's CPU time, while everything it
protects against on this side is checked here in a few lines.  (gunicorn, waitress and uvicorn's httptools
protocol all write responses by hand too.)

The rules, as applied by :class:`ResponseWriter`:

* **Status line** (RFC 9112 §4): always ``HTTP/1.1`` -- RFC 9110 §6.2: a server "SHOULD send a response version
  equal to the highest version to which the server is conformant that has a major version less than or equal to
  the one received in the request", so a 1.0 client gets ``HTTP/1.1`` too.
* **Fields** (RFC 9110 §5.5): names must be tokens; values must not contain CR, LF or NUL -- otherwise an
  application could end the head early and write a second response of its choosing (response splitting).
  Refused with :class:`ResponseError`, never sent.  ``Date`` and ``Server`` are added when missing (RFC 9110
  §6.6.1, §10.2.4).
* **Framing** (RFC 9112 §6): no body at all for ``HEAD`` and for 1xx, 204 and 304 (§6.3 ¶1), whatever the app
  yields; else the app's ``Content-Length`` (the body must then be exactly that long -- more is refused, fewer
  aborts the connection, §6.3 ¶6); else chunked for HTTP/1.1 clients (§7.1); else, for an HTTP/1.0 client, the end
  of the body is the end of the connection (§6.3 ¶8).
* **Persistence** (RFC 9112 §9.3): HTTP/1.1 connections persist unless either side sends ``Connection: close``;
  HTTP/1.0 ones only with ``Connection: keep-alive``.  When we will close, we say so with ``Connection: close``
  (§9.6: a server that intends to close "SHOULD send a close connection option").

What this module deliberately does not do: trailers, ``Transfer-Encoding`` other than chunked, and ranges.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from servers.core.http import PHRASES, DateHeader

__all__ = ["CONTINUE", "ResponseError", "ResponseWriter", "error_response", "serialize_head"]

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2 tchar


class ResponseError(Exception):
    """The application's response cannot be written as given (bad header, more body than Content-Length)."""


def _bad_value(blob: bytes) -> bool:
    return b"\r" in blob or b"\n" in blob or b"\0" in blob


#: Header names already proved tokens, each with its lowercase.  An application sends the same few names on every
#: response, so the token check and the lowercasing run once per name rather than once per header per response
#: (speed, issue 12).  Bounded: past ``_NAMES_MAX`` distinct names a new one is still checked, just not remembered.
#: (Node's http keeps a table of common field names for the same reason; Go's net/http one of canonical keys.)
_NAMES: dict[bytes, bytes] = {}
_NAMES_MAX = 512


def _token_lower(name: object) -> bytes:
    """``name`` lowercased, once it is proved a token (RFC 9110 §5.1: field-name = token); remembered in ``_NAMES``.
    A name holding ``": "`` would read, once written, as a shorter name and a value: every byte is checked."""
    if type(name) is not bytes:
        raise ResponseError(f"header names and values must be bytes, got {name!r}")
    if not _TOKEN.fullmatch(name):
        raise ResponseError(f"header name {name!r} is not a token (RFC 9110 §5.1)")
    lname = name.lower()
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = lname
    return lname


def serialize_head(status: int, headers: list[tuple[bytes, bytes]], reason: bytes | None = None) -> bytes:
    """Status line and header fields, validated; ends with the empty line."""
    for name, _ in headers:
        if type(name) is not bytes or name not in _NAMES:
            _token_lower(name)
    return _assemble(status, [name + b": " + value + b"\r\n" for name, value in headers], reason)


def _assemble(status: int, lines: list[bytes], reason: bytes | None) -> bytes:
    """The head from its field lines (each ``name: value CRLF``, every name already proved a token), checked by
    counting bytes in C.

    Each line ends in the CRLF we put there, so a field has CR, LF or NUL in its value exactly when the block of
    lines holds more CRs or LFs than lines, or any NUL: three C-speed counts instead of a pattern over the whole
    head (speed, issue 12).  A value that smuggles a line break could end our head early and add a response of
    its choosing (response splitting, RFC 9110 §5.5)."""
    status_line = _STATUS_LINES.get(status) if reason is None else None
    if status_line is None:
        if not 100 <= status <= 999:
            raise ResponseError(f"status {status} is not three digits (RFC 9110 §15)")
        phrase = PHRASES.get(status, b"") if reason is None else reason
        if _bad_value(phrase):
            raise ResponseError(f"reason phrase {reason!r} has CR, LF or NUL, which would split the response")
        status_line = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    block = b"".join(lines)
    count = len(lines)
    if block.count(b"\r") != count or block.count(b"\n") != count or b"\0" in block:
        for line in lines:  # which one: a token holds no colon, so the name is what comes before the first
            if _bad_value(line[:-2]):
                name = line.partition(b":")[0]
                raise ResponseError(f"header {name!r} has a value with CR, LF or NUL, which would split the response")
    return status_line + block + b"\r\n"


#: The status line of every registered status, made once.
_STATUS_LINES = {status: b"HTTP/1.1 %d %s\r\n" % (status, phrase) for status, phrase in PHRASES.items()}


def _drop(lines: list[bytes], field: bytes) -> None:
    """Remove every ``field`` line (case-insensitively) from a head being built."""
    lines[:] = [line for line in lines if line.partition(b":")[0].lower() != field]


class ResponseWriter:
    """One response on its way out: ``start()`` once, then ``body()`` any number of times, then ``end()``.

    Each returns the bytes to send (the head is held back until the first ``body()`` call so that a one-chunk
    response goes out in one write).  ``keep_alive`` says whether the connection may carry another request once
    this one is ``finished``.
    """

    __slots__ = (
        "method_head",
        "http_10",
        "keep_alive",
        "date",
        "server_header",
        "status",
        "started",
        "head_sent",
        "finished",
        "body_bytes",
        "_head",
        "_framing",
        "_remaining",
        "_persist",
        "_on_end",
    )

    def __init__(
        self,
        method: bytes,
        http_version: bytes,
        request_headers: Iterable[tuple[bytes, bytes]] | None,
        *,
        date: DateHeader,
        server_header: bytes,
        closing: bool = False,
        persist: Callable[[], bool] | None = None,
        on_end: Callable[[], None] | None = None,
        connection_options: bytes = b"",
        upgrade: bool = False,
    ) -> None:
        """``persist``: asked once, as the head goes out (the first ``body()``), whether the connection can carry
        another request after this response (the connection's rule about unread bodies); ``on_end``: told when the
        response is complete.  ``request_headers`` is read for ``Connection`` and ``Upgrade``; a caller that has
        already walked them passes ``None`` and what it found: the ``Connection`` values, each after a comma, and
        whether ``Upgrade`` was there (the server connection does, to walk a request's headers once)."""
        self._persist = persist
        self._on_end = on_end
        self.method_head = method == b"HEAD"
        self.http_10 = http_version == b"1.0"
        if request_headers is not None:
            for name, value in request_headers:
                if name == b"connection":
                    connection_options += b"," + value
                elif name == b"upgrade":
                    upgrade = True
        options = {t.strip() for t in connection_options.lower().split(b",")} if connection_options else set()
        # RFC 9112 §9.3: 1.1 persists unless "close".  HTTP/1.0 persists only with "keep-alive", which -- like h11,
        # whose request-side state we follow -- we do not offer: a 1.0 client gets one response per connection.
        # A request proposing an Upgrade we answer normally (RFC 9110 §7.8: the server may ignore it) also ends
        # the connection: h11 stops parsing after such a request, so we could not read the next one.
        self.keep_alive = not closing and b"close" not in options and not self.http_10 and not upgrade
        self.date = date
        self.server_header = server_header
        self.status = 0
        self.started = self.head_sent = self.finished = False
        self.body_bytes = 0
        self._head = b""
        self._framing = ""  # "none" | "length" | "chunked" | "close"
        self._remaining = 0

    def start(self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes | None = None) -> None:
        """Decide the framing and build the head (sent with the first body call).

        One pass over the application's headers does all of it -- the framing fields, the hop-by-hop ones we own,
        the field lines themselves -- because this runs once per response (speed, issue 12: a pass per rule was a
        tenth of a plaintext request's CPU)."""
        length = None
        has_date = has_server = chunked = False
        lines: list[bytes] = []
        for name, value in headers:
            lname = _NAMES.get(name) if type(name) is bytes else None
            if lname is None:
                lname = _token_lower(name)  # a name not seen before: prove it a token, or refuse it
            if type(value) is not bytes:
                raise ResponseError(f"header names and values must be bytes, got {name!r}: {value!r}")
            if lname == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise ResponseError(f"Content-Length {value!r} is not a number") from None
                if length < 0:
                    raise ResponseError(f"Content-Length {value!r} is negative")
            elif lname == b"transfer-encoding":
                if value.strip().lower() != b"chunked":
                    raise ResponseError(f"Transfer-Encoding {value!r}: only chunked is supported (RFC 9112 §7)")
                chunked = True
                continue  # we add our own below
            elif lname == b"connection":
                if b"close" in value.lower():
                    self.keep_alive = False
                continue  # persistence is the server's business (PEP 3333 and ASGI leave hop-by-hop to us)
            elif lname == b"date":
                has_date = True
            elif lname == b"server":
                has_server = True
            lines.append(name + b": " + value + b"\r\n")
        if self.method_head or status < 200 or status in (204, 304):
            self._framing = "none"  # RFC 9112 §6.3 ¶1: no content, whatever the headers say
            if length is not None and (status < 200 or status == 204):  # RFC 9110 §8.6: "MUST NOT send
                _drop(lines, b"content-length")  # Content-Length" in these
        elif length is not None and not chunked:
            self._framing, self._remaining = "length", length
        elif not self.http_10:
            self._framing = "chunked"
            if length is not None:
                _drop(lines, b"content-length")
            lines.append(b"transfer-encoding: chunked\r\n")
        else:
            self._framing = "close"  # RFC 9112 §6.3 ¶8: a 1.0 client reads until the connection closes
            self.keep_alive = False
        if not has_date:
            lines.append(b"date: " + self.date.value() + b"\r\n")
        if not has_server:
            lines.append(b"server: " + self.server_header + b"\r\n")
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        self._head = _assemble(status, lines, reason)
        self.status = status
        self.started = True

    def body(self, data: bytes, last: bool = False) -> bytes:
        """Bytes for one body chunk (and, with ``last``, the end of the message)."""
        out = b""
        if not self.head_sent:
            out, self._head, self.head_sent = self._head, b"", True
            # Persistence is asked of the connection now, as the head goes out, not when it was built: an app may
            # start its response and then read the body (an echo), which changes the answer (a 100 Continue sent,
            # the body's rest known).  The field goes before the head's final empty line.
            if self.keep_alive and self._persist is not None and not self._persist():
                self.keep_alive = False
                out = out[:-2] + b"connection: close\r\n\r\n"
        framing = self._framing
        if data and framing != "none":
            self.body_bytes += len(data)
            if framing == "chunked":
                out += b"%x\r\n" % len(data) + data + b"\r\n"
            else:
                if framing == "length":
                    self._remaining -= len(data)
                    if self._remaining < 0:
                        raise ResponseError(
                            "the body is longer than the Content-Length the app declared (RFC 9112 §6.3 ¶6)"
                        )
                out += data
        if last:
            out += self.end()
        return out

    def end(self) -> bytes:
        if self._framing == "length" and self._remaining:
            raise ResponseError(f"the body ended {self._remaining} bytes short of the declared Content-Length")
        self.finished = True
        if self._on_end is not None:
            self._on_end()
        return b"0\r\n\r\n" if self._framing == "chunked" else b""


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # RFC 9110 §15.2.1; an interim response has no fields we need


def error_response(writer: ResponseWriter, status: int, message: str, *, close: bool = False) -> bytes:
    """A complete, generic error response through ``writer`` (500 from a failing app, 413, 400, 403 ...).  The body
    is a fixed sentence chosen by the server -- never the exception text or a traceback (CONTRACT.md #12)."""
    if close:
        writer.keep_alive = False
    body = f"{message}\n".encode()
    writer.start(status, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))])
    return writer.body(body, last=True)
