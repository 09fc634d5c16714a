"""Demo 09 -- through the bridge: Flask on an ASGI server, FastAPI on a WSGI server.

What it shows: a2wsgi adapting one interface to the other (``servers/bridges.py``).

  1. Flask (WSGI) on uvicorn (ASGI). a2wsgi's WSGIMiddleware builds an environ from the
     scope and runs Flask in a thread pool. Look at: the native command, which names the
     real app in LAYERCAKE_WSGI_APP; ``asgi.scope`` inside the environ (a2wsgi leaves it
     there); and ``GET /ws``: the bridge closes the WebSocket before accepting (403), where
     Flask on a WSGI server answers 404.
  2. FastAPI (ASGI) on gunicorn (WSGI). a2wsgi's ASGIMiddleware runs FastAPI on an event
     loop in a thread. a2wsgi sends no lifespan, so our bridge drives lifespan startup
     itself: look at ``startup_complete`` in ``/health`` -- true, and false when the same
     pair runs with LAYERCAKE_BRIDGE_LIFESPAN=off (the store then opens lazily on the
     first request, as CONTRACT.md allows).
Then the first pair stays up until Ctrl-C or --seconds.

Run: python demos/09_bridge.py [--seconds N]
"""

from __future__ import annotations

import contextlib

import httpx
from _demo import arguments, fail

from layercake.errors import LayercakeError
from servers.registry import ServerOptions
from servers.supervise import start_server


def websocket_status(ws_url: str) -> str:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(ws_url, open_timeout=10):
            return "accepted"
    except InvalidStatus as exc:
        return f"refused with HTTP {exc.response.status_code}"


def main() -> None:
    args = arguments(__doc__, port=None)
    print(__doc__.strip(), end="\n\n")

    print("== 1. flask on uvicorn (WSGI app, ASGI server) ==")
    with start_server("uvicorn", "flask", ServerOptions()) as srv:
        print(f"bridge: {srv.bridge}\nnative command: {srv.native_command}")
        environ = httpx.get(srv.url + "/inspect", timeout=10).json()["request"]
        print(
            f"environ has asgi.scope: {'asgi.scope' in environ}; "
            f"wsgi.input_terminated: {environ.get('wsgi.input_terminated')}; "
            f"wsgi.input: {str(environ.get('wsgi.input'))[:40]}"
        )
        print(f"WS /ws: {websocket_status(srv.ws_url + '/ws')}")

        print("\n== 2. fastapi on gunicorn-gthread (ASGI app, WSGI server) ==")
        for lifespan in ("on", "off"):
            opts = ServerOptions(env={"LAYERCAKE_BRIDGE_LIFESPAN": lifespan})
            with start_server("gunicorn-gthread", "fastapi", opts) as other:
                health = httpx.get(other.url + "/health", timeout=10).json()
                print(f"LAYERCAKE_BRIDGE_LIFESPAN={lifespan}: /health -> {health}")
        print(
            f"\nflask via the bridge is still up at {srv.url}; "
            + ("Ctrl-C stops it." if args.seconds is None else f"stopping in {args.seconds:g} s.")
        )
        with contextlib.suppress(KeyboardInterrupt):
            srv.wait(args.seconds)
    print("stopped.")


if __name__ == "__main__":
    try:
        main()
    except LayercakeError as exc:
        fail(exc)
