"""The requests a benchmark sends, and the quick check that a target answers them right.

Theory of operation
-------------------
A benchmark endpoint is a row of :data:`ENDPOINTS`: one fixed request (the same bytes
every time, so wrk can reuse them), the status it must get, and a check of the body.
They are contract routes (CONTRACT.md rows 2, 3, 4, 6, 11), never benchmark-only
handlers: what is measured is what the contract verifier checks.

- ``plaintext`` and ``json`` measure the framework around a trivial handler;
- ``item`` (``GET /items/42``) adds a path parameter, an SQLite read and JSON encoding;
- ``create`` (``POST /items``) adds reading a body, validation and serialisation -- and
  writes a row, so the store grows by one item per request during a run (the contract's
  store is per process and in memory; a few hundred thousand rows change nothing
  measurable about an indexed read or an insert);
- ``slow`` (``GET /slow?ms=50``) waits without CPU: only the sync-vs-async experiment uses it.

:func:`quick_check` sends each benchmarked request once over a real socket and checks
status and body.  The runner uses it for every target -- for the floor and the node
peer it is the only check (they implement only these routes); for the layers it
follows the contract's ``http`` group (see ``runner.verify``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from layercake.bench.loadgen import Request
from layercake.errors import UnknownName

CREATE_BODY = json.dumps({"name": "bench", "price": 9.99, "tags": ["bench"]}, separators=(",", ":")).encode()


def _exact(expected: bytes) -> Callable[[bytes], str | None]:
    def check(body: bytes) -> str | None:
        return None if body == expected else f"body {body[:80]!r} is not {expected!r}"

    return check


def _json_keys(*keys: str, **values: Any) -> Callable[[bytes], str | None]:
    def check(body: bytes) -> str | None:
        try:
            data = json.loads(body)
        except ValueError:
            return f"body is not JSON: {body[:80]!r}"
        if not isinstance(data, dict):
            return f"body is not a JSON object: {body[:80]!r}"
        missing = [k for k in keys if k not in data]
        if missing:
            return f"JSON body lacks {', '.join(missing)}: {body[:80]!r}"
        wrong = [f"{k}={data.get(k)!r}" for k, v in values.items() if data.get(k) != v]
        return f"JSON body has {', '.join(wrong)}" if wrong else None

    return check


@dataclass(frozen=True)
class Endpoint:
    name: str
    request: Request
    status: int
    check: Callable[[bytes], str | None]
    what: str  # what the endpoint adds to the measurement, for reports

    @property
    def label(self) -> str:
        return f"{self.request.method} {self.request.path}"


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "plaintext",
            Request("GET", "/plaintext"),
            200,
            _exact(b"Hello, World!"),
            "the framework around a handler returning 13 bytes",
        ),
        Endpoint(
            "json",
            Request("GET", "/json"),
            200,
            _json_keys("message", message="Hello, World!"),
            "plus JSON encoding of a small dict",
        ),
        Endpoint(
            "item",
            Request("GET", "/items/42"),
            200,
            _json_keys("id", "name", "price", "tags", id=42),
            "plus a path parameter and an SQLite read",
        ),
        Endpoint(
            "create",
            Request("POST", "/items", CREATE_BODY),
            201,
            _json_keys("id", "name", "price", "tags", name="bench"),
            "plus reading a JSON body, validation and an SQLite insert",
        ),
        Endpoint(
            "slow",
            Request("GET", "/slow?ms=50"),
            200,
            _json_keys("slept_ms", slept_ms=50),
            "waits 50 ms without CPU (sync-vs-async experiment)",
        ),
    )
}
LADDER_ENDPOINTS = ("plaintext", "json", "item", "create")
#: What the Node.js peer and other non-contract targets implement.
PEER_ENDPOINTS = ("plaintext", "json")


def get_endpoint(name: str) -> Endpoint:
    try:
        return ENDPOINTS[name]
    except KeyError:
        raise UnknownName("endpoint", name, ENDPOINTS) from None


def quick_check(base_url: str, endpoints: Iterable[str], timeout: float = 10.0) -> list[str]:
    """Send each endpoint's request once; return the problems found (empty: all good)."""
    import httpx

    problems = []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for name in endpoints:
            e = ENDPOINTS[name]
            headers = {"content-type": e.request.content_type} if e.request.body else {}
            try:
                resp = client.request(e.request.method, e.request.path, content=e.request.body or None, headers=headers)
            except httpx.HTTPError as exc:
                problems.append(f"{e.label}: {type(exc).__name__}: {exc}")
                continue
            if resp.status_code != e.status:
                problems.append(f"{e.label}: status {resp.status_code}, expected {e.status}")
            elif (problem := e.check(resp.content)) is not None:
                problems.append(f"{e.label}: {problem}")
    return problems
