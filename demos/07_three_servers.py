"""Demo 07 -- one app, three servers, side by side: what the server adds to the request.

What it shows: the Flask layer, unchanged, on wsgiref (stdlib, HTTP/1.0, one thread),
gunicorn (pre-fork, threads) and waitress (I/O loop + task threads). The app's code is the
same; what reaches it -- the environ -- and what reaches the client -- the framing -- are
the server's.

What to look at in the table printed below:
  - ``Server`` header and ``SERVER_SOFTWARE``: who answered.
  - ``HTTP`` and ``stream framing``: wsgiref answers HTTP/1.0 and ends /stream by closing
    the connection; the others answer HTTP/1.1 with chunked encoding.
  - ``wsgi.multithread`` / ``wsgi.multiprocess``: what each server promises the app about
    concurrency (PEP 3333 asks the app to be safe for what these say).
  - ``wsgi.input``: the type of the body stream each server hands over.
Then the three stay up (their URLs are printed) until Ctrl-C or --seconds.

Run: python demos/07_three_servers.py [--seconds N]
"""

from __future__ import annotations

import contextlib
import re

import httpx
from _demo import arguments, fail

from layercake.errors import LayercakeError
from servers.registry import ServerOptions
from servers.supervise import start_server

LAYER = "flask"
SERVERS = ("wsgiref", "gunicorn-gthread", "waitress")


def look(url: str) -> dict[str, str]:
    with httpx.Client(base_url=url, timeout=10) as client:
        inspect = client.get("/inspect").json()["request"]
        stream = client.get("/stream?n=2")
    return {
        "Server header": stream.headers.get("server", "-"),
        "SERVER_SOFTWARE": str(inspect.get("SERVER_SOFTWARE", "-")),
        "HTTP": stream.http_version,
        "stream framing": stream.headers.get("transfer-encoding") or "close-delimited",
        "wsgi.multithread": str(inspect.get("wsgi.multithread")),
        "wsgi.multiprocess": str(inspect.get("wsgi.multiprocess")),
        "wsgi.input": re.sub(r" object at 0x[0-9a-f]+| name=\d+", "", str(inspect.get("wsgi.input"))),
    }


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    args = arguments(__doc__, port=None)
    print(__doc__.strip(), end="\n\n")
    with contextlib.ExitStack() as stack:
        running = []
        for name in SERVERS:
            srv = stack.enter_context(start_server(name, LAYER, ServerOptions()))
            running.append(srv)
            print(f"{name:17} {srv.url}   native: {srv.native_command}")
        table = Table(title=f"{LAYER} on three servers")
        table.add_column("")
        for srv in running:
            table.add_column(srv.name)
        views = [look(srv.url) for srv in running]
        for key in views[0]:
            table.add_row(key, *(view[key] for view in views))
        Console().print(table)
        print("All three are up; Ctrl-C stops them." if args.seconds is None else f"Stopping in {args.seconds:g} s.")
        with contextlib.suppress(KeyboardInterrupt):
            running[0].wait(args.seconds)  # wsgiref never exits by itself: this is the wait
    print("stopped all three.")


if __name__ == "__main__":
    try:
        main()
    except LayercakeError as exc:
        fail(exc)
