"""Demo 04 -- bare ASGI on our own scratch server (h11 + wsproto on asyncio).

What it shows: the bottom ASGI rung on the server written to be read. The app is one
coroutine taking ``(scope, receive, send)``; the server runs lifespan first, then one
task per request, and speaks WebSocket on the same port.

What to look at:
  - ``curl -s localhost:8000/inspect``: the scope -- ``type``, ``path``, ``headers`` as
    a list of byte pairs (shown as latin-1 text), ``state`` from lifespan.
  - ``curl -s localhost:8000/health``: ``"startup_complete": true`` -- the store was
    opened in lifespan startup, before the first request.
  - ``python -m websockets ws://localhost:8000/ws``: type a line, see it echoed.
  - then read ``servers/scratch_asgi.py``: accept loop -> connection -> event loop ->
    request cycle, the same headings as the WSGI server.

Run: python demos/04_bare_asgi.py [--port 8000] [--seconds N]; Ctrl-C stops it.
"""

from _demo import serve_layer

if __name__ == "__main__":
    serve_layer(__doc__, "bare_asgi", "scratch-asgi")
