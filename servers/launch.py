"""A command line for the two servers that have none: wsgiref and Werkzeug's run_simple.

    python -m servers.launch wsgiref  layers.bare_wsgi.app:app --host 127.0.0.1 --port 8000
    python -m servers.launch werkzeug layers.flask.app:app     --host 127.0.0.1 --port 8000

Each is the three lines a tutorial shows, nothing added, so the registry can run them as
subprocesses like every other server:

- wsgiref: ``make_server(host, port, app).serve_forever()``.  ``WSGIServer`` is a
  single-threaded ``http.server.HTTPServer``; its handler speaks HTTP/1.0 (one request per
  connection) and hands the app the raw socket file as ``wsgi.input``, so a chunked upload
  is never decoded -- the gaps the registry's notes list.
- werkzeug: ``run_simple(host, port, app, threaded=True)`` -- a thread per connection,
  HTTP/1.1 with keep-alive, chunked request bodies decoded (``wsgi.input_terminated``).

SIGTERM and SIGINT both end ``serve_forever`` cleanly (exit status 0), as the other servers do.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from typing import Any

from servers.bridges import load


def _serve_wsgiref(app: Any, host: str, port: int, access_log: bool) -> None:
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Handler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if access_log:  # http.server logs every request to stderr; errors still go through log_error
                super().log_request(code, size)

    class Server(WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = make_server(host, port, app, server_class=Server, handler_class=Handler)
    _stop_on_signals(httpd.shutdown)
    print(f"layercake: wsgiref serving on http://{host}:{port}", file=sys.stderr, flush=True)
    httpd.serve_forever()
    httpd.server_close()


def _serve_werkzeug(app: Any, host: str, port: int, access_log: bool) -> None:
    from werkzeug.serving import make_server

    if not access_log:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # its request lines are INFO
    # make_server is what run_simple(threaded=True) calls, minus the reloader and the banner;
    # holding the server object lets a signal shut it down rather than kill it mid-request.
    httpd = make_server(host, port, app, threaded=True)
    _stop_on_signals(httpd.shutdown)
    print(f"layercake: werkzeug serving on http://{host}:{port}", file=sys.stderr, flush=True)
    httpd.serve_forever()
    httpd.server_close()


def _stop_on_signals(shutdown: Any) -> None:
    # serve_forever runs in this (the main) thread and shutdown() waits for it to return,
    # so the handler must hand shutdown to another thread rather than call it here.
    def handler(signum: int, frame: object) -> None:
        threading.Thread(target=shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


SERVE = {"wsgiref": _serve_wsgiref, "werkzeug": _serve_werkzeug}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m servers.launch", description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(SERVE))
    parser.add_argument("target", help="module:attr of the WSGI application")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    args = parser.parse_args(argv)
    SERVE[args.server](load(args.target), args.host, args.port, args.access_log)


if __name__ == "__main__":
    main()
