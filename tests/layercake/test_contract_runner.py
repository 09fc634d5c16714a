"""The contract runner itself: it must catch a layer that breaks the contract, in-process
and over HTTP, and the in-process drivers must behave like a server would."""

from __future__ import annotations

import json
from typing import Any

import pytest

from layercake.contract import CASES, HTTPClient, run_case, run_cases
from layercake.inprocess import ASGIDriver, ASGIProtocolError, WSGIDriver, zeros
from layers import LAYERS, Layer, get_layer

CASE = {c.id: c for c in CASES}


def _broken_wsgi(fault: str) -> Any:
    """bare_wsgi with one deliberate contract violation."""
    inner = get_layer("bare_wsgi").load()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if fault == "plaintext" and path == "/plaintext" and method == "GET":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"Hello, World"]  # no "!"
        if fault == "error" and path == "/error":
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"Traceback (most recent call last): RuntimeError: boom"]
        if fault == "stream" and path == "/stream" and environ["QUERY_STRING"] == "n=5":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"".join(b"chunk %d\n" % i for i in range(5))]  # one chunk, not five
        if fault == "create_too_large" and path == "/items" and int(environ.get("CONTENT_LENGTH") or 0) > 2**20:
            environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))  # reads the whole body, then refuses it
            start_response("413 Content Too Large", [("Content-Type", "application/json")])
            return [b'{"detail": "too large"}']
        return inner(environ, start_response)

    return app


@pytest.mark.parametrize("fault", ["plaintext", "error", "stream", "create_too_large"])
def test_a_broken_layer_fails_exactly_the_broken_case(fault: str) -> None:
    layer = get_layer("bare_wsgi")
    driver = WSGIDriver(_broken_wsgi(fault))
    results = {r.case.id: r for r in run_cases(driver, layer)}
    assert not results[fault].ok, f"the {fault} case did not notice the fault"
    assert [cid for cid, r in results.items() if not r.ok] == [fault]


def test_the_same_fault_is_caught_over_http() -> None:
    from servers.registry import ServerOptions
    from servers.supervise import start_server

    layer = get_layer("starlette")
    with start_server("scratch-asgi", layer.name, ServerOptions(port=0)) as running:
        client = HTTPClient(running.url, layer.interface)
        try:
            assert run_case(client, layer, CASE["plaintext"]).ok
            # The right layer checked as if it were another: the index page names the wrong layer.
            wrong = Layer("fastapi", "asgi", layer.target, None, "")
            result = run_case(client, wrong, CASE["index"])
            assert not result.ok and "does not name the layer" in result.detail
        finally:
            client.close()


@pytest.mark.parametrize("name", [n for n, layer in LAYERS.items() if layer.interface == "wsgi"])
def test_wsgi_driver_never_reads_a_refused_body(name: str) -> None:
    driver = WSGIDriver(get_layer(name).load())
    response = driver.request("POST", "/echo", body=zeros(17 * 1024 * 1024), content_length=17 * 1024 * 1024)
    assert response.status == 413
    assert response.body_bytes_read == 0


def test_asgi_driver_runs_lifespan_and_copies_state_into_each_scope() -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["opened"] = True
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen.append(scope["state"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    driver = ASGIDriver(app)
    try:
        assert driver.lifespan_supported is True
        assert driver.request("GET", "/").status == 204
        assert seen == [{"opened": True}]
        assert seen[0] is not driver.state  # lifespan spec: each request gets a copy
    finally:
        driver.close()
    assert driver.lifespan_messages[-1] == {"type": "lifespan.shutdown.complete"}


def test_asgi_driver_reports_a_body_before_the_start() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        await send({"type": "http.response.body", "body": b"too early"})

    driver = ASGIDriver(app)
    try:
        assert driver.lifespan_supported is False  # an app that raises in lifespan does not support it
        with pytest.raises(ASGIProtocolError, match="before http.response.start"):
            driver.request("GET", "/")
    finally:
        driver.close()


def test_verify_json_output_lists_every_case(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from layercake.cli import cli

    out = tmp_path / "verify.json"
    result = CliRunner().invoke(cli, ["verify", "bare_asgi", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {r["id"] for r in data["results"]} == {c.id for c in CASES if "asgi" in c.interfaces}
    assert all(r["ok"] for r in data["results"])
