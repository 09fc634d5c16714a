"""Many slow clients at once: N trickling connections against one server, and a bystander measuring latency.

Theory of operation
-------------------
One client that trickles its request head is easy: the header timeout cuts it.  What matters is what a
*thousand* of them do to everyone else.  :func:`slowloris_url` runs three phases against a server already
listening on loopback:

1. **unloaded**: a bystander sends ``GET /plaintext`` on a new connection every ``pace`` seconds for a few
   seconds and records each latency (a new connection each time, as a new visitor would: a server whose
   workers are all held by slow clients cannot even accept it);
2. **loaded**: ``clients`` connections open (in batches, so the listen backlog is not the thing measured), and
   each sends its request head one byte per second -- ``GET /plaintext HTTP/1.1``, ``Host``, then an endless
   ``X-Slowloris`` field -- never finishing it, while the bystander goes on.  Each slow client records when
   the server cut it (EOF or reset, with any status it answered first, e.g. 408);
3. **after**: the slow clients that are still connected at ``duration`` close; the server's memory is read again
   once it has had a moment to notice.

Memory is the summed ``VmRSS`` of the server's process group (``/proc``, as :mod:`layercake.soak`): before the
slow clients, at its peak while they are connected, and after.

Bounds: ``clients`` is capped at :data:`MAX_CLIENTS`, every phase has a fixed length, every bystander request
a timeout, and loopback only.  A thousand sockets need a thousand descriptors here *and* in the server, so
:func:`raise_fd_limit` raises this process's soft ``RLIMIT_NOFILE`` to its hard limit before the server is
started (the server inherits it); the report says what it was raised to.

What it deliberately does not do: a body-trickling attack (the head is where the timeouts differ), TLS, or
anything but loopback.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from layercake.probe import GOOD_REQUEST
from layercake.soak import process_rss

MAX_CLIENTS = 5000
SLOW_HEAD = b"GET /plaintext HTTP/1.1\r\nHost: slow\r\nX-Slowloris: " + b"a" * 100_000
BYSTANDER_TIMEOUT = 5.0


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards the hard limit (children inherit it); returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class SlowClient:
    connected: bool = False
    bytes_sent: int = 0
    cut_after: float | None = None  # seconds from connect to the server's close; None: never cut
    status: int | None = None  # what the server answered before closing (408, 400, ...), if anything


@dataclass
class SlowlorisReport:
    server: str
    layer: str
    command: str
    clients: int
    duration: float
    fd_limit: tuple[int, int] = (0, 0)
    unloaded: list[float] = field(default_factory=list)  # bystander latencies, seconds
    loaded: list[float] = field(default_factory=list)
    bystander_failures: int = 0  # loaded-phase requests that timed out or failed
    connected: int = 0
    cut: list[float] = field(default_factory=list)  # seconds after connect each cut client was closed
    statuses: dict[str, int] = field(default_factory=dict)  # what cut clients were answered
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0

    @staticmethod
    def p(values: list[float], q: float) -> float | None:
        if not values:
            return None
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def never_cut(self) -> int:
        return self.connected - len(self.cut)

    def summary(self) -> dict[str, object]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 2)

        return {
            "server": self.server,
            "clients": self.clients,
            "connected": self.connected,
            "cut": len(self.cut),
            "never_cut": self.never_cut,
            "cut_median_s": round(statistics.median(self.cut), 1) if self.cut else None,
            "cut_max_s": round(max(self.cut), 1) if self.cut else None,
            "p99_unloaded_ms": ms(self.p(self.unloaded, 0.99)),
            "p99_loaded_ms": ms(self.p(self.loaded, 0.99)),
            "bystander_served": len(self.loaded),
            "bystander_failures": self.bystander_failures,
            "rss_before_mib": round(self.rss_before / 1048576, 1),
            "rss_peak_mib": round(self.rss_peak / 1048576, 1),
            "rss_after_mib": round(self.rss_after / 1048576, 1),
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"summary": self.summary()}, indent=2)


async def _bystander_request(host: str, port: int) -> float | None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), BYSTANDER_TIMEOUT)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(GOOD_REQUEST)
        line = await asyncio.wait_for(reader.readline(), BYSTANDER_TIMEOUT - (time.monotonic() - started))
        return time.monotonic() - started if line.startswith(b"HTTP/1.1 200") else None
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        writer.close()


async def _bystander(host: str, port: int, until: float, pace: float, out: list[float]) -> int:
    failures = 0
    while time.monotonic() < until:
        started = time.monotonic()
        latency = await _bystander_request(host, port)
        if latency is None:
            failures += 1
        else:
            out.append(latency)
        await asyncio.sleep(max(0.0, pace - (time.monotonic() - started)))
    return failures


async def _slow_client(host: str, port: int, client: SlowClient, until: float, offset: float) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10.0)
    except (OSError, TimeoutError):
        return
    client.connected = True
    connected_at = time.monotonic()
    await asyncio.sleep(offset)  # spread the clients' ticks over the second
    try:
        while time.monotonic() < until and client.bytes_sent < len(SLOW_HEAD):
            writer.write(SLOW_HEAD[client.bytes_sent : client.bytes_sent + 1])
            client.bytes_sent += 1
            try:  # wait a second for the next byte, watching for the server's answer or close
                data = await asyncio.wait_for(reader.read(4096), min(1.0, max(0.01, until - time.monotonic())))
            except TimeoutError:
                continue
            if data.startswith(b"HTTP/1.") and client.status is None:
                client.status = int(data[9:12]) if data[9:12].isdigit() else 0
                data = await asyncio.wait_for(reader.read(65536), 5.0) if not reader.at_eof() else b""
                while data:
                    data = await asyncio.wait_for(reader.read(65536), 5.0)
            client.cut_after = time.monotonic() - connected_at
            return
    except (OSError, TimeoutError):
        client.cut_after = time.monotonic() - connected_at
    finally:
        writer.close()


async def _run(
    host: str, port: int, pids: list[int], report: SlowlorisReport, pace: float, baseline: float,
    progress: Callable[[str], None] | None,
) -> None:  # fmt: skip
    await _bystander(host, port, time.monotonic() + baseline, pace, report.unloaded)
    report.rss_before = report.rss_peak = sum(map(process_rss, pids))
    until = time.monotonic() + report.duration
    clients = [SlowClient() for _ in range(report.clients)]
    tasks = []
    for index, client in enumerate(clients):
        tasks.append(asyncio.ensure_future(_slow_client(host, port, client, until, (index % 100) / 100)))
        if index % 100 == 99:
            await asyncio.sleep(0.05)  # batches of 100: the backlog is not what is measured
    bystander = asyncio.ensure_future(_bystander(host, port, until, pace, report.loaded))
    next_note = time.monotonic() + 5
    while time.monotonic() < until:
        await asyncio.sleep(0.5)
        report.rss_peak = max(report.rss_peak, sum(map(process_rss, pids)))
        if progress and time.monotonic() >= next_note:
            next_note += 5
            cut = sum(c.cut_after is not None for c in clients)
            progress(f"{report.duration - (until - time.monotonic()):.0f} s: "
                     f"{sum(c.connected for c in clients)} connected, {cut} cut, bystander {len(report.loaded)} served")  # fmt: skip
    report.bystander_failures = await bystander
    await asyncio.gather(*tasks, return_exceptions=True)
    report.connected = sum(c.connected for c in clients)
    report.cut = sorted(round(c.cut_after, 2) for c in clients if c.cut_after is not None)
    for client in clients:
        if client.cut_after is not None:
            key = str(client.status) if client.status is not None else "closed"
            report.statuses[key] = report.statuses.get(key, 0) + 1
    await asyncio.sleep(2.0)  # the server notices the last closes
    report.rss_after = sum(map(process_rss, pids))


def slowloris_url(
    host: str,
    port: int,
    pids: list[int],
    report: SlowlorisReport,
    pace: float = 0.05,
    baseline: float = 3.0,
    progress: Callable[[str], None] | None = None,
) -> SlowlorisReport:
    """Run the experiment against a server already listening at host:port (its processes are ``pids``)."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("the slow-client experiment runs on loopback only")
    if not 0 < report.clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be between 1 and {MAX_CLIENTS}")
    asyncio.run(_run(host, port, pids, report, pace, baseline, progress))
    return report


def slowloris(
    layer: str,
    server: str,
    clients: int = 1000,
    duration: float = 40.0,
    progress: Callable[[str], None] | None = None,
) -> SlowlorisReport:
    """Start ``layer`` on ``server`` through the registry (default limits), run the experiment, stop it."""
    from servers.registry import ServerOptions  # noqa: PLC0415 -- imports every layer
    from servers.supervise import start_server  # noqa: PLC0415

    fd_limit = raise_fd_limit(2 * clients + 256)  # before the server starts: it inherits the limit
    with start_server(server, layer, ServerOptions(access_log=False)) as running:
        report = SlowlorisReport(server, layer, running.native_command, clients, duration, fd_limit)
        time.sleep(0.5)  # pre-forked workers finish starting
        return slowloris_url(running.host, running.port, running.process_group(), report, progress=progress)


# ---------------------------------------------------------------------------------------
# The comparison: a table and a chart from several runs' JSON (docs/hardening.md)
# ---------------------------------------------------------------------------------------


def verdict(summary: dict[str, object]) -> str:
    """In words: kept serving or not, cut the slow clients or not."""
    served = not summary["bystander_failures"] and summary["bystander_served"]
    cut_all = summary["never_cut"] == 0
    if served and cut_all:
        return "kept serving, cut every slow client"
    if served:
        return f"kept serving, never cut {summary['never_cut']}"
    if cut_all:
        return f"stopped serving ({summary['bystander_failures']} bystander failures) until it cut them"
    return f"stopped serving ({summary['bystander_failures']} bystander failures), never cut {summary['never_cut']}"


def table_markdown(summaries: list[dict[str, object]]) -> str:
    head = ("| server | slow clients connected | cut | cut after, median / max (s) | bystander p99 unloaded (ms) | "
            "p99 loaded (ms) | served / failed while loaded | RSS before / peak / after (MiB) | in short |")  # fmt: skip
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in summaries:
        cut_times = f"{s['cut_median_s']} / {s['cut_max_s']}" if s["cut"] else "-"
        lines.append(
            f"| {s['server']} | {s['connected']} | {s['cut']} | {cut_times} | {s['p99_unloaded_ms']} | "
            f"{s['p99_loaded_ms'] if s['p99_loaded_ms'] is not None else 'none served'} | "
            f"{s['bystander_served']} / {s['bystander_failures']} | "
            f"{s['rss_before_mib']} / {s['rss_peak_mib']} / {s['rss_after_mib']} | {verdict(s)} |"
        )
    return "\n".join(lines) + "\n"


def chart(summaries: list[dict[str, Any]], path: str) -> None:
    """Bystander p99 unloaded and loaded per server (log scale), and how many slow clients each cut."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = [str(s["server"]) for s in summaries]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = range(len(names))
    unloaded = [float(s["p99_unloaded_ms"] or 0) for s in summaries]
    loaded = [float(s["p99_loaded_ms"]) if s["p99_loaded_ms"] is not None else 0.0 for s in summaries]
    left.bar([x - 0.2 for x in xs], unloaded, 0.4, label="unloaded", color="#8fb3d9")
    left.bar([x + 0.2 for x in xs], loaded, 0.4, label="1,000 slow clients", color="#d95f5f")
    for x, s in zip(xs, summaries, strict=True):
        if s["bystander_failures"]:
            left.annotate(f"{s['bystander_failures']} failed", (x + 0.2, max(loaded[x], 1)), ha="center",
                          va="bottom", fontsize=7, rotation=90)  # fmt: skip
    left.set_yscale("log")
    left.set_ylabel("bystander GET /plaintext p99 (ms, log)")
    left.set_xticks(list(xs), names, rotation=35, ha="right", fontsize=8)
    left.legend(fontsize=8)
    right.bar(xs, [int(s["cut"]) for s in summaries], color="#6aa86a", label="cut by the server")
    right.bar(xs, [int(s["never_cut"]) for s in summaries], bottom=[int(s["cut"]) for s in summaries],
              color="#cccccc", label="never cut")  # fmt: skip
    right.set_ylabel("slow clients")
    right.set_xticks(list(xs), names, rotation=35, ha="right", fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle("1,000 clients trickling request heads a byte a second (loopback, 40 s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m layercake.slowloris CHART.png REPORT.json...``: the table (stdout) and chart for the docs."""
    import sys  # noqa: PLC0415

    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m layercake.slowloris CHART.png REPORT.json...")
        return 2
    summaries = [json.loads(open(path).read())["summary"] for path in args[1:]]  # noqa: PTH123, SIM115
    chart(summaries, args[0])
    print(table_markdown(summaries), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
