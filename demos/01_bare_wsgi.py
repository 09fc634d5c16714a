"""Demo 01 -- bare WSGI on wsgiref: a PEP 3333 callable and the standard library's server.

What it shows: the bottom rung. ``layers/bare_wsgi/app.py`` is one function taking
``(environ, start_response)``; ``wsgiref.simple_server`` calls it once per request, one
request at a time, speaking HTTP/1.0.

What to look at:
  - ``curl -s localhost:8000/inspect | python -m json.tool``: the raw environ -- CGI-style
    keys (REQUEST_METHOD, PATH_INFO, HTTP_*) plus the wsgi.* ones. That dict is the whole
    interface.
  - ``curl -i localhost:8000/stream?n=3``: no Transfer-Encoding -- an HTTP/1.0 server ends
    a streamed body by closing the connection.
  - the access log lines below: wsgiref's http.server prints one per request.

Run: python demos/01_bare_wsgi.py [--port 8000] [--seconds N]; Ctrl-C stops it.
"""

from _demo import serve_layer

if __name__ == "__main__":
    serve_layer(__doc__, "bare_wsgi", "wsgiref")
