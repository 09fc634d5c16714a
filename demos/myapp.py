"""myapp: a small application of your own, to put under layercake's microscope.

It is *not* a layer and knows nothing of the contract (CONTRACT.md): it stands for the
app you would bring -- ``--app module:attr`` runs it where a layer would run::

    layercake serve --app demos.myapp:app                     # on our scratch-asgi server
    layercake serve --app demos.myapp:app --server uvicorn
    layercake trace --app demos.myapp:app GET '/primes?n=5000' --chrome-trace primes.json
    layercake scope-diff --app demos.myapp:app GET /hello --servers scratch-asgi,uvicorn,hypercorn
    layercake bench --in-process --app demos.myapp:app --path /hello --path '/primes?n=500'
    layercake trace --app demos.myapp:wsgi_app GET /hello    # the WSGI twin, on scratch-wsgi

(From another directory, ``--app myapp:app`` finds ``myapp.py`` in the current directory,
as uvicorn does.)  Two apps, one per interface, with the same three routes:

* ``GET /`` -- a line of text;
* ``GET /hello?name=you`` -- a JSON greeting;
* ``GET /primes?n=1000`` -- counts the primes below ``n`` (at most 200,000).  The ASGI app
  does this CPU work in a worker thread (``asyncio.to_thread``) so the event loop keeps
  serving: a trace shows the hop from the loop's thread to the worker and back.

Anything else is 404; a method other than GET (or HEAD) is 405 with ``Allow`` (RFC 9110
§15.5.6).  The ASGI app answers the lifespan scope, as the ASGI spec asks of an app that
supports it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

MAX_N = 200_000  # a request may cost a few tens of milliseconds of CPU, not more


def count_primes(n: int) -> int:
    """The primes below ``n``, by the sieve of Eratosthenes."""
    if n < 3:
        return 0
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
    return sum(sieve)


def _n(query: str) -> int | None:
    values = parse_qs(query).get("n", ["1000"])
    try:
        n = int(values[0])
    except ValueError:
        return None
    return n if 0 <= n <= MAX_N else None


def route(method: str, path: str, query: str) -> tuple[int, str, Any] | tuple[str, int]:
    """What to answer: (status, content type, body), or ("primes", n) for the work to do."""
    if path not in ("/", "/hello", "/primes"):
        return 404, "application/json", {"error": f"no route for {path}"}
    if method not in ("GET", "HEAD"):
        return 405, "application/json", {"error": f"{method} is not allowed here"}
    if path == "/":
        return 200, "text/plain; charset=utf-8", "myapp: try /hello?name=you or /primes?n=1000\n"
    if path == "/hello":
        name = parse_qs(query).get("name", ["world"])[0]
        return 200, "application/json", {"hello": name}
    n = _n(query)
    if n is None:
        return 400, "application/json", {"error": f"n must be an integer from 0 to {MAX_N}"}
    return ("primes", n)


def _encode(content_type: str, body: Any) -> bytes:
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


# --- ASGI ---


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return  # a WebSocket: not accepted (the server answers 403)
    answer = route(scope["method"], scope["path"], scope["query_string"].decode("latin-1"))
    if answer[0] == "primes":
        n = answer[1]
        count = await asyncio.to_thread(count_primes, n)  # CPU work off the event loop's thread
        answer = (200, "application/json", {"n": n, "primes": count})
    status, content_type, body = answer  # type: ignore[misc]
    data = _encode(content_type, body)
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(data)).encode())]
    if status == 405:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data})


# --- WSGI ---

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    answer = route(method, environ.get("PATH_INFO") or "/", environ.get("QUERY_STRING", ""))
    if answer[0] == "primes":
        n = answer[1]
        answer = (200, "application/json", {"n": n, "primes": count_primes(n)})
    status, content_type, body = answer  # type: ignore[misc]
    data = _encode(content_type, body)
    headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    if status == 405:
        headers.append(("Allow", "GET, HEAD"))
    start_response(f"{status} {REASONS[status]}", headers)
    return [b"" if method == "HEAD" else data]
