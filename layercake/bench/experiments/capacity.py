"""``capacity``: what one open connection costs each server, and who stops answering when.

The question
------------
A browser, a long poll or a WebSocket keeps a connection open while doing nothing.  How much does
each held connection cost a server -- memory, threads, file descriptors -- and is a *new* client still
served while N of them are held?  This is the other half of "why ASGI exists": a WSGI server that
gives every connection a thread runs out of threads long before it runs out of memory; an event loop
holds a connection as a few KiB of buffers and a file descriptor.

Theory of operation
-------------------
For each server (WSGI: scratch-wsgi, gunicorn gthread, waitress, serving ``bare_wsgi``; ASGI:
scratch-asgi, uvicorn, hypercorn, granian, serving ``bare_asgi`` -- the contract apps, whose
``/plaintext`` and ``/ws`` are all this needs) and each N in :data:`HELD`:

1. start the server fresh (so no earlier N's connections or timers are in the figures), verify
   ``GET /plaintext``, and record the *baseline*: resident memory summed over the whole process group
   (``/proc/PID/status`` VmRSS of the master and every worker), threads and open descriptors;
2. open N connections (:class:`Holder`: non-blocking, at most :data:`CONNECTING_AT_ONCE` handshakes
   pending so the listen backlog is not what is measured, the whole step bounded by
   ``open_timeout``).  In ``http`` mode each sends one ``GET /plaintext`` and, once answered, stays
   open and idle -- a keep-alive connection between requests; in ``ws`` mode (ASGI servers) each
   completes a WebSocket handshake on ``/ws`` (RFC 6455 §4) and stays open;
3. measure the group again, then send a *bystander*: up to :data:`BYSTANDER_REQUESTS` requests, each
   on a new connection (a new client), each allowed :data:`BYSTANDER_TIMEOUT` s, given up after three
   unanswered in a row;
4. count how many held connections the server has closed meanwhile (keep-alive timeouts: uvicorn and
   hypercorn close an idle connection after 5 s, gunicorn gthread drops idle ones past its
   ``worker_connections``), close everything and stop the server.

A server whose bystander got no answer at some N is not tried at a larger N (recorded as such): the
lesson is already measured there, and the run stays bounded.

Limits: the run raises this process's soft ``RLIMIT_NOFILE`` (``ulimit -n``) to its hard limit
and says so in the notes; each server inherits it from us.  Loopback only; every loop is bounded in
count and time; held sockets are closed with ``SO_LINGER`` 0 (a reset) so thousands of client-side
``TIME_WAIT`` entries do not pile up between points.  Nothing is left open: every socket is closed in
a ``finally`` and every server stopped with its whole process group.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from layercake.bench.experiments import common
from layercake.bench.experiments.common import Check, LabConfig, Progress, Steps
from layercake.bench.report import Field
from layercake.errors import LayercakeError

NAME = "capacity"
KIND = f"experiment:{NAME}"
#: Server -> the layer it serves here (the contract apps: /plaintext and /ws are all this needs).
SERVERS: dict[str, str] = {
    "scratch-wsgi": "bare_wsgi",
    "gunicorn-gthread": "bare_wsgi",
    "waitress": "bare_wsgi",
    "scratch-asgi": "bare_asgi",
    "uvicorn": "bare_asgi",
    "hypercorn": "bare_asgi",
    "granian-asgi": "bare_asgi",
}
HELD = [100, 1000, 5000]
SMOKE_HELD = [20]
SMOKE_SERVERS = ("scratch-wsgi", "uvicorn")
#: Handshakes in progress at once: under every server's listen backlog (gunicorn 2048, uvicorn 2048,
#: waitress 1024, Python's socketserver 5 -- scratch servers use 1024), so what is measured is holding
#: connections, not the kernel dropping SYNs.
CONNECTING_AT_ONCE = 128
OPEN_TIMEOUT = 12.0
SMOKE_OPEN_TIMEOUT = 3.0
SETTLE = 0.5  # seconds after opening, before measuring: accept loops and worker threads catch up
BYSTANDER_REQUESTS = 20
BYSTANDER_TIMEOUT = 1.0
#: Descriptors kept free in this process beyond the held connections (the bystander, wrk-free
#: harness, Python's own).
FD_MARGIN = 64
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example nonce: any 16 bytes base64-encoded will do


SCHEMA = common.schema(
    KIND,
    (
        Field(
            "fd_limit",
            (dict,),
            (KIND,),
            "{before, during, hard}: this process's soft RLIMIT_NOFILE, raised for the run (the servers inherit it)",
        ),
        Field("points[].server", (str,), (KIND,), "registry name"),
        Field("points[].interface", (str,), (KIND,), "wsgi | asgi"),
        Field(
            "points[].mode",
            (str,),
            (KIND,),
            "http (idle keep-alive after one GET /plaintext) | ws (open WebSocket on /ws)",
        ),
        Field("points[].held_target", (int,), (KIND,), "N: connections asked for"),
        Field("points[].connected", (int,), (KIND,), "TCP connections established"),
        Field("points[].answered", (int,), (KIND,), "of those, answered (200 /plaintext, or 101 for ws)"),
        Field(
            "points[].closed_by_server",
            (int,),
            (KIND,),
            "held connections the server had closed by the end of the point",
        ),
        Field("points[].open_s", (int, float), (KIND,), "seconds opening took"),
        Field(
            "points[].baseline",
            (dict,),
            (KIND,),
            "{rss_kib, threads, fds, processes} of the server's process group before opening",
        ),
        Field("points[].held", (dict,), (KIND,), "the same with the connections held"),
        Field(
            "points[].kib_per_connection",
            (int, float, type(None)),
            (KIND,),
            "(held.rss_kib - baseline.rss_kib) / connected",
        ),
        Field("points[].bystander", (dict,), (KIND,), "a new client: requests, answered, p50_ms, p99_ms, max_ms"),
        Field("points[].serves_new_clients", (bool,), (KIND,), "the bystander got every answer"),
        Field("skipped", (list,), (KIND,), "server/mode/N not tried, with why"),
    ),
)


def validate(doc: Any) -> list[str]:
    return common.validate(doc, SCHEMA)


# --- raising the descriptor limit ---------------------------------------------------------------------------------------


@contextmanager
def raised_fd_limit() -> Any:
    """The soft ``RLIMIT_NOFILE`` raised to the hard limit for the block, then put back.

    Children started inside the block inherit the raised limit: that is how the servers get it too.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield {"before": soft, "during": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "hard": hard}
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- holding connections ------------------------------------------------------------------------------------------------


@dataclass
class _Conn:
    sock: socket.socket
    state: str = "connecting"  # connecting -> sent -> answered | failed
    buf: bytes = b""


@dataclass
class Holder:
    """N client connections to one server, opened without threads and held open, idle.

    ``mode`` ``http``: one ``GET /plaintext`` each, then idle keep-alive; ``ws``: a WebSocket
    handshake each (RFC 6455 §4.1), then an open, silent WebSocket.  Use as a context manager:
    leaving it closes every socket.
    """

    host: str
    port: int
    mode: str
    conns: list[_Conn] = field(default_factory=list)
    refused: int = 0

    def request(self) -> bytes:
        if self.mode == "ws":
            return (
                f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        return f"GET /plaintext HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()

    def _complete(self, buf: bytes) -> bool | None:
        """True: the expected answer is in; False: a wrong answer; None: not yet."""
        head, sep, body = buf.partition(b"\r\n\r\n")
        if not sep:
            return None
        parts = head.split(b" ", 2)
        status = parts[1] if len(parts) > 1 else b""
        if self.mode == "ws":
            return status == b"101"
        if status != b"200":
            return False
        return True if len(body) >= len(b"Hello, World!") else None  # the body may come in a later segment

    def open(self, n: int, timeout: float) -> float:
        """Open connections until ``n`` are answered or ``timeout`` passes; the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        request = self.request()
        sel = selectors.DefaultSelector()
        started = 0
        in_flight = 0
        try:
            while time.monotonic() < deadline:
                while started < n and in_flight < CONNECTING_AT_ONCE:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    # Reset on close: no client-side TIME_WAIT pile-up between points (see the module docs).
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn = _Conn(sock)
                    self.conns.append(conn)
                    started += 1
                    err = sock.connect_ex((self.host, self.port))
                    if err not in (0, errno.EINPROGRESS):
                        conn.state = "failed"
                        self.refused += 1
                        continue
                    sel.register(sock, selectors.EVENT_WRITE, conn)
                    in_flight += 1
                if in_flight == 0:
                    break
                for key, _ in sel.select(timeout=max(0.0, min(0.2, deadline - time.monotonic()))):
                    conn = key.data
                    if conn.state == "connecting":
                        if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            self._fail(sel, conn)
                            in_flight -= 1
                            continue
                        try:
                            conn.sock.send(request)  # a few hundred bytes: one send on a fresh socket
                        except OSError:
                            self._fail(sel, conn)
                            in_flight -= 1
                            continue
                        conn.state = "sent"
                        sel.modify(conn.sock, selectors.EVENT_READ, conn)
                        continue
                    try:
                        data = conn.sock.recv(4096)
                    except OSError:
                        data = b""
                    done = self._complete(conn.buf + data) if data else False
                    conn.buf += data
                    if done is None:
                        continue
                    sel.unregister(conn.sock)
                    in_flight -= 1
                    conn.state = "answered" if done else "failed"
                    conn.buf = b""
        finally:
            sel.close()
        return time.monotonic() - t0

    def _fail(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        sel.unregister(conn.sock)
        conn.state = "failed"
        self.refused += 1

    @property
    def connected(self) -> int:
        return sum(c.state in ("sent", "answered") for c in self.conns)

    @property
    def answered(self) -> int:
        return sum(c.state == "answered" for c in self.conns)

    def closed_by_server(self) -> int:
        """Held connections the server has closed (readable at EOF, or reset)."""
        closed = 0
        for c in self.conns:
            if c.state not in ("sent", "answered"):
                continue
            try:
                data = c.sock.recv(4096, socket.MSG_PEEK)
            except BlockingIOError:
                continue  # nothing to read: still open
            except OSError:
                closed += 1
                continue
            if data == b"":
                closed += 1
        return closed

    def close(self) -> None:
        for c in self.conns:
            c.sock.close()
        self.conns.clear()

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bystander(host: str, port: int, requests: int = BYSTANDER_REQUESTS, timeout: float = BYSTANDER_TIMEOUT) -> dict:
    """A new client, again and again: each ``GET /plaintext`` on a fresh connection, timed."""
    latencies: list[float] = []
    sent = misses = 0
    for _ in range(requests):
        if misses >= 3:
            break  # three unanswered in a row: the server is not serving new clients
        sent += 1
        t0 = time.perf_counter()
        try:
            status, body, sock = common.http_get(host, port, "/plaintext", timeout)
        except OSError:
            misses += 1
            continue
        if sock is not None:
            sock.close()
        if status == 200 and body == b"Hello, World!":
            latencies.append(time.perf_counter() - t0)
            misses = 0
        else:
            misses += 1
        time.sleep(0.02)
    return {"requests": sent, "answered": len(latencies), **common.percentiles_ms(latencies)}


# --- the run ----------------------------------------------------------------------------------------------------------------


def plan(config: LabConfig) -> list[tuple[str, str]]:
    """(server, mode) pairs in order: each server's http, then its ws when it speaks ASGI."""
    from layers import get_layer

    names = config.servers or (list(SMOKE_SERVERS) if config.smoke else list(SERVERS))
    unknown = [s for s in names if s not in SERVERS]
    if unknown:
        raise LayercakeError(f"--experiment {NAME} runs on {', '.join(SERVERS)}; not on {', '.join(unknown)}", 2)
    pairs = []
    for s in names:
        pairs.append((s, "http"))
        if get_layer(SERVERS[s]).interface == "asgi" and not config.smoke:
            pairs.append((s, "ws"))
    if config.smoke and "uvicorn" in names:
        pairs.append(("uvicorn", "ws"))
    return pairs


def run(config: LabConfig, progress: Progress | None = None, command: str = "") -> dict[str, Any]:
    pairs = plan(config)
    held = config.concurrency or (SMOKE_HELD if config.smoke else HELD)
    open_timeout = SMOKE_OPEN_TIMEOUT if config.smoke else OPEN_TIMEOUT
    doc = common.envelope(
        NAME,
        command,
        {
            "held": held,
            "open_timeout_s": open_timeout,
            "bystander_requests": BYSTANDER_REQUESTS,
            "bystander_timeout_s": BYSTANDER_TIMEOUT,
            "smoke": config.smoke,
        },
    )
    doc["skipped"] = []
    doc["environment"]["pinning"] = {"server_cpu": None, "loadgen_cpu": None}
    steps = Steps(len(pairs) * len(held), progress)
    t0 = time.monotonic()
    with raised_fd_limit() as limit, common.interruptible(doc, t0):
        doc["fd_limit"] = limit
        doc["notes"].append(
            f"raised ulimit -n (soft RLIMIT_NOFILE) from {limit['before']} to {limit['during']} for this run "
            "(the servers inherit it)"
            if limit["during"] > limit["before"]
            else f"ulimit -n is {limit['during']} (already the hard limit)"
        )
        doc["notes"].append("not pinned: holding connections is memory and bookkeeping, not throughput")
        for server, mode in pairs:
            stopped_at = None
            for n in held:
                if stopped_at is not None:
                    doc["skipped"].append(f"{server}/{mode} N={n}: stopped serving new clients at N={stopped_at}")
                    steps.advance()
                    continue
                if n + FD_MARGIN > limit["during"]:
                    doc["skipped"].append(f"{server}/{mode} N={n}: more than ulimit -n {limit['during']} allows")
                    steps.advance()
                    continue
                steps.note(f"{server} ({mode}): holding {n:,} connections")
                point = measure(server, mode, n, open_timeout)
                if isinstance(point, str):
                    doc["skipped"].append(f"{server}/{mode} N={n}: {point}")
                    doc["notes"].append(f"{server} not measured: {point}")
                    steps.advance(len(held) - held.index(n))
                    break
                doc["points"].append(point)
                if not point["bystander"]["answered"]:
                    stopped_at = n
                steps.advance()
    return doc


def measure(server: str, mode: str, n: int, open_timeout: float) -> dict[str, Any] | str:
    """One point: a fresh ``server``, N held connections, usage and a bystander; or why it could not."""
    from layers import get_layer

    layer = SERVERS[server]
    try:
        srv = common.start(server, layer, None, [Check("/plaintext", body=b"Hello, World!")])
    except LayercakeError as exc:
        return exc.message.splitlines()[0]
    with srv:
        bystander(srv.host, srv.port, requests=3)  # first-request paths warm, as in every point
        time.sleep(SETTLE)
        baseline = common.group_usage(srv.pid)
        with Holder(srv.host, srv.port, mode) as holder:
            open_s = holder.open(n, open_timeout)
            time.sleep(SETTLE)
            usage = common.group_usage(srv.pid)
            seen = bystander(srv.host, srv.port)
            closed = holder.closed_by_server()
            connected, answered = holder.connected, holder.answered
    grown = usage["rss_kib"] - baseline["rss_kib"]
    return {
        "server": server,
        "interface": get_layer(layer).interface,
        "mode": mode,
        "held_target": n,
        "connected": connected,
        "answered": answered,
        "closed_by_server": closed,
        "open_s": round(open_s, 2),
        "baseline": baseline,
        "held": usage,
        "kib_per_connection": round(grown / connected, 1) if connected else None,
        "bystander": seen,
        "serves_new_clients": seen["answered"] == seen["requests"] and seen["requests"] > 0,
    }


# --- output ---------------------------------------------------------------------------------------------------------------


def _row_id(p: dict[str, Any]) -> str:
    return f"{p['server']} ({p['mode']})"


def _verdict(p: dict[str, Any]) -> str:
    b = p["bystander"]
    if not b["answered"]:
        return "NOT SERVED"
    if p["serves_new_clients"]:
        return f"p99 {common.ms(b['p99_ms'])}"
    return f"{b['answered']}/{b['requests']} served"


def table(doc: dict[str, Any]) -> Table:
    t = Table(
        title="capacity: N idle connections held -- what they cost, and is a new client served?", title_justify="left"
    )
    for col, just in (
        ("server (mode)", "left"),
        ("N", "right"),
        ("held", "right"),
        ("closed", "right"),
        ("RSS", "right"),
        ("KiB/conn", "right"),
        ("threads", "right"),
        ("fds", "right"),
        ("new client", "right"),
    ):
        t.add_column(col, justify="right" if just == "right" else "left")
    for p in doc["points"]:
        verdict = _verdict(p)
        t.add_row(
            _row_id(p),
            f"{p['held_target']:,}",
            f"{p['answered']:,}",
            f"{p['closed_by_server']:,}",
            f"{p['held']['rss_kib'] / 1024:,.1f} MiB",
            "–" if p["kib_per_connection"] is None else f"{p['kib_per_connection']:.1f}",
            str(p["held"]["threads"]),
            f"{p['held']['fds']:,}",
            verdict if p["serves_new_clients"] else f"[bold red]{verdict}[/]",
        )
    return t


def markdown(doc: dict[str, Any]) -> str:
    out = common.md_header(
        doc,
        "Experiment: what one open connection costs",
        "N connections opened and left idle (keep-alive after one `GET /plaintext`, or an open WebSocket): the "
        "server's memory (RSS summed over its process group), threads and descriptors, and whether a new client "
        "still gets `GET /plaintext`.",
    )
    out += ["![memory per connection and who stops answering](capacity.png)", ""]
    out += [
        "| server (mode) | N | answered | closed by server | RSS | KiB/conn | threads | fds | new client |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for p in doc["points"]:
        kib = "–" if p["kib_per_connection"] is None else f"{p['kib_per_connection']:.1f}"
        verdict = _verdict(p)
        out.append(
            f"| {_row_id(p)} | {p['held_target']:,} | {p['answered']:,} | {p['closed_by_server']:,} | "
            f"{p['held']['rss_kib'] / 1024:,.1f} MiB | {kib} | {p['held']['threads']} | {p['held']['fds']:,} | "
            f"{verdict if p['serves_new_clients'] else f'**{verdict}**'} |"
        )
    if doc.get("skipped"):
        out += ["", "Not tried:", ""] + [f"- {s}" for s in doc["skipped"]]
    out += [
        "",
        "How to read it: *answered* is how many of the N held connections got their first answer (a thread-per-"
        "connection server answers only as many as it has threads); *closed by server* counts idle connections the "
        "server dropped during the point (keep-alive timeouts, connection limits); *KiB/conn* is the growth of the "
        "group's RSS divided by the connections open. *New client* is a fresh connection's `GET /plaintext`, "
        f"{BYSTANDER_REQUESTS} times, each allowed {BYSTANDER_TIMEOUT:g} s.",
    ]
    return "\n".join(out) + "\n"


def charts(doc: dict[str, Any], directory: Any) -> list[Any]:
    plt = common.pyplot()
    points = doc["points"]
    if not points:
        return []
    rows = list(dict.fromkeys(_row_id(p) for p in points))
    held = doc["settings"]["held"]
    cells = {(_row_id(p), p["held_target"]): p for p in points}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 0.45 * len(rows) + 2.5), gridspec_kw={"width_ratios": [3, 2]})
    height = 0.8 / len(held)
    colours = ["#9ecae1", "#4292c6", "#08519c", "#08306b"]
    for j, n in enumerate(held):
        ys = [i + j * height for i, r in enumerate(rows) if (r, n) in cells]
        vals = [max(0.0, cells[(r, n)]["kib_per_connection"] or 0.0) for r in rows if (r, n) in cells]
        bars = ax1.barh(ys, vals, height, label=f"N = {n:,}", color=colours[j % len(colours)])
        for bar, value in zip(bars, vals, strict=True):
            ax1.text(bar.get_width(), bar.get_y() + height / 2, f" {value:.1f}", va="center", fontsize=6)
    ax1.set_yticks([i + height * (len(held) - 1) / 2 for i in range(len(rows))], rows)
    ax1.invert_yaxis()
    ax1.set_xlabel("resident memory per held connection, KiB (growth of the process group's RSS ÷ N)")
    ax1.set_title("What one idle connection costs")
    ax1.set_xlim(0, ax1.get_xlim()[1] * 1.12)  # room for the value labels
    ax1.legend(fontsize=8, loc="upper right")  # the top rows (WSGI, few KiB) leave that corner empty
    # Who answers a new client at which N: green with the p99, red where nobody answered, grey: not tried.
    for i, r in enumerate(rows):
        for j, n in enumerate(held):
            p = cells.get((r, n))
            if p is None:
                colour, text = "#e0e0e0", "not tried"
            elif not p["bystander"]["answered"]:
                colour, text = "#d62728", "no answer"
            elif not p["serves_new_clients"]:
                colour, text = "#ff9896", f"{p['bystander']['answered']}/{p['bystander']['requests']}"
            else:
                colour, text = "#98df8a", common.ms(p["bystander"]["p99_ms"])
            if p is not None:
                still = p["answered"] - p["closed_by_server"]
                if still < n:  # the server did not hold all N: say how many it did
                    text += f"\n{still:,} of {n:,} held"
            ax2.add_patch(plt.Rectangle((j, i), 0.96, 0.9, color=colour))
            ax2.text(j + 0.48, i + 0.45, text, ha="center", va="center", fontsize=8)
    ax2.set_xlim(0, len(held))
    ax2.set_ylim(len(rows), 0)
    ax2.set_xticks([j + 0.48 for j in range(len(held))], [f"N = {n:,}" for n in held])
    ax2.set_yticks([i + 0.45 for i in range(len(rows))], rows)
    ax2.set_title("Is a new client served? (p99 of GET /plaintext)")
    for spine in ax2.spines.values():
        spine.set_visible(False)
    fig.suptitle("Holding N idle connections: memory, and who stops answering")
    return [common.save_figure(fig, doc, directory / "capacity.png")]
