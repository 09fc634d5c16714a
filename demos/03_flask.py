"""Demo 03 -- Flask on gunicorn with threaded workers (gunicorn -k gthread).

What it shows: the top WSGI rung on the server people deploy it on. gunicorn's arbiter
forks a worker process; the worker runs a pool of threads, each calling Flask's WSGI
app for one request at a time.

What to look at:
  - the "native command" line: exactly what you would type without layercake.
  - ``ps -o pid,pgid,cmd -g <pid printed below>``: the arbiter and its worker share one
    process group; Ctrl-C here stops both (layercake signals the whole group).
  - ``curl -s localhost:8000/inspect``: ``SERVER_SOFTWARE`` is gunicorn's, and
    ``wsgi.multithread`` is true.
  - ``for i in 1 2 3 4; do curl -s 'localhost:8000/slow?ms=1000' & done; wait``: four
    sleeps finish together -- eight threads, so four blocking requests overlap.

Run: python demos/03_flask.py [--port 8000] [--seconds N]; Ctrl-C stops it.
"""

from _demo import serve_layer

if __name__ == "__main__":
    serve_layer(__doc__, "flask", "gunicorn-gthread")
