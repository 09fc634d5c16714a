"""The WSGI side of the core: a request head becomes an ``environ``; ``start_response``/``write()`` and the body
iterable become response bytes (through ``writer.py``).  PEP 3333 is quoted where each rule is applied.

Theory of operation
-------------------
A WSGI server calls ``app(environ, start_response)`` once per request, synchronously, and iterates the result:

* :func:`build_environ` turns a :class:`~servers.core.events.RequestHead` into the CGI-style dict of PEP 3333 "environ Variables".
* :class:`WSGIInput` is ``wsgi.input``: a file-like object over a ``pull()`` callable that returns the next piece
  of request body (or ``b""`` at its end).  The server's ``pull`` reads the socket through the connection, so the stream
  ends exactly where the message ends -- for Content-Length *and* chunked bodies -- and never reads into a
  pipelined request (PEP 3333: a server "should simulate an end-of-file condition if the application attempts
  to read past" the Content-Length; ``wsgi.input_terminated`` tells the app it can simply read to EOF).
* :class:`StartResponse` is the ``start_response`` callable and the ``write()`` it returns, written as a small
  state machine (nothing → status set → headers sent → finished) that serialises through a ``ResponseWriter``
  (``writer.py``) and hands the bytes to a ``transmit(bytes)`` callable supplied by the server.  Its rules: headers go out with the first *non-empty*
  body chunk, ``exc_info`` may replace a status not yet sent and re-raises once it was, and a second call without
  ``exc_info`` is an error.

No I/O happens here: ``pull`` and ``transmit`` are the server's.  What this module deliberately does not do:
``wsgi.file_wrapper`` (optional in PEP 3333; apps fall back to iteration), and hop-by-hop header policing beyond
refusing what could split a response (CR, LF, NUL).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from servers.core.events import RequestHead
from servers.core.http import decode_path, split_target
from servers.core.writer import ResponseWriter

__all__ = ["StartResponse", "WSGIInput", "build_environ"]

# Headers that CGI (RFC 3875 §4.1) and PEP 3333 put in the environ *without* the HTTP_ prefix.
_UNPREFIXED = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_header_keys: dict[bytes, str | None] = {}  # a small memo: header name -> environ key (None: dropped)


def _environ_key(name: bytes) -> str | None:
    """``x-forwarded-for`` → ``HTTP_X_FORWARDED_FOR``; names containing ``_`` give ``None``.

    Why drop them: CGI maps ``-`` to ``_``, so ``X-Forwarded-For`` and ``X_Forwarded_For`` would land on the same
    key and a client could overwrite a header a proxy set (nginx drops such names by default, underscores_in_headers
    off; gunicorn since 22 drops them by default, its header_map setting)."""
    key = _header_keys.get(name)
    if key is None and name not in _header_keys:
        if name in _UNPREFIXED:
            key = _UNPREFIXED[name]
        elif b"_" not in name:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_header_keys) < 512:  # bounded: header names are client-chosen
            _header_keys[name] = key
    return key


def build_environ(
    request: RequestHead,
    *,
    server: tuple[str, int],
    client: tuple[str, int] | None,
    wsgi_input: Any,
    multiprocess: bool = False,
    url_scheme: str = "http",
    script_name: str = "",
) -> dict[str, Any]:
    """The PEP 3333 environ for ``request``.

    Strings are "native strings" decoded as latin-1 (PEP 3333, "Unicode Issues": the server must make each byte a
    code point so the application can ``.encode("latin-1")`` and get the original bytes back).
    """
    raw_path, query = split_target(request.target)
    path = decode_path(raw_path).decode("latin-1")
    if script_name and (path == script_name or path.startswith(script_name + "/")):
        path = path[len(script_name) :]  # PEP 3333: SCRIPT_NAME + PATH_INFO reconstructs the path
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method.decode("ascii"),
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
        # Not in PEP 3333 but set by gunicorn and werkzeug: the target exactly as sent, before %-decoding.
        "RAW_URI": request.target.decode("latin-1"),
        "REQUEST_URI": request.target.decode("latin-1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.input": wsgi_input,
        "wsgi.errors": sys.stderr,  # PEP 3333: "a text-mode file-like object"; the server's own log stream
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        # Not in PEP 3333 (it comes from mod_wsgi and is honoured by werkzeug): wsgi.input returns EOF at the end of
        # the body even without Content-Length, i.e. a chunked upload can be read to the end.
        "wsgi.input_terminated": True,
    }
    if client is not None:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    for name, value in request.headers:  # lowercased by the parser (RFC 9110 §5.1)
        key = _environ_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ:
            # RFC 9110 §5.3: repeated fields combine into one comma-separated list, in order.  Cookie is the
            # exception (RFC 6265 §5.4 uses "; "), as HTTP/2 (RFC 9113 §8.2.3) re-joins it.
            environ[key] += ("; " if name == b"cookie" else ", ") + text
        else:
            environ[key] = text
    return environ


class WSGIInput:
    """``wsgi.input``: ``read``, ``readline``, ``readlines`` and iteration over a ``pull()`` of body pieces.

    PEP 3333 ("Input and Error Streams"): ``read(size)`` with no or a negative size reads to the end (allowed since
    the server guarantees EOF at the end of the body); ``readline(size)`` honours the optional size hint.
    """

    def __init__(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull
        self._buf = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        """Pull one more piece into the buffer; False at the end of the body."""
        if self._eof:
            return False
        piece = self._pull()
        if not piece:
            self._eof = True
            return False
        self._buf += piece
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            size = len(self._buf)
        else:
            while len(self._buf) < size and self._fill():
                pass
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def read1(self, size: int = -1) -> bytes:
        """At most one pull: what is buffered, or the next piece (handy for streaming echo)."""
        if not self._buf:
            self._fill()
        return self.read(len(self._buf) if size < 0 else min(size, len(self._buf)))

    def readline(self, size: int | None = -1) -> bytes:
        start = 0
        while True:
            newline = self._buf.find(b"\n", start)
            if newline >= 0:
                end = newline + 1
                break
            if size is not None and 0 <= size <= len(self._buf):
                end = size
                break
            start = len(self._buf)
            if not self._fill():
                end = len(self._buf)
                break
        if size is not None and 0 <= size < end:
            end = size
        line = bytes(self._buf[:end])
        del self._buf[:end]
        return line

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _check_field(text: str, what: str) -> bytes:
    """PEP 3333: status and headers are native strings (latin-1).  CR, LF or NUL would let an application split the
    response (RFC 9110 §5.5: field values never contain them), so they are refused, never sent."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str (PEP 3333 native string), got {type(text).__name__}: {text!r}")
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"{what} contains CR, LF or NUL, which would split the response: {text!r}")
    return text.encode("latin-1")


class StartResponse:
    """``start_response(status, headers, exc_info=None)`` and ``write(data)`` for one request (PEP 3333).

    ``writer`` (``servers/core/writer.py``) turns status, headers and chunks into bytes; ``transmit(bytes)`` is the
    server's way to put them on the wire.  The status is kept until the first non-empty chunk, so an ``exc_info``
    call can still replace it.
    """

    def __init__(self, writer: ResponseWriter, transmit: Callable[[bytes], None]) -> None:
        self.writer = writer
        self.transmit = transmit
        self.status: int | None = None
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []

    @property
    def headers_sent(self) -> bool:
        return self.writer.head_sent

    @property
    def finished(self) -> bool:
        return self.writer.finished

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    # PEP 3333: "if exc_info is provided, and the HTTP headers have already been sent,
                    # start_response must raise an error, and should re-raise using the exc_info tuple."
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: avoid a reference cycle through the traceback
        elif self.status is not None:
            # PEP 3333: "it is a fatal error to call start_response without the exc_info argument if
            # start_response has already been called within the current invocation of the application."
            raise RuntimeError("start_response() called a second time without exc_info (PEP 3333)")
        status_bytes = _check_field(status, "status")
        if len(status_bytes) < 4 or not status_bytes[:3].isdigit() or status_bytes[3:4] != b" ":
            raise ValueError(f"status must look like '200 OK' (three digits, a space, a reason), got {status!r}")
        if not isinstance(headers, list):
            raise TypeError(f"headers must be a list of (name, value) tuples (PEP 3333), got {type(headers).__name__}")
        encoded = []
        for item in headers:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"each header must be a (name, value) tuple (PEP 3333), got {item!r}")
            encoded.append((_check_field(item[0], "header name"), _check_field(item[1], f"header {item[0]!r}")))
        self.status = int(status_bytes[:3])
        self.reason = status_bytes[4:]
        self.headers = encoded
        return self.write

    def write(self, data: bytes, *, last: bool = False) -> None:
        """PEP 3333's ``write()`` (and, with ``last=True``, the server's final chunk in the same packet)."""
        if self.status is None:
            raise RuntimeError("write() or a body chunk before start_response() was called (PEP 3333)")
        if self.finished:
            raise RuntimeError("write() after the response was finished")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"WSGI body chunks must be bytes (PEP 3333), got {type(data).__name__}")
        if not data and not last:
            return  # PEP 3333: the headers wait for "the first non-empty bytestring" (or the end of the iterable)
        if not self.writer.started:
            self.writer.start(self.status, self.headers, self.reason)
        # One transmit per call: headers, body and terminator of a one-chunk response share one packet.
        self.transmit(self.writer.body(data, last))

    def finish(self) -> None:
        """The iterable is exhausted: send the headers if they were never sent (empty body), then the end."""
        self.write(b"", last=True)


def iterate_body(result: Iterable[bytes], start: StartResponse) -> None:
    """Send an application's result.  A one-element list (the common ``return [body]``) goes out as one write,
    headers included; anything else is sent chunk by chunk as the iterable produces it -- PEP 3333: "the server
    must not delay the transmission of any block" (so streaming responses really stream)."""
    if isinstance(result, (list, tuple)) and len(result) == 1:
        start.write(result[0], last=True)
        return
    for chunk in result:
        start.write(chunk)
    start.finish()
