"""Demo 05 -- Starlette on Hypercorn.

What it shows: the second ASGI rung on a second ASGI server. Starlette's Router, Request
and Response classes over the same scope/receive/send; Hypercorn (h11 + wsproto, like
ours) drives it, with lifespan and WebSockets.

What to look at:
  - ``curl -s localhost:8000/inspect``: compare with demo 04 -- same ASGI keys, a
    different ``server`` tuple and Starlette's additions (``app``, ``router``, ``endpoint``).
  - ``curl -i localhost:8000/stream?n=3``: chunked, one chunk per ``more_body`` message.
  - ``curl -i localhost:8000/nowhere``: the 404 body comes from the Router.

Run: python demos/05_starlette.py [--port 8000] [--seconds N]; Ctrl-C stops it.
"""

from _demo import serve_layer

if __name__ == "__main__":
    serve_layer(__doc__, "starlette", "hypercorn")
