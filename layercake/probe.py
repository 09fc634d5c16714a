"""Send the raw-request corpus to a server and record how it answered each case.

Theory of operation
-------------------
A probe is a client that refuses to be polite.  For each case in :mod:`layercake.corpus`
it opens a fresh TCP connection, writes the case's bytes exactly -- in one write, one
byte per write, or in random pieces (``split``) -- and reads back as many responses as
the case expects, with a small hand-written HTTP/1.1 response reader (an ordinary client
library would refuse to send most of the corpus, and would hide whether the server
closed the connection).  Then it answers three questions:

* **status** -- the status of each response (``None``: the server closed or reset the
  connection without answering);
* **closed?** -- for a case that must close, did the server close once it had answered
  (and send nothing more -- a second response would mean it parsed a smuggled request)?
  For a case that must keep the connection, one more ``GET /plaintext`` on the same
  connection must be answered 200;
* **still serving?** -- a good request on a new connection afterwards is answered 200.

In byte-by-byte and split modes the probe stops writing as soon as the server has
answered a single-request case or closed the connection, as a real client would: a
server that refuses a 9,000-byte request line after 8,191 bytes should not be punished
with a reset for the bytes it never asked for.  (Pipelined cases keep writing after the
first answer: that is what pipelining is.)

:func:`probe_servers` starts servers through the registry (``servers.registry``), so a
probe of ``gunicorn-sync`` runs the very command a user would; its results are plain
data for the CLI's table, grid and ``--json``.

What it deliberately does not do: TLS, HTTP/2, interpret bodies (except to find where a
response ends), or wait on timing -- every wait is bounded by ``timeout`` and a case that
times out is reported, not retried.
"""

from __future__ import annotations

import random
import select
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from layercake.corpus import Case

SPLITS = ("whole", "bytes", "random")
GOOD_REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: probe\r\n\r\n"
#: Seconds a server has, after answering, to close a connection that must close.  Short of
#: every server's idle keep-alive timeout (uvicorn 5 s, gunicorn 2 s), so a server that
#: closes only because the connection went idle is not mistaken for one that closed on
#: purpose.
CLOSE_WAIT = 1.0


# ---------------------------------------------------------------------------------------
# Reading responses (sans-I/O: bytes in, a response and the bytes it used out)
# ---------------------------------------------------------------------------------------


class ResponseError(Exception):
    """The server sent something that is not an HTTP/1.x response."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


def parse_response(buf: bytes, head_request: bool = False, eof: bool = False) -> tuple[Response, int] | None:
    """One response from the start of ``buf``: ``(response, bytes used)``, or ``None``
    when more bytes are needed.  ``eof``: the connection is closed, so a body delimited
    by the close (no Content-Length, not chunked) ends here."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if eof and buf:
            raise ResponseError(f"connection closed inside a response head: {buf[:80]!r}")
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ResponseError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    response = Response(status, headers, b"")
    start = end + 4
    # RFC 9112 §6.3: no body after HEAD or for 1xx/204/304; then chunked; then
    # Content-Length; otherwise the body runs to the close.
    if head_request or status < 200 or status in (204, 304):
        return response, start
    encoding = (response.header("transfer-encoding") or "").lower()
    if "chunked" in encoding:
        return _parse_chunked(buf, start, response, eof)
    length = response.header("content-length")
    if length is not None:
        if not length.isdigit():
            raise ResponseError(f"bad Content-Length in response: {length!r}")
        if len(buf) - start < int(length):
            if eof:
                raise ResponseError("connection closed before the response body was complete")
            return None
        response.body = buf[start : start + int(length)]
        return response, start + int(length)
    if not eof:
        return None
    response.body = buf[start:]
    return response, len(buf)


def _parse_chunked(buf: bytes, position: int, response: Response, eof: bool) -> tuple[Response, int] | None:
    body = bytearray()
    while True:
        line_end = buf.find(b"\r\n", position)
        if line_end < 0:
            break
        size_text = buf[position:line_end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ResponseError(f"bad chunk size in response: {size_text[:20]!r}") from None
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end)
            if buf[line_end : line_end + 4] == b"\r\n\r\n":
                trailer_end = line_end
            if trailer_end < 0:
                break
            response.body = bytes(body)
            return response, trailer_end + 4
        if len(buf) < line_end + 2 + size + 2:
            break
        body += buf[line_end + 2 : line_end + 2 + size]
        position = line_end + 2 + size + 2
    if eof:
        raise ResponseError("connection closed inside a chunked response body (aborted?)")
    return None


class _Connection:
    """A raw client socket with a receive buffer."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.reset = False

    def close(self) -> None:
        self.sock.close()

    def answered(self, responses: int) -> bool:
        """True once the server has closed, or answered a case that expects one response
        (no waiting).  With pipelined requests the first answer comes while the later
        requests are still being written, so only a close stops the writing then."""
        if not select.select([self.sock], [], [], 0)[0]:
            return False
        try:
            return responses == 1 or not self.sock.recv(1, socket.MSG_PEEK)
        except ConnectionResetError:
            return True

    def send(self, data: bytes, split: str, rng: random.Random, responses: int = 1) -> None:
        """Write ``data`` in pieces; stop early if the server answers or goes away."""
        try:
            for piece in _pieces(data, split, rng):
                if split != "whole" and self.answered(responses):
                    return
                self.sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return  # the server closed on us; what it answered is still to be read

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = self.reset = True
            return
        if not data:
            self.eof = True
        self.buf += data

    def read_response(self, head_request: bool = False) -> Response | None:
        """The next final response (interim 1xx are skipped); None if the connection
        closed before one arrived.  Raises TimeoutError, ResponseError."""
        deadline = time.monotonic() + self.timeout
        while True:
            parsed = parse_response(self.buf, head_request, self.eof)
            if parsed is not None:
                response, used = parsed
                self.buf = self.buf[used:]
                if 100 <= response.status < 200 and response.status != 101:
                    continue
                return response
            if self.eof:
                return None
            self._fill(deadline)

    def closes(self, wait: float) -> tuple[bool, bytes]:
        """Wait up to ``wait`` seconds for the server to close; (closed, bytes it sent first)."""
        deadline = time.monotonic() + wait
        try:
            while not self.eof:
                self._fill(deadline)
        except TimeoutError:
            return False, self.buf
        return True, self.buf


def _pieces(data: bytes, split: str, rng: random.Random) -> Iterator[bytes]:
    if split == "whole":
        yield data
    elif split == "bytes":
        for index in range(len(data)):
            yield data[index : index + 1]
    elif split == "random":
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 16)))) if len(data) > 1 else []
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            yield data[start:end]
    else:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")


# ---------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    case_id: str
    split: str
    expect: str  # as in the corpus file, e.g. "200 400"
    expect_close: bool | None
    statuses: list[int | None] = field(default_factory=list)
    closed: bool | None = None  # None: not checked (the case allows either)
    serving: bool = False  # a good request on a new connection afterwards got 200
    note: str = ""  # what went wrong, in words

    @property
    def passed(self) -> bool:
        return not self.problems()

    def problems(self, expected: tuple[frozenset[int], ...] | None = None) -> list[str]:
        problems = []
        wanted = expected or tuple(frozenset(int(s) for s in item.split("|")) for item in self.expect.split())
        for index, (alternatives, got) in enumerate(zip(wanted, self.statuses, strict=False)):
            if got not in alternatives:
                which = f"response {index + 1}: " if len(wanted) > 1 else ""
                problems.append(f"{which}expected {'|'.join(map(str, sorted(alternatives)))}, got {got or 'no answer'}")
        if self.expect_close is not None and self.closed is not None and self.closed != self.expect_close:
            problems.append("kept the connection open" if self.expect_close else "closed the connection")
        if not self.serving:
            problems.append("stopped serving")
        if self.note and not problems:
            problems.append(self.note)
        return problems

    def status_text(self) -> str:
        return " ".join("-" if s is None else str(s) for s in self.statuses)


def run_case(
    host: str,
    port: int,
    case: Case,
    split: str = "whole",
    seed: int = 0,
    timeout: float = 5.0,
    close_wait: float = CLOSE_WAIT,
) -> CaseResult:
    """Send one corpus case over a new connection and record the answer.

    ``timeout`` bounds each wait for a response; ``close_wait`` how long after its last
    response the server has to close a connection that must close."""
    result = CaseResult(case.id, split, case.expect_text(), case.close)
    rng = random.Random(f"{case.id}/{seed}")
    conn = _Connection(host, port, timeout)
    try:
        conn.send(case.raw, split, rng, responses=len(case.expect))
        for index in range(len(case.expect)):
            response = conn.read_response(head_request=case.is_head(index))
            result.statuses.append(response.status if response else None)
            if response is None:
                result.closed = True
                result.note = "connection reset" if conn.reset else ""
                break
        else:
            if case.close is True:
                result.closed, extra = conn.closes(close_wait)
                if extra:
                    result.closed = False
                    result.note = f"sent more after the expected responses: {extra[:60]!r}"
            elif case.close is False:
                try:
                    conn.sock.sendall(GOOD_REQUEST)
                    follow_up = conn.read_response()
                except (BrokenPipeError, ConnectionResetError):
                    follow_up = None
                result.closed = follow_up is None or follow_up.status != 200
    except TimeoutError:
        result.note = f"timed out after {timeout:g} s"
        result.statuses += [None] * (len(case.expect) - len(result.statuses))
    except (ResponseError, OSError) as error:
        result.note = f"{type(error).__name__}: {error}"
        result.statuses += [None] * (len(case.expect) - len(result.statuses))
    finally:
        conn.close()
    result.serving = still_serving(host, port, timeout)
    return result


def still_serving(host: str, port: int, timeout: float = 5.0) -> bool:
    """A good request on a new connection is answered 200."""
    try:
        conn = _Connection(host, port, timeout)
    except OSError:
        return False
    try:
        conn.sock.sendall(GOOD_REQUEST)
        response = conn.read_response()
        return response is not None and response.status == 200
    except (OSError, TimeoutError, ResponseError):
        return False
    finally:
        conn.close()


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"need a URL with host and port, not {url!r}")
    return parts.hostname, parts.port


def probe_url(
    url: str,
    cases: Iterable[Case],
    splits: Iterable[str] = ("whole",),
    timeout: float = 5.0,
    progress: Callable[[CaseResult], None] | None = None,
    close_wait: float = CLOSE_WAIT,
    results: list[CaseResult] | None = None,
) -> list[CaseResult]:
    """Every case in every split against a server already listening at ``url``.

    ``results``: a list to append to as each case finishes (and to return), so a caller
    interrupted by Ctrl-C still has the cases done so far.
    """
    host, port = host_port(url)
    results = [] if results is None else results
    for case in cases:
        for split in splits:
            result = run_case(host, port, case, split, timeout=timeout, close_wait=close_wait)
            results.append(result)
            if progress is not None:
                progress(result)
    return results


# ---------------------------------------------------------------------------------------
# Probing registered servers
# ---------------------------------------------------------------------------------------


@dataclass
class ServerProbe:
    server: str
    layer: str
    command: str = ""
    results: list[CaseResult] = field(default_factory=list)
    skipped: str = ""  # why it was not probed (a missing package, a failed start)

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        for item, result in zip(data["results"], self.results, strict=True):
            item["passed"] = result.passed
            item["problems"] = result.problems()
        return data


def default_layer(server: str) -> str:
    """The bare layer of the server's own interface: the corpus asks only for the
    contract's /plaintext and /echo, and the bare layers add nothing of their own."""
    from servers.registry import get_server  # noqa: PLC0415 -- the registry imports the layers

    return "bare_wsgi" if get_server(server).interface == "wsgi" else "bare_asgi"


def probe_servers(
    servers: Iterable[str],
    cases: list[Case],
    layer: str | None = None,
    splits: Iterable[str] = ("whole",),
    timeout: float = 5.0,
    progress: Callable[[str, CaseResult], None] | None = None,
    close_wait: float = CLOSE_WAIT,
    probes: list[ServerProbe] | None = None,
) -> list[ServerProbe]:
    """Start each server (through the registry) on ``layer`` and probe it with ``cases``.

    A server that is not installed or fails to start is reported as skipped, so one
    broken server does not hide the others' results.  ``probes``: a list to fill as the
    run goes (and to return), which is what a caller interrupted by Ctrl-C keeps.
    """
    from layercake.errors import LayercakeError  # noqa: PLC0415
    from layers import get_layer  # noqa: PLC0415
    from servers.registry import ServerOptions, get_server  # noqa: PLC0415
    from servers.supervise import start_server  # noqa: PLC0415

    splits = tuple(splits)
    servers = list(servers)
    # An unknown name is the user's mistake: fail before starting anything, not after
    # the first servers have been probed (a wrong --layer would otherwise only show up
    # as every server "skipped", with exit status 0).
    for name in servers:
        get_server(name)
    if layer is not None:
        get_layer(layer)
    probes = [] if probes is None else probes
    for name in servers:
        chosen = layer or default_layer(name)
        probe = ServerProbe(name, chosen)
        probes.append(probe)
        try:
            with start_server(name, chosen, ServerOptions(access_log=False)) as server:
                probe.command = server.native_command
                report = (lambda r, n=name: progress(n, r)) if progress else None
                probe_url(server.url, cases, splits, timeout, report, close_wait, results=probe.results)
        except LayercakeError as error:
            probe.skipped = error.message.splitlines()[0]
    return probes


def category(case_id: str) -> str:
    """The corpus directory-like prefix of a case id: ``smuggling`` of ``smuggling/cl-and-te``."""
    return case_id.partition("/")[0]


def by_category(probe: ServerProbe) -> dict[str, tuple[int, int]]:
    """category -> (as expected, run) for one server, in corpus order."""
    out: dict[str, tuple[int, int]] = {}
    for result in probe.results:
        passed, run = out.get(category(result.case_id), (0, 0))
        out[category(result.case_id)] = (passed + result.passed, run + 1)
    return out


def cell_text(result: CaseResult | None) -> str:
    """What a server answered to one case, as words: ``400 ✓``, ``200 kept open DEAD ✗``."""
    if result is None:
        return "not run"
    text = result.status_text().replace("-", "none")
    if result.expect_close is not None and result.closed is not None and result.closed != result.expect_close:
        text += " kept open" if result.expect_close else " closed"
    if not result.serving:
        text += " DEAD"
    if "timed out" in result.note:
        text += " timeout"
    return f"{text} ✓" if result.passed else f"{text} ✗"


def comparison_rows(probes: list[ServerProbe]) -> list[tuple[str, str, dict[str, CaseResult]]]:
    """(case label, expectation, server -> result) for every case any server ran, in order.

    Keyed by case and split rather than by position, so an interrupted run (the last
    server has only some cases) still lines up.
    """
    rows: dict[tuple[str, str], tuple[str, str, dict[str, CaseResult]]] = {}
    for probe in probes:
        for result in probe.results:
            label = result.case_id if result.split == "whole" else f"{result.case_id} ({result.split})"
            wanted = {True: " / close", False: " / keep open", None: ""}[result.expect_close]
            rows.setdefault((result.case_id, result.split), (label, result.expect + wanted, {}))[2][probe.server] = (
                result
            )
    return list(rows.values())


def grid_markdown(probes: list[ServerProbe], partial_note: str = "") -> str:
    """The comparison as Markdown: a summary with a row per server and a column per case
    category, then a row per case and a column per server (each cell the status(es)
    received, ✓ when the case file's expectation was met)."""
    shown = [p for p in probes if not p.skipped]
    categories = list(dict.fromkeys(category(r.case_id) for p in shown for r in p.results))
    lines = [partial_note.rstrip(), ""] if partial_note else []
    lines += [
        "| server | " + " | ".join(categories) + " | as expected |",
        "|---|" + "---|" * (len(categories) + 1),
    ]
    for probe in shown:
        counts = by_category(probe)
        cells = [f"{counts[c][0]}/{counts[c][1]}" if c in counts else "" for c in categories]
        lines.append(f"| {probe.server} | " + " | ".join(cells) + f" | {probe.passed}/{len(probe.results)} |")
    lines += ["", "| case | expect | " + " | ".join(p.server for p in shown) + " |", "|---|---|" + "---|" * len(shown)]
    for label, expect, answers in comparison_rows(shown):
        cells = []
        for probe in shown:
            result = answers.get(probe.server)
            text = cell_text(result)
            cells.append(f"**{text}**" if result is not None and not result.passed else text)
        lines.append(f"| {label} | {expect.replace('|', ' or ')} | " + " | ".join(cells) + " |")
    lines.append("| **as expected** | | " + " | ".join(f"{p.passed}/{len(p.results)}" for p in shown) + " |")
    for probe in probes:
        if probe.skipped:
            lines.append(f"\n{probe.server}: skipped ({probe.skipped})")
    return "\n".join(lines) + "\n"
