"""Demo 08 -- WSGI vs ASGI under /slow: blocked threads against one event loop.

What it shows: N clients at once each ask ``GET /slow?ms=M``. The handler waits without
using CPU -- ``time.sleep`` in a WSGI layer, ``await asyncio.sleep`` in an ASGI layer --
so the wall time of the whole batch shows how many waits the server overlaps:

  - bare_wsgi on gunicorn-sync, 1 worker: one request at a time  -> about N x M
  - bare_wsgi on gunicorn-gthread, 1 worker x 4 threads           -> about N/4 x M
  - bare_wsgi on uvicorn through the WSGI->ASGI bridge (4 threads) -> about N/4 x M:
    the event loop is free, but the WSGI app still holds a thread while it sleeps
  - bare_asgi on uvicorn, 1 process, 1 thread                     -> about M

What to look at: the "overlap" column (sum of waits / wall time): 1 means serial; N means
every wait ran at once. No CPU is being measured -- only who waits for whom. The run is
short and bounded (N requests per server, default 16 x 100 ms).

Run: python demos/08_slow_concurrency.py [--requests 16] [--ms 100] [--seconds N]
(--seconds: how long to keep the servers up afterwards; default 0.)
"""

from __future__ import annotations

import argparse
import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _demo import fail

from layercake.errors import LayercakeError
from servers.registry import ServerOptions
from servers.supervise import start_server

SETUPS = [
    ("bare_wsgi", "gunicorn-sync", ServerOptions(workers=1), "1 process, 1 request at a time"),
    ("bare_wsgi", "gunicorn-gthread", ServerOptions(workers=1, threads=4), "1 process x 4 threads"),
    ("bare_wsgi", "uvicorn", ServerOptions(threads=4), "event loop + bridge pool of 4 threads"),
    ("bare_asgi", "uvicorn", ServerOptions(), "1 process, 1 thread, 1 event loop"),
]


def batch(url: str, requests: int, ms: int) -> float:
    """Wall time for ``requests`` concurrent GET /slow?ms=ms, one connection each.

    Every client connects first and waits at a barrier, so the clock measures the server
    answering, not the clients getting ready (stdlib http.client: cheap to create).
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    barrier = threading.Barrier(requests + 1)

    def one(_: int) -> int:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.connect()
        barrier.wait()
        conn.request("GET", f"/slow?ms={ms}")
        status = conn.getresponse().status
        conn.close()
        return status

    with ThreadPoolExecutor(max_workers=requests) as pool:
        futures = [pool.submit(one, i) for i in range(requests)]
        barrier.wait()
        started = time.perf_counter()
        statuses = [f.result() for f in futures]
        elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {statuses}")
    return elapsed


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--requests", type=int, default=16, help="concurrent requests per server (max 64)")
    parser.add_argument("--ms", type=int, default=100, help="how long each request sleeps (max 1000)")
    parser.add_argument("--seconds", type=float, default=0, help="keep the last server up this long afterwards")
    args = parser.parse_args()
    requests, ms = max(1, min(args.requests, 64)), max(0, min(args.ms, 1000))
    print(__doc__.strip(), end="\n\n")
    table = Table(title=f"{requests} concurrent GET /slow?ms={ms}")
    for col in ("layer", "server", "concurrency", "wall time", "overlap"):
        table.add_column(col)
    for layer, server, opts, how in SETUPS:
        with start_server(server, layer, opts) as srv:
            print(f"{layer} on {server}: {srv.native_command}")
            batch(srv.url, 2, 0)  # warm up: imports, first connections
            wall = batch(srv.url, requests, ms)
            overlap = requests * ms / 1000 / wall
            table.add_row(
                layer, server + (f" ({srv.bridge})" if srv.bridge else ""), how, f"{wall:.2f} s", f"{overlap:.1f} x"
            )
            if args.seconds and (layer, server) == SETUPS[-1][:2]:
                print(f"{srv.url} stays up for {args.seconds:g} s")
                srv.wait(args.seconds)
    Console().print(table)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\nstopped.")
    except LayercakeError as exc:
        fail(exc)
