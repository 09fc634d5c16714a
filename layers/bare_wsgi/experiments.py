"""The experiment app on bare WSGI: the two routes the ``cpu`` experiment needs, by hand.

Theory of operation
-------------------
Not part of the contract (CONTRACT.md) and never served by ``layercake serve``: the
benchmarks of the contract apps measure contract routes only, and the sync-vs-async lab
(``layercake bench --experiment cpu``, ``layercake/bench/experiments/``) needs one route the
contract does not have.  It is a separate PEP 3333 callable so the contract app stays the
contract:

- ``GET /plaintext`` -- ``Hello, World!``, as in the contract (row 2), so the harness can
  check the server is alive the same way everywhere;
- ``GET /cpu?n=20000`` -- :func:`layers.shared.work.burn` ``n`` times, about 5 ms of pure
  Python, answered as ``{"n": n, "fnv1a": hash}``; ``n`` outside 0..2,000,000: 422.

A WSGI server calls this from one of its threads (PEP 3333 says nothing about how many; gunicorn's
gthread worker has ``--threads``).  The work holds the GIL, so eight threads in one process finish
no more of it per second than one: that is what the experiment shows.

Anything else: 404 ``{"detail": "Not Found"}``; another method on a known path: 405 with ``Allow``
(RFC 9110 §15.5.6), as the contract layers answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from layers.shared.work import MAX_N, burn, parse_n

StartResponse = Callable[..., Any]


def _respond(start_response: StartResponse, status: str, body: bytes, content_type: str, extra=()) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return [body]


def _json(start_response: StartResponse, status: str, data: Any, extra=()) -> list[bytes]:
    return _respond(start_response, status, json.dumps(data).encode(), "application/json", extra)


def plaintext(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _respond(start_response, "200 OK", b"Hello, World!", "text/plain")


def cpu(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    n = parse_n(query["n"][0] if "n" in query else None)
    if n is None:
        detail = [{"loc": ["query", "n"], "msg": f"n must be an integer in 0..{MAX_N}", "type": "value_error"}]
        return _json(start_response, "422 Unprocessable Content", {"detail": detail})
    return _json(start_response, "200 OK", {"n": n, "fnv1a": burn(n)})


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {"/plaintext": plaintext, "/cpu": cpu}


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    handler = ROUTES.get(environ.get("PATH_INFO", ""))
    if handler is None:
        return _json(start_response, "404 Not Found", {"detail": "Not Found"})
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
        return _json(start_response, "405 Method Not Allowed", {"detail": "Method Not Allowed"}, [("Allow", "GET")])
    return handler(environ, start_response)
