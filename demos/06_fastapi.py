"""Demo 06 -- FastAPI on Uvicorn: the top of the ladder on its usual server.

What it shows: pydantic validation, ``Depends`` injecting the store, and the free
OpenAPI docs -- the one rung with ``/docs``.

What to look at:
  - open http://localhost:8000/docs: generated from the type hints.
  - ``curl -s -X POST localhost:8000/items -H 'Content-Type: application/json'
    -d '{"name": "", "price": -1}'``: the 422 body shape every lower layer copies by hand.
  - the startup log: Uvicorn runs lifespan ("Application startup complete") before
    accepting a request.

Run: python demos/06_fastapi.py [--port 8000] [--seconds N]; Ctrl-C stops it.
"""

from _demo import serve_layer

if __name__ == "__main__":
    serve_layer(__doc__, "fastapi", "uvicorn")
