"""Finding the request head in a byte stream, before h11 sees it.

Theory of operation
-------------------
HTTP/1.1 frames a request as a *head* (request line, header field lines, an empty line) and an optional body
(RFC 9112 section 2.1).  h11 parses heads happily, but it is lenient in places and its size limit applies only to
data it has not yet parsed, so our servers do not hand it raw bytes.  Instead each connection owns a
:class:`HeadReader`:

1. bytes from the socket are appended to its buffer;
2. while no empty line has arrived, ``check_partial_head`` (``servers/core/strict.py``) may reject the head early --
   a request line or header block that is already too long is refused without waiting for the rest (414/431);
3. once the empty line arrives, ``check_head`` sees the complete head and may reject it (400, 501, 505 ...);
4. only a head that passed both is returned, together with whatever followed it (the start of the body, or a
   pipelined request), for the server to feed to a *fresh* ``h11.Connection``.

Using one h11 connection per request cycle (see ``servers/core/http.py``) is what makes step 4 safe: h11 never
parses a second, pipelined head that did not go through our checks, because after ``EndOfMessage`` we take the
unparsed bytes back (``trailing_data``) and start over here.

What this module deliberately does not do: any syntax checking of its own.  That is ``strict.py``'s job, size
limits included.

The end of the head
-------------------
RFC 9112 section 2.2: "a recipient MAY recognize a single LF as a line terminator and ignore any preceding CR".
We therefore look for the first empty line in either spelling -- ``\\r\\n\\r\\n`` or ``\\n\\n`` (and the mixed
forms) -- and leave to ``check_head``
whether a bare-LF head is accepted.  Leading empty lines are dropped, as section 2.2 asks: "a server that is
expecting to receive and parse a request-line SHOULD ignore at least one empty line (CRLF) received prior to the
request-line" (old clients sent a CRLF after a POST body) -- but only ``Limits.max_empty_lines`` of them (Apache's
10): they are counted, skipped with one slice per read rather than one per line, and one more is a 400.  They are
part of the head for the header-read timeout, which runs from the first of them, so a client sending CRLF forever
is cut off like any other slow head.
"""

from __future__ import annotations

import re

from servers.core.limits import Limits
from servers.core.strict import Rejection, check_head, check_partial_head

__all__ = ["TOO_MANY_EMPTY_LINES", "HeadReader", "Rejection", "check_head", "check_partial_head"]

#: More than ``Limits.max_empty_lines`` CRLFs before a request line.  Decided here, not in strict.py, because the
#: gate sees heads, and these lines come before one.
TOO_MANY_EMPTY_LINES = Rejection(400, "too many empty lines before the request line", "RFC 9112 §2.2")

# The first empty line: LF, optional CR, LF.  (A CRLF line ending is "\r\n"; the empty line after it is "\r\n"
# again, so the pattern "\n\r?\n" finds "\r\n\r\n", "\n\n", "\r\n\n" and "\n\r\n" alike.)
_END_OF_HEAD = re.compile(rb"\n\r?\n")


class HeadReader:
    """Accumulates one request head at a time.

    ``feed(data)`` returns ``None`` while more bytes are needed, a :class:`Rejection` when the head must be
    refused, or ``(head, rest)`` once a complete head passed the checks.  After a head has been returned the reader
    is empty and ready for the next one; ``rest`` belongs to the caller.

    >>> r = HeadReader(Limits())
    >>> r.feed(b"GET / HTTP/1.1\\r\\nHost: a\\r")
    >>> r.feed(b"\\n\\r\\nxyz")
    (b'GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n', b'xyz')
    """

    __slots__ = ("limits", "_buf", "_scanned", "_checked", "_empty_lines", "_cr", "_started")

    # check_partial_head is linear in the buffer, so calling it on every read would make a client that trickles
    # a 64 KiB head one byte per packet cost the server quadratic time.  A violation, once certain, stays the answer
    # for every longer prefix (strict.py's segmentation independence), so we may call it less often and get the
    # same answer a little later: when a read brings a line end (terminator rules are decided there; the field-count
    # limit bounds how many of those there can be) and otherwise once per CHECK_EVERY new bytes.
    CHECK_EVERY = 1024

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._scanned = 0  # bytes already searched for the empty line (so a trickled head is not rescanned)
        self._checked = 0  # buffer length at the last check_partial_head
        self._empty_lines = 0  # CRLFs skipped before this head's request line
        self._cr = False  # the last byte before the request line was a CR: the first half of an empty line
        self._started = False

    @property
    def started(self) -> bool:
        """True once any byte of a head has arrived, empty lines included (the header-read timeout runs from here)."""
        return self._started

    def feed(self, data: bytes) -> tuple[bytes, bytes] | Rejection | None:
        if not data:
            return None
        if (
            not self._buf
            and not self._cr
            and data.endswith(b"\n\r\n")
            and data.find(b"\n\r\n") == len(data) - 3
            and b"\n\n" not in data
        ):
            # The usual read: exactly one whole head, its first empty line (either spelling) its last bytes, no
            # empty line before it -- the general path below would find the same, at the cost of a search, two
            # slices and a fresh buffer (speed, issue 12).
            if not data.startswith(b"\r\n"):
                self._empty_lines, self._started = 0, False
                rejection = check_head(data, self.limits)
                return (data, b"") if rejection is None else rejection
        self._started = True
        if self._buf:
            self._buf += data  # a bytearray: appending a trickle is amortised O(1), not a copy of the whole head
            buf: bytes | bytearray = self._buf
        else:
            # Before the request line: skip empty lines (RFC 9112 §2.2), counting them, in one slice.
            if self._cr:
                data, self._cr = b"\r" + data, False
            start = 0
            while data.startswith(b"\r\n", start):
                start += 2
            if start:
                self._empty_lines += start // 2
                if self._empty_lines > self.limits.max_empty_lines:
                    return TOO_MANY_EMPTY_LINES
                data = data[start:]
            if data == b"\r":  # half of an empty line, or the start of a bare-CR violation: wait for the next byte
                self._cr = True
                return None
            if not data:
                return None
            buf = data  # the common case: the whole head in one read, no copy at all
        match = _END_OF_HEAD.search(buf, max(0, self._scanned - 2))
        if match is None:
            if not self._buf:
                self._buf = bytearray(buf)
            self._scanned = len(buf)
            if b"\n" in data or b"\r" in data or len(buf) - self._checked >= self.CHECK_EVERY:
                self._checked = len(buf)
                return check_partial_head(bytes(buf), self.limits)
            return None
        head_end = match.end()
        head, rest = bytes(buf[:head_end]), bytes(buf[head_end:])
        self._buf, self._scanned, self._checked = bytearray(), 0, 0
        self._empty_lines, self._started = 0, False
        rejection = check_head(head, self.limits)
        if rejection is not None:
            return rejection
        return head, rest
