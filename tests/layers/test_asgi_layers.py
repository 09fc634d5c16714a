"""What only the ASGI layers do, beyond the shared contract suite (test_contract.py).

* lifespan: startup opens the store, shutdown closes it; without lifespan the first
  request opens it and ``/health`` says ``startup_complete: false`` -- in-process and
  on uvicorn with ``--lifespan off``; bare_asgi on a server that has no lifespan
  ``state`` (an optional key of the lifespan scope);
* WebSocket 1009 for a message over 16 MiB, counted in bytes (text as UTF-8);
* ``/echo`` keeps every byte under ASGI HTTP spec 2.3, where Starlette's
  ``StreamingResponse`` would read ``receive()`` concurrently (the reason for
  ``EchoResponse``);
* 413 for a chunked ``POST /items`` counted while reading, never buffered past 1 MiB;
* the unhandled exception is logged on the layer's logger with its traceback;
* ``/docs`` and ``/openapi.json`` exist on fastapi only.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from layercake.inprocess import ASGIDriver, Response, zeros
from layers import Layer, layers_of
from layers.shared.store import Store
from layers.shared.validation import MAX_ITEM_BODY, MAX_WS_MESSAGE

ASGI = layers_of("asgi")
IDS = [layer.name for layer in ASGI]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=ASGI, ids=IDS)
def asgi_layer(request: pytest.FixtureRequest) -> Layer:
    return request.param


def skip_if_gap(layer: Layer, key: str) -> None:
    """Skip where the registry says the layer cannot do this by design (the gap is asserted
    in the layer's own tests: tests/layers/test_django_layers.py)."""
    if key in layer.gaps:
        pytest.skip(f"registered gap of {layer.name}: {layer.gaps[key]}")


def _module(layer: Layer) -> ModuleType:
    return importlib.import_module(layer.module)


def _http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    """An HTTP scope as a server builds it (ASGI HTTP spec), with no lifespan ``state``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


@pytest.fixture
def opened(asgi_layer: Layer, monkeypatch: pytest.MonkeyPatch) -> list[Store]:
    """Record every store the layer opens, starting from a layer with no store at all."""
    module = _module(asgi_layer)
    stores: list[Store] = []
    real_open = module.open_store

    def recording_open() -> Store:
        stores.append(real_open())
        return stores[-1]

    monkeypatch.setattr(module, "open_store", recording_open)
    if hasattr(module, "resources"):  # bare_asgi's no-state / no-lifespan holder
        monkeypatch.setattr(module, "resources", module.Resources())
    elif hasattr(module, "STORE"):  # django_asgi: a module-level store, opened on first use
        monkeypatch.setattr(module, "STORE", None)
    else:  # starlette and fastapi keep it on app.state
        monkeypatch.delattr(module.app.state, "store", raising=False)
        monkeypatch.delattr(module.app.state, "startup_complete", raising=False)
    return stores


# --- lifespan -------------------------------------------------------------------


def test_lifespan_opens_the_store_at_startup_and_closes_it_at_shutdown(asgi_layer: Layer, opened: list[Store]) -> None:
    skip_if_gap(asgi_layer, "lifespan_startup")
    driver = ASGIDriver(asgi_layer.load())
    try:
        assert driver.lifespan_supported is True
        assert len(opened) == 1 and not opened[0].closed, "startup must open exactly one store"
        health = driver.request("GET", "/health").json()
        assert health == {"status": "ok", "startup_complete": True, "items": 100}
        assert len(opened) == 1, "a request must use the store startup opened"
    finally:
        driver.close()
    assert opened[0].closed, "lifespan shutdown must close the store"
    assert [m["type"] for m in driver.lifespan_messages] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_without_lifespan_the_first_request_opens_the_store(asgi_layer: Layer, opened: list[Store]) -> None:
    driver = ASGIDriver(asgi_layer.load(), lifespan=False)
    try:
        assert opened == [], "nothing may be opened before a request when no lifespan runs"
        assert driver.request("GET", "/health").json() == {"status": "ok", "startup_complete": False, "items": 100}
        created = driver.request(
            "POST", "/items", headers=[("content-type", "application/json")], body=b'{"name": "lazy", "price": 2.5}'
        )
        assert created.status == 201
        assert driver.request("GET", f"/items/{created.json()['id']}").json()["name"] == "lazy"
        assert len(opened) == 1, "later requests must reuse the lazily opened store"
    finally:
        driver.close()


async def test_bare_asgi_lifespan_without_a_state_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that runs lifespan but has no ``scope["state"]`` (the key is optional)."""
    module = importlib.import_module("layers.bare_asgi.app")
    monkeypatch.setattr(module, "resources", module.Resources())
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        replies.append(message)

    task = asyncio.ensure_future(module.app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    while not replies:
        await asyncio.sleep(0)
    assert replies == [{"type": "lifespan.startup.complete"}]
    store = module.resources.store
    assert store is not None and module.resources.startup_complete

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def collect(message: dict[str, Any]) -> None:
        sent.append(message)

    await module.app(_http_scope("GET", "/health"), receive, collect)
    assert b'"startup_complete":true' in sent[1]["body"]

    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 5)
    assert replies[-1] == {"type": "lifespan.shutdown.complete"}
    assert store.closed and module.resources.store is None


@contextmanager
def _serve(layer: Layer, *args: str) -> Iterator[str]:
    """Run ``layer`` on uvicorn on a free loopback port; yield its URL; always stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", layer.target, "--host", "127.0.0.1", "--port", "0", "--no-access-log", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            found = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if found:
                yield found.group(1)
                return
        pytest.fail("uvicorn exited before serving")
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("lifespan", ["on", "off"])
def test_startup_complete_on_a_real_server(asgi_layer: Layer, lifespan: str) -> None:
    if lifespan == "on":
        skip_if_gap(asgi_layer, "lifespan_startup")
    with _serve(asgi_layer, "--lifespan", lifespan) as url:
        health = httpx.get(url + "/health", timeout=10).json()
        assert health == {"status": "ok", "startup_complete": lifespan == "on", "items": 100}


# --- WebSocket ------------------------------------------------------------------


def test_websocket_message_over_16_mib_is_closed_with_1009(asgi_layer: Layer) -> None:
    skip_if_gap(asgi_layer, "ws_echo")
    driver = ASGIDriver(asgi_layer.load())
    try:
        ws = driver.websocket("/ws")
        assert not isinstance(ws, Response), f"handshake refused with {ws.status}"
        ws.send(b"\x01" * MAX_WS_MESSAGE)  # exactly the limit: still echoed
        assert ws.receive() == b"\x01" * MAX_WS_MESSAGE
        # Fewer characters than the limit, more bytes: the limit is on the payload (RFC 6455 §5.2).
        ws.send("é" * (MAX_WS_MESSAGE // 2 + 1))
        with pytest.raises(ConnectionError):
            ws.receive()
        assert ws.close_code == 1009
    finally:
        driver.close()


def test_websocket_to_an_unknown_path_is_refused(asgi_layer: Layer) -> None:
    driver = ASGIDriver(asgi_layer.load())
    try:
        refused = driver.websocket("/nowhere")
        assert getattr(refused, "status", None) == 403
    finally:
        driver.close()


# --- streaming uploads ----------------------------------------------------------


async def _echo_at_spec(app: Any, parts: list[bytes], spec_version: str, timeout: float = 10) -> bytes:
    """POST /echo as a server speaking ``spec_version`` would, handing out one part per receive()."""
    scope = _http_scope("POST", "/echo", [(b"transfer-encoding", b"chunked")])
    scope["asgi"] = {"version": "3.0", "spec_version": spec_version}
    pending = list(parts)
    done = asyncio.Event()
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0)  # let every other reader run first, as a socket would
        if pending:
            return {"type": "http.request", "body": pending.pop(0), "more_body": bool(pending)}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await asyncio.wait_for(app(scope, receive, send), timeout)
    return b"".join(body)


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_echo_keeps_every_byte_whatever_the_spec_version(asgi_layer: Layer, spec_version: str) -> None:
    parts = [b"%05d|" % i for i in range(200)]
    assert await _echo_at_spec(asgi_layer.load(), parts, spec_version) == b"".join(parts)


@pytest.mark.parametrize("name", ["starlette", "fastapi"])
async def test_plain_streaming_response_would_lose_echo_bytes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why EchoResponse exists: with Starlette's own disconnect watcher the upload has holes.

    The watcher takes parts of the body; when it takes the last one the echo waits
    forever for it (the timeout below ends that wait).  If Starlette stops reading
    ``receive()`` concurrently below spec 2.4, this test fails and EchoResponse can go.
    """
    module = importlib.import_module(f"layers.{name}.app")
    monkeypatch.setattr(module.EchoResponse, "listen_for_disconnect", module.StreamingResponse.listen_for_disconnect)
    parts = [b"%05d|" % i for i in range(200)]
    try:
        echoed: bytes | None = await _echo_at_spec(module.app, parts, "2.3", timeout=2)
    except TimeoutError:
        echoed = None
    assert echoed != b"".join(parts)


def test_chunked_item_over_1_mib_is_refused_while_reading(asgi_layer: Layer) -> None:
    skip_if_gap(asgi_layer, "create_too_large")
    driver = ASGIDriver(asgi_layer.load())
    try:
        r = driver.request(
            "POST",
            "/items",
            headers=[("content-type", "application/json")],
            body=zeros(4 * MAX_ITEM_BODY),
            chunked=True,
        )
        assert r.status == 413
        assert r.json() == {"detail": "Content Too Large"}
        assert r.body_bytes_read is not None and r.body_bytes_read <= MAX_ITEM_BODY + 65536, "buffered past the limit"
    finally:
        driver.close()


# --- errors and extras ------------------------------------------------------------


def test_unhandled_exception_is_logged_with_its_traceback(asgi_layer: Layer, caplog: pytest.LogCaptureFixture) -> None:
    driver = ASGIDriver(asgi_layer.load())
    try:
        with caplog.at_level(logging.ERROR, logger=asgi_layer.logger):
            r = driver.request("GET", "/error")
    finally:
        driver.close()
    assert r.status == 500 and r.json() == {"detail": "Internal Server Error"}
    ours = [rec for rec in caplog.records if rec.name == asgi_layer.logger]
    assert ours and ours[0].exc_info is not None and ours[0].exc_info[0] is RuntimeError


def test_docs_and_openapi_only_where_the_registry_says(asgi_layer: Layer) -> None:
    driver = ASGIDriver(asgi_layer.load())
    try:
        spec = driver.request("GET", "/openapi.json")
        docs = driver.request("GET", "/docs")
    finally:
        driver.close()
    if asgi_layer.docs:
        assert spec.status == 200 and docs.status == 200
        paths = spec.json()["paths"]
        assert {"/items", "/items/{item_id}", "/echo", "/health"} <= set(paths)
        limit = next(p for p in paths["/items"]["get"]["parameters"] if p["name"] == "limit")["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 10)
    else:
        assert spec.status == 404 and docs.status == 404
