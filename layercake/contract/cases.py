"""The contract as executable cases (CONTRACT.md), runnable in-process or over HTTP.

Theory of operation
-------------------
Every case is a small function that takes a *client* and raises
:class:`ContractFailure` with a readable reason when the layer answers wrongly.  There
are two kinds of client with one interface (``request``, ``websocket``):

* the in-process drivers of :mod:`layercake.inprocess` -- no socket, the WSGI app
  wrapped in ``wsgiref.validate``, the ASGI app run with lifespan;
* :class:`HTTPClient`, which talks to a real server on a loopback port with httpx,
  with raw sockets (parsed by h11) where a request must be shaped in a way httpx will
  not send -- a declared 16 MiB upload whose body never comes, an upload that keeps
  going after the server said no -- and with the ``websockets`` client.

Cases belong to groups (``http``, ``streaming``, ``upload``, ``websocket``,
``lifespan``) so the compatibility grid can say which *kind* of behaviour a server
pair loses.  Cases that only mean something for one interface say so, and the WSGI
layers' WebSocket case checks the 404 that CONTRACT.md item 14 prescribes.

This module is the case table and how cases run; the client for a real server is
:mod:`layercake.contract.http_client`, and ``layercake.contract`` re-exports both.

What it deliberately doesn't do: judge speed.  Timeouts are generous and only stop a
hung server from hanging the run.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from layercake.contract.http_client import HTTPClient
from layercake.inprocess import Headers, Response, zeros
from layers import Layer
from layers.shared.validation import MAX_ECHO_BODY, MAX_ITEM_BODY

GROUPS = ("http", "streaming", "upload", "websocket", "lifespan")


class ContractFailure(AssertionError):
    """The layer's answer broke the contract; the message says how."""


class Client(Protocol):
    interface: str

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Headers = ...,
        body: bytes | Iterable[bytes] = ...,
        content_length: int | None = ...,
        chunked: bool = ...,
    ) -> Response: ...

    def websocket(self, path: str) -> Any: ...

    def close(self) -> None: ...


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ContractFailure(message)


# --------------------------------------------------------------------------- checks


def expect_json(resp: Response, status: int, what: str) -> Any:
    check(resp.status == status, f"{what}: expected status {status}, got {resp.status}: {resp.body[:200]!r}")
    ctype = resp.header("content-type") or ""
    check(ctype.split(";")[0].strip() == "application/json", f"{what}: expected application/json, got {ctype!r}")
    try:
        return json.loads(resp.body)
    except ValueError:
        raise ContractFailure(f"{what}: body is not JSON: {resp.body[:200]!r}") from None


def expect_422(resp: Response, what: str) -> list[dict[str, Any]]:
    data = expect_json(resp, 422, what)
    detail = data.get("detail") if isinstance(data, dict) else None
    check(isinstance(detail, list) and len(detail) > 0, f"{what}: 422 detail must be a non-empty list, got {detail!r}")
    for err in detail:  # type: ignore[union-attr]  # check() above raised unless detail is a non-empty list
        check(
            isinstance(err, dict)
            and isinstance(err.get("loc"), list)
            and isinstance(err.get("msg"), str)
            and isinstance(err.get("type"), str),
            f"{what}: each error needs loc (list), msg and type: {err!r}",
        )
    return detail  # type: ignore[return-value]  # each item was just checked to be an error dict


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    title: str
    run: Callable[[Client, Layer], None]
    interfaces: tuple[str, ...] = ("wsgi", "asgi")


CASES: list[Case] = []


def case(id: str, group: str, title: str, interfaces: tuple[str, ...] = ("wsgi", "asgi")) -> Callable[..., Any]:
    def register(fn: Callable[[Client, Layer], None]) -> Callable[[Client, Layer], None]:
        CASES.append(Case(id, group, title, fn, interfaces))
        return fn

    return register


@case("index", "http", "GET / is an HTML page naming the layer")
def _index(c: Client, layer: Layer) -> None:
    r = c.request("GET", "/")
    check(r.status == 200, f"status {r.status}")
    check((r.header("content-type") or "").startswith("text/html"), f"content-type {r.header('content-type')!r}")
    check(layer.name.encode() in r.body, f"the page does not name the layer {layer.name!r}")


@case("plaintext", "http", "GET /plaintext is exactly Hello, World!")
def _plaintext(c: Client, layer: Layer) -> None:
    r = c.request("GET", "/plaintext")
    check(r.status == 200, f"status {r.status}")
    check((r.header("content-type") or "").startswith("text/plain"), f"content-type {r.header('content-type')!r}")
    check(r.body == b"Hello, World!", f"body {r.body!r}")


@case("json", "http", "GET /json is the hello message")
def _json(c: Client, layer: Layer) -> None:
    check(expect_json(c.request("GET", "/json"), 200, "GET /json") == {"message": "Hello, World!"}, "wrong body")


@case("item_found", "http", "GET /items/1 is the first seeded item")
def _item_found(c: Client, layer: Layer) -> None:
    data = expect_json(c.request("GET", "/items/1"), 200, "GET /items/1")
    check(set(data) == {"id", "name", "price", "tags"} and data["id"] == 1, f"body {data!r}")
    check(isinstance(data["tags"], list) and isinstance(data["price"], (int, float)), f"body {data!r}")


@case("item_missing", "http", "GET /items/999999 is 404 Item not found")
def _item_missing(c: Client, layer: Layer) -> None:
    data = expect_json(c.request("GET", "/items/999999"), 404, "GET /items/999999")
    check(data == {"detail": "Item not found"}, f"body {data!r}")


@case("item_not_int", "http", "GET /items/abc and /items/1.5 are 422")
def _item_not_int(c: Client, layer: Layer) -> None:
    for target in ("/items/abc", "/items/1.5"):
        detail = expect_422(c.request("GET", target), f"GET {target}")
        check(detail[0]["loc"] == ["path", "item_id"], f"GET {target}: loc {detail[0]['loc']!r}")


@case("items_page", "http", "GET /items pages by limit and offset, ordered by id")
def _items_page(c: Client, layer: Layer) -> None:
    data = expect_json(c.request("GET", "/items"), 200, "GET /items")
    check(data.get("limit") == 10 and data.get("offset") == 0, f"defaults: {data.get('limit')}, {data.get('offset')}")
    check([i["id"] for i in data["items"]] == list(range(1, 11)), "default page is not items 1..10")
    check(isinstance(data.get("total"), int) and data["total"] >= 100, f"total {data.get('total')!r}")
    data = expect_json(c.request("GET", "/items?limit=3&offset=20"), 200, "GET /items?limit=3&offset=20")
    check([i["id"] for i in data["items"]] == [21, 22, 23], f"ids {[i['id'] for i in data['items']]}")
    check(data["limit"] == 3 and data["offset"] == 20, "limit/offset not echoed")


@case("items_bad_query", "http", "GET /items with limit 0, 101, abc or offset -1 is 422")
def _items_bad(c: Client, layer: Layer) -> None:
    for query in ("limit=0", "limit=101", "limit=abc", "offset=-1"):
        detail = expect_422(c.request("GET", f"/items?{query}"), f"GET /items?{query}")
        check(detail[0]["loc"] == ["query", query.split("=")[0]], f"{query}: loc {detail[0]['loc']!r}")


@case("create", "http", "POST /items stores the item: 201, Location, then GET finds it")
def _create(c: Client, layer: Layer) -> None:
    body = json.dumps({"name": "Widget", "price": 9.5, "tags": ["a", "b"], "ignored": 1}).encode()
    r = c.request("POST", "/items", headers=[("Content-Type", "application/json")], body=body)
    data = expect_json(r, 201, "POST /items")
    check(
        data.get("name") == "Widget" and data.get("price") == 9.5 and data.get("tags") == ["a", "b"], f"body {data!r}"
    )
    check("ignored" not in data, "unknown fields must be ignored, not stored")
    check(r.header("location") == f"/items/{data['id']}", f"Location {r.header('location')!r}")
    got = expect_json(c.request("GET", f"/items/{data['id']}"), 200, "GET the created item")
    check(got == data, f"stored {got!r} != returned {data!r}")
    minimal = expect_json(
        c.request("POST", "/items", headers=[("Content-Type", "application/json")], body=b'{"name": "x", "price": 1}'),
        201,
        "POST /items without tags",
    )
    check(minimal.get("tags") == [], f"tags default: {minimal.get('tags')!r}")


_INVALID_BODIES: list[tuple[str, bytes, list[Any]]] = [
    ("invalid JSON", b'{"name": ', ["body"]),
    ("a non-object", b"[1, 2]", ["body"]),
    ("missing fields", b"{}", ["body", "name"]),
    ("a boolean price", b'{"name": "x", "price": true}', ["body", "price"]),
    ("a string price", b'{"name": "x", "price": "12"}', ["body", "price"]),
    ("a zero price", b'{"name": "x", "price": 0}', ["body", "price"]),
    ("an empty name", b'{"name": "", "price": 1}', ["body", "name"]),
    ("a long name", b'{"name": "' + b"n" * 101 + b'", "price": 1}', ["body", "name"]),
    ("a number name", b'{"name": 5, "price": 1}', ["body", "name"]),
    ("tags not a list", b'{"name": "x", "price": 1, "tags": "a"}', ["body", "tags"]),
    ("a non-string tag", b'{"name": "x", "price": 1, "tags": ["a", 2]}', ["body", "tags", 1]),
]


@case("create_invalid", "http", "POST /items with bad JSON, types, values or fields is 422 in FastAPI's shape")
def _create_invalid(c: Client, layer: Layer) -> None:
    for what, body, loc_prefix in _INVALID_BODIES:
        detail = expect_422(
            c.request("POST", "/items", headers=[("Content-Type", "application/json")], body=body),
            f"POST /items with {what}",
        )
        locs = [e["loc"][: len(loc_prefix)] for e in detail]
        check(
            loc_prefix in locs, f"POST /items with {what}: no error at {loc_prefix}, got {[e['loc'] for e in detail]}"
        )


@case("create_too_large", "upload", "POST /items over 1 MiB is 413, decided before reading the body")
def _create_too_large(c: Client, layer: Layer) -> None:
    r = c.request(
        "POST",
        "/items",
        headers=[("Content-Type", "application/json")],
        body=zeros(MAX_ITEM_BODY + 1),
        content_length=MAX_ITEM_BODY + 1,
    )
    check(r.status == 413, f"status {r.status} (expected 413 without waiting for the body)")
    check(not r.body_bytes_read, f"the app read {r.body_bytes_read} bytes before refusing")


@case("stream", "streaming", "GET /stream?n=5 is five separate chunks, no Content-Length")
def _stream(c: Client, layer: Layer) -> None:
    r = c.request("GET", "/stream?n=5")
    check(r.status == 200, f"status {r.status}")
    check((r.header("content-type") or "").startswith("text/plain"), f"content-type {r.header('content-type')!r}")
    check(r.body == b"".join(b"chunk %d\n" % i for i in range(5)), f"body {r.body!r}")
    check(r.header("content-length") is None, "a streamed response must not declare Content-Length")
    if getattr(c, "transport", "inprocess") == "http":
        te = (r.header("transfer-encoding") or "").lower()
        check(te == "chunked", f"an HTTP/1.1 server must use chunked encoding, got Transfer-Encoding {te!r}")
    else:
        check(len(r.chunks) == 5, f"expected 5 separate body chunks, the app produced {len(r.chunks)}")
    check(c.request("GET", "/stream?n=0").body == b"", "n=0 must give an empty body")


@case("stream_bad", "streaming", "GET /stream with n=-1 or n=1001 is 422")
def _stream_bad(c: Client, layer: Layer) -> None:
    for n in ("-1", "1001", "x"):
        expect_422(c.request("GET", f"/stream?n={n}"), f"GET /stream?n={n}")


@case("echo", "upload", "POST /echo returns the body byte for byte (Content-Length and chunked)")
def _echo(c: Client, layer: Layer) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    r = c.request("POST", "/echo", body=payload)
    check(r.status == 200, f"Content-Length upload: status {r.status}")
    check(
        (r.header("content-type") or "").startswith("application/octet-stream"),
        f"content-type {r.header('content-type')!r}",
    )
    check(r.body == payload, f"Content-Length upload: echoed {len(r.body)} bytes, sent {len(payload)}")
    parts = [b"first ", b"second ", bytes(range(256)) * 300, b" last"]
    r = c.request("POST", "/echo", body=parts, chunked=True)
    check(r.status == 200, f"chunked upload: status {r.status}")
    check(r.body == b"".join(parts), f"chunked upload: echoed {len(r.body)} bytes, sent {len(b''.join(parts))}")
    r = c.request("POST", "/echo", body=b"")
    check(r.status == 200 and r.body == b"", f"empty upload: status {r.status}, body {r.body[:50]!r}")


@case("echo_too_large", "upload", "POST /echo over 16 MiB is 413 (declared) or stopped (chunked)")
def _echo_too_large(c: Client, layer: Layer) -> None:
    r = c.request("POST", "/echo", body=zeros(MAX_ECHO_BODY + 1), content_length=MAX_ECHO_BODY + 1)
    check(r.status == 413, f"declared length: status {r.status} (expected 413 without waiting for the body)")
    check(not r.body_bytes_read, f"declared length: the app read {r.body_bytes_read} bytes before refusing")
    r = c.request("POST", "/echo", body=zeros(MAX_ECHO_BODY + 65536), chunked=True)
    refused = r.status == 413 or r.status == 0 or not r.complete
    check(refused, f"chunked upload over the limit: status {r.status}, {len(r.body)} bytes echoed and completed")
    check(len(r.body) <= MAX_ECHO_BODY, f"echoed {len(r.body)} bytes, more than the 16 MiB limit")


@case("headers", "http", "GET /headers shows lowercased names, repeats joined with ', '")
def _headers(c: Client, layer: Layer) -> None:
    r = c.request("GET", "/headers", headers=[("X-Layer-Test", "one"), ("X-Layer-Test", "two"), ("X-Single", "Yes")])
    data = expect_json(r, 200, "GET /headers")
    check(data.get("x-single") == "Yes", f"x-single: {data.get('x-single')!r}")
    # RFC 9110 §5.3: repeated field lines combine into one comma-separated list, in order.
    # A WSGI server does the combining before the app sees them, and may write "," with no
    # space (gunicorn does), which is the same list.
    joined = data.get("x-layer-test")
    check(
        isinstance(joined, str) and [v.strip() for v in joined.split(",")] == ["one", "two"],
        f"repeated header joined: {joined!r}",
    )
    check(all(k == k.lower() for k in data), "header names must be lowercased")


@case("inspect", "http", "GET /inspect shows the raw environ or scope, JSON-safe")
def _inspect(c: Client, layer: Layer) -> None:
    data = expect_json(c.request("GET", "/inspect?probe=1"), 200, "GET /inspect")
    check(
        data.get("layer") == layer.name and data.get("interface") == layer.interface, f"layer/interface {data!r}"[:200]
    )
    req = data.get("request")
    check(isinstance(req, dict), "request must be an object")
    if layer.interface == "wsgi":
        check(
            req.get("PATH_INFO") == "/inspect" and req.get("QUERY_STRING") == "probe=1",
            "environ PATH_INFO/QUERY_STRING",
        )
        check(req.get("REQUEST_METHOD") == "GET", "environ REQUEST_METHOD")
    else:
        check(req.get("type") == "http" and req.get("path") == "/inspect", "scope type/path")
        check(req.get("query_string") == "probe=1", f"scope query_string as latin-1 text: {req.get('query_string')!r}")


@case("slow", "http", "GET /slow?ms=20 sleeps; out-of-range ms is 422")
def _slow(c: Client, layer: Layer) -> None:
    started = time.perf_counter()
    data = expect_json(c.request("GET", "/slow?ms=20"), 200, "GET /slow?ms=20")
    check(data == {"slept_ms": 20}, f"body {data!r}")
    # A lower bound only: a sleep can end late on a busy machine but never early, so this
    # checks that the handler slept at all, not how fast anything is.
    check(time.perf_counter() - started >= 0.019, "answered before the 20 ms sleep could have finished")
    for ms in ("-1", "10001"):
        expect_422(c.request("GET", f"/slow?ms={ms}"), f"GET /slow?ms={ms}")


@case("error", "http", "GET /error is a generic 500: no exception text, no traceback")
def _error(c: Client, layer: Layer) -> None:
    # Starlette re-raises after sending the 500 and uvicorn then closes the connection;
    # asking for the close up front keeps a pooled client from reusing a dying socket.
    r = c.request("GET", "/error", headers=[("Connection", "close")])
    check(r.status == 500, f"status {r.status}")
    low = r.body.lower()
    check(
        b"traceback" not in low and b"runtimeerror" not in low and b'file "' not in low,
        f"body leaks the error: {r.body[:200]!r}",
    )


@case("health", "http", "GET /health reports ok and the item count")
def _health(c: Client, layer: Layer) -> None:
    data = expect_json(c.request("GET", "/health"), 200, "GET /health")
    check(data.get("status") == "ok" and isinstance(data.get("startup_complete"), bool), f"body {data!r}")
    check(isinstance(data.get("items"), int) and data["items"] >= 100, f"items {data.get('items')!r}")


@case("lifespan_startup", "lifespan", "the store was opened at startup (ASGI lifespan)", interfaces=("asgi",))
def _lifespan(c: Client, layer: Layer) -> None:
    data = expect_json(c.request("GET", "/health"), 200, "GET /health")
    check(data.get("startup_complete") is True, "startup_complete is not true: lifespan startup did not run")


@case("not_found", "http", "an unknown path is 404 {detail: Not Found}")
def _not_found(c: Client, layer: Layer) -> None:
    check(
        expect_json(c.request("GET", "/no/such/path"), 404, "GET /no/such/path") == {"detail": "Not Found"},
        "wrong body",
    )


@case("method_not_allowed", "http", "a known path with the wrong method is 405 with Allow")
def _method_not_allowed(c: Client, layer: Layer) -> None:
    r = c.request("DELETE", "/plaintext")
    check(expect_json(r, 405, "DELETE /plaintext") == {"detail": "Method Not Allowed"}, "wrong body")
    allow = {m.strip() for m in (r.header("allow") or "").split(",")}
    check("GET" in allow, f"Allow {r.header('allow')!r} must list GET")
    r = c.request("PUT", "/items")
    expect_json(r, 405, "PUT /items")
    allow = {m.strip() for m in (r.header("allow") or "").split(",")}
    check({"GET", "POST"} <= allow, f"Allow {r.header('allow')!r} must list GET and POST")


@case("ws_echo", "websocket", "WS /ws echoes text and binary, closes 1000", interfaces=("asgi",))
def _ws_echo(c: Client, layer: Layer) -> None:
    ws = c.websocket("/ws")
    check(not isinstance(ws, Response), f"the handshake was refused with status {getattr(ws, 'status', '?')}")
    assert not isinstance(ws, Response)
    ws.send("hello")
    check(ws.receive() == "hello", "text not echoed")
    blob = bytes(range(256)) * 1024
    ws.send(blob)
    check(ws.receive() == blob, "binary not echoed")
    ws.send("é ✓")
    check(ws.receive() == "é ✓", "non-ASCII text not echoed")
    check(ws.close(1000), f"the server did not finish cleanly after the client's close (code {ws.close_code})")


@case(
    "ws_not_in_wsgi", "websocket", "WS /ws on a WSGI layer is 404: WSGI cannot hold a connection", interfaces=("wsgi",)
)
def _ws_wsgi(c: Client, layer: Layer) -> None:
    r = c.websocket("/ws")
    check(isinstance(r, Response), "a WSGI layer cannot accept a WebSocket")
    assert isinstance(r, Response)
    check(r.status == 404, f"status {r.status}")


# --------------------------------------------------------------------------- running


@dataclass
class CaseResult:
    case: Case
    ok: bool
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "group": self.case.group,
            "title": self.case.title,
            "ok": self.ok,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
        }


def cases_for(layer: Layer, groups: Iterable[str] | None = None) -> list[Case]:
    wanted = set(groups) if groups else set(GROUPS)
    return [c for c in CASES if layer.interface in c.interfaces and c.group in wanted]


def run_case(client: Client, layer: Layer, c: Case) -> CaseResult:
    """Run one case; a failure is a result, never an exception."""
    started = time.perf_counter()
    try:
        c.run(client, layer)
        return CaseResult(c, True, "", time.perf_counter() - started)
    except ContractFailure as exc:
        return CaseResult(c, False, str(exc), time.perf_counter() - started)
    except Exception as exc:  # a crash in the layer or the transport is a failure too, with its cause
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return CaseResult(
            c, False, f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})", time.perf_counter() - started
        )


def run_cases(
    client: Client,
    layer: Layer,
    groups: Iterable[str] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Run the layer's cases against ``client``; a failing case never stops the others."""
    results = []
    for c in cases_for(layer, groups):
        result = run_case(client, layer, c)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def run_contract(
    target: str | None,
    layer: Layer,
    groups: Iterable[str] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    timeout: float = 30.0,
) -> list[CaseResult]:
    """Run the contract for ``layer``: in-process when ``target`` is None, else over HTTP at that URL.

    ``timeout`` bounds each wait for the server; a server that buffers a declared body it
    will never get (waitress) spends it on each "refuse from the headers" case.
    """
    if target is None:
        from layercake.inprocess import driver_for

        # Only the ASGI driver waits (on its event loop thread); a WSGI call simply returns.
        options = {"timeout": timeout} if layer.interface == "asgi" else {}
        client: Any = driver_for(layer.load(), layer.interface, **options)
    else:
        client = HTTPClient(target, layer.interface, timeout=timeout)
    try:
        return run_cases(client, layer, groups, on_result)
    finally:
        client.close()


def summarize(results: list[CaseResult]) -> dict[str, tuple[int, int]]:
    """Passed and total per group."""
    out: dict[str, tuple[int, int]] = {}
    for r in results:
        passed, total = out.get(r.case.group, (0, 0))
        out[r.case.group] = (passed + r.ok, total + 1)
    return out
