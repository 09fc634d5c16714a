"""What only the Django layers do: the registered gaps, shown to be gaps, and the middleware switch.

The parity suite (test_contract.py) checks that each registered gap still *fails*; these
tests show *how*, so a gap's description in ``layers/__init__.py`` stays true:

* no lifespan: Django's handler raises for the lifespan scope, the store opens on the first
  request, and a server that insists on lifespan (``uvicorn --lifespan on``) will not start;
* no WebSocket: 404 where the server offers the denial-response extension (uvicorn), a
  close before accept (403) where it does not;
* the whole body first: every ``receive()`` happens before the first ``send()``, and a
  body over the limit is read to its end before the 413;
* HEAD: the handler sends the body, for the server to drop.

The middleware switch runs in subprocesses: Django's settings are configured once per process.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from layercake.inprocess import ASGIDriver, WSGIDriver, zeros
from layers import get_layer
from layers.shared.validation import MAX_ITEM_BODY
from servers.registry import ServerOptions
from servers.supervise import start_server

ROOT = Path(__file__).resolve().parents[2]
DJANGO_ASGI = get_layer("django_asgi")
DJANGO = get_layer("django")


def test_the_registry_names_the_gaps() -> None:
    assert set(DJANGO_ASGI.gaps) == {"lifespan_startup", "ws_echo", "create_too_large", "echo_too_large", "head"}
    assert set(DJANGO.gaps) == {"head"}
    assert DJANGO.logger == DJANGO_ASGI.logger == "django.request"


# --- lifespan ---------------------------------------------------------------------


def test_no_lifespan_the_store_opens_on_the_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(DJANGO_ASGI.module)
    monkeypatch.setattr(module, "STORE", None)  # as in a fresh process (other tests created items)
    driver = ASGIDriver(DJANGO_ASGI.load())
    try:
        assert driver.lifespan_supported is False
        assert module.STORE is None, "nothing may be opened before the first request"
        assert driver.request("GET", "/health").json() == {"status": "ok", "startup_complete": False, "items": 100}
        assert module.STORE is not None
    finally:
        driver.close()


async def test_the_handler_raises_for_the_lifespan_scope() -> None:
    # ASGI lifespan spec: an app that raises here does not support lifespan.
    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError(f"Django answered lifespan: {message}")

    with pytest.raises(ValueError, match="Django can only handle ASGI/HTTP connections, not lifespan"):
        await DJANGO_ASGI.load()({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)


def test_uvicorn_with_lifespan_on_refuses_to_start_django() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", DJANGO_ASGI.target, "--port", "0", "--lifespan", "on"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Django can only handle ASGI/HTTP connections, not lifespan." in done.stderr
    assert "Application startup failed. Exiting." in done.stderr


# --- WebSocket --------------------------------------------------------------------


def test_websocket_is_refused_in_process_with_a_close_before_accept() -> None:
    driver = ASGIDriver(DJANGO_ASGI.load())
    try:
        refused = driver.websocket("/ws")
        assert getattr(refused, "status", None) == 403  # no denial-response extension offered
    finally:
        driver.close()


def test_websocket_on_uvicorn_is_a_404_through_the_denial_response_extension() -> None:
    with start_server("uvicorn", "django_asgi", ServerOptions(port=0)) as srv:
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://{srv.host}:{srv.port}/ws", open_timeout=10).close()
        assert refused.value.response.status_code == 404
        assert json.loads(refused.value.response.body or b"") == {"detail": "Not Found"}
        assert httpx.get(srv.url + "/json", timeout=10).status_code == 200  # and the server goes on


# --- the whole body first -----------------------------------------------------------


async def _echo_events(app: Any, parts: list[bytes]) -> list[str]:
    """POST /echo handing out one part per receive(); the order of receives and sends."""
    events: list[str] = []
    pending = list(parts)
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if pending:
            events.append("receive")
            return {"type": "http.request", "body": pending.pop(0), "more_body": bool(pending)}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    return events


async def test_django_asgi_reads_the_whole_body_before_it_answers() -> None:
    events = await _echo_events(DJANGO_ASGI.load(), [b"%04d|" % i for i in range(20)])
    assert events.count("receive") == 20
    assert events.index("http.response.start") > max(i for i, e in enumerate(events) if e == "receive")


async def test_a_streaming_layer_answers_before_the_body_ends() -> None:
    # The contrast: Starlette streams the echo back while the upload is still coming.
    events = await _echo_events(get_layer("starlette").load(), [b"%04d|" % i for i in range(20)])
    assert events.index("http.response.start") < max(i for i, e in enumerate(events) if e == "receive")


def test_a_declared_body_over_the_limit_is_read_to_its_end_before_the_413() -> None:
    driver = ASGIDriver(DJANGO_ASGI.load())
    try:
        r = driver.request(
            "POST",
            "/items",
            headers=[("content-type", "application/json")],
            body=zeros(MAX_ITEM_BODY + 1),
            content_length=MAX_ITEM_BODY + 1,
        )
    finally:
        driver.close()
    assert r.status == 413
    assert r.body_bytes_read == MAX_ITEM_BODY + 1  # the WSGI layer reads none of it


def test_django_on_wsgi_refuses_the_same_body_unread() -> None:
    r = WSGIDriver(DJANGO.load()).request(
        "POST",
        "/items",
        headers=[("Content-Type", "application/json")],
        body=zeros(MAX_ITEM_BODY + 1),
        content_length=MAX_ITEM_BODY + 1,
    )
    assert r.status == 413 and not r.body_bytes_read


# --- HEAD -------------------------------------------------------------------------


def test_head_body_is_left_for_the_server_to_drop() -> None:
    r = WSGIDriver(DJANGO.load()).request("HEAD", "/json")
    assert r.status == 200 and r.body == b'{"message":"Hello, World!"}'


# --- the project: settings and the middleware switch ----------------------------------

_PROBE = """
import json, sys
from django.conf import settings
from layercake.inprocess import driver_for
from layers import get_layer
layer = get_layer(sys.argv[1])
driver = driver_for(layer.load(), layer.interface)
r = driver.request("GET", "/json")
print(json.dumps({"middleware": settings.MIDDLEWARE, "apps": settings.INSTALLED_APPS, "debug": settings.DEBUG,
                  "status": r.status, "headers": {k.lower(): v for k, v in r.headers}}))
driver.close()
"""


def _probe(layer: str, middleware: str | None) -> dict[str, Any]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    if middleware:
        env["LAYERCAKE_DJANGO_MIDDLEWARE"] = middleware
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, layer], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("layer", ["django", "django_asgi"])
def test_no_middleware_and_no_apps_by_default(layer: str) -> None:
    seen = _probe(layer, None)
    assert seen["middleware"] == [] and seen["apps"] == [] and seen["debug"] is False
    assert seen["status"] == 200 and "x-frame-options" not in seen["headers"]


@pytest.mark.parametrize("layer", ["django", "django_asgi"])
def test_the_switch_installs_startproject_s_seven_middleware(layer: str) -> None:
    seen = _probe(layer, "default")
    assert len(seen["middleware"]) == 7 and seen["middleware"][0] == "django.middleware.security.SecurityMiddleware"
    assert "django.contrib.auth" in seen["apps"]
    # SecurityMiddleware's and XFrameOptionsMiddleware's headers: the middleware ran
    assert seen["status"] == 200
    assert seen["headers"]["x-frame-options"] == "DENY" and seen["headers"]["x-content-type-options"] == "nosniff"


def test_the_cli_switch_reaches_verify_and_an_unknown_choice_is_refused() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "layercake.cli", "--django-middleware", "default", "verify", "django"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "23/23 contract cases passed" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "layercake.cli", "verify", "django"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LAYERCAKE_DJANGO_MIDDLEWARE": "all"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "unknown Django middleware choice" in bad.stderr and "default, none" in bad.stderr
    assert "Traceback" not in bad.stderr
