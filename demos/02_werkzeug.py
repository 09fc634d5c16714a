"""Demo 02 -- Werkzeug on its own development server (run_simple, threaded).

What it shows: the second WSGI rung. The same contract as bare WSGI, but routing is a
``werkzeug.routing.Map`` and requests/responses are ``Request``/``Response`` objects; the
server is Werkzeug's, a thread per connection, HTTP/1.1 with keep-alive.

What to look at:
  - ``curl -i localhost:8000/stream?n=3``: now ``Transfer-Encoding: chunked`` -- an
    HTTP/1.1 server frames the streamed body instead of closing the connection.
  - ``curl -s localhost:8000/inspect``: the environ now carries ``werkzeug.*`` keys and
    ``wsgi.input_terminated`` (Werkzeug decodes chunked uploads for the app).
  - ``curl -i -X DELETE localhost:8000/plaintext``: the 405 and its ``Allow`` come from
    the routing Map, not hand-written code.

Run: python demos/02_werkzeug.py [--port 8000] [--seconds N]; Ctrl-C stops it.
"""

from _demo import serve_layer

if __name__ == "__main__":
    serve_layer(__doc__, "werkzeug", "werkzeug")
