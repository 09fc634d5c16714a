"""What only the WSGI layers do, beyond the shared contract suite (test_contract.py).

* the body: never read past ``CONTENT_LENGTH`` (PEP 3333), not read at all without a
  length unless the server sets ``wsgi.input_terminated``; a chunked ``POST /items``
  over 1 MiB refused while counting, never buffered past it, and one of *exactly*
  1 MiB accepted (the boundary Werkzeug's ``max_content_length`` gets wrong);
* ``/echo`` is lazy: nothing is read until the server pulls the first chunk, one read
  per chunk, and ``close()`` stops the reading;
* HEAD runs the GET handler and drops the body -- checked over wsgiref's server, which
  would send a body the app returned;
* repeated query parameters: the last value wins in every layer (Werkzeug's MultiDict
  would give the first);
* the unhandled exception is logged on the layer's logger (``layercake.layers.<name>``;
  Django's own ``django.request``) with its traceback;
* Flask's ``teardown_appcontext`` function runs after every request, failed or not;
* no ``wsgiref.validate`` warning for any contract case.
"""

from __future__ import annotations

import importlib
import json
import logging
import socket
import threading
import warnings
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.validate import WSGIWarning, validator

import pytest

from layercake.contract import cases_for
from layercake.inprocess import BodyStream, WSGIDriver, zeros
from layers import Layer, get_layer, layers_of
from layers.shared.validation import MAX_ITEM_BODY

WSGI = layers_of("wsgi")
IDS = [layer.name for layer in WSGI]
READ_SIZE = 64 * 1024  # the read size every WSGI layer uses


@pytest.fixture(params=WSGI, ids=IDS)
def wsgi_layer(request: pytest.FixtureRequest) -> Layer:
    return request.param


def skip_if_gap(layer: Layer, key: str) -> None:
    """Skip where the registry says the layer cannot do this by design (the gap is asserted
    in the layer's own tests: tests/layers/test_django_layers.py)."""
    if key in layer.gaps:
        pytest.skip(f"registered gap of {layer.name}: {layer.gaps[key]}")


@pytest.fixture
def driver(wsgi_layer: Layer) -> WSGIDriver:
    return WSGIDriver(wsgi_layer.load())


def item_json(size: int) -> bytes:
    """A valid new-item document of exactly ``size`` bytes (padded with JSON whitespace)."""
    head, tail = b'{"name": "padded", "price": 1.5', b"}"
    return head + b" " * (size - len(head) - len(tail)) + tail


JSON = [("Content-Type", "application/json")]


# --------------------------------------------------------------------------- the body


def test_never_reads_past_content_length(driver: WSGIDriver) -> None:
    # The bytes after the declared body belong to the next request on the connection.
    r = driver.request("POST", "/echo", body=b"x" * 100 + b"GET /next HTTP/1.1\r\n", content_length=100)
    assert r.status == 200 and r.body == b"x" * 100
    assert r.body_bytes_read == 100


def test_no_length_and_no_termination_is_an_empty_body(driver: WSGIDriver) -> None:
    # Neither CONTENT_LENGTH nor wsgi.input_terminated: reading could block forever on a
    # real server, so PEP 3333 lets the app treat the body as empty -- and it must.
    r = driver.request("POST", "/echo", body=iter([b"never read"]))
    assert r.status == 200 and r.body == b""
    assert r.body_bytes_read == 0
    r = driver.request("POST", "/items", headers=JSON, body=iter([b'{"name": "x", "price": 1}']))
    assert r.status == 422 and r.json()["detail"][0]["type"] == "missing"


def test_chunked_item_over_the_limit_is_refused_while_counting(driver: WSGIDriver) -> None:
    r = driver.request("POST", "/items", headers=JSON, body=zeros(MAX_ITEM_BODY + 8 * READ_SIZE), chunked=True)
    assert r.status == 413 and r.json() == {"detail": "Request Entity Too Large"}
    # Stopped at the first read past the limit: never buffered the rest.
    assert r.body_bytes_read is not None and r.body_bytes_read <= MAX_ITEM_BODY + READ_SIZE


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_item_of_exactly_the_limit_is_accepted(driver: WSGIDriver, chunked: bool) -> None:
    r = driver.request("POST", "/items", headers=JSON, body=item_json(MAX_ITEM_BODY), chunked=chunked)
    assert r.status == 201, r.body[:200]
    assert r.json()["name"] == "padded"
    r = driver.request("POST", "/items", headers=JSON, body=item_json(MAX_ITEM_BODY + 1), chunked=chunked)
    assert r.status == 413


def test_echo_reads_only_as_the_server_pulls(wsgi_layer: Layer) -> None:
    app = validator(wsgi_layer.load())
    stream = BodyStream(zeros(16 * READ_SIZE))
    environ = WSGIDriver(app, validate=False).environ("POST", "/echo", [], stream, content_length=16 * READ_SIZE)
    started: list[str] = []
    result = app(environ, lambda status, headers, exc_info=None: started.append(status))
    assert started == ["200 OK"]
    assert stream.bytes_read == 0, "the body was read before the server asked for the first chunk"
    iterator = iter(result)
    first = next(iterator)
    assert 0 < len(first) <= READ_SIZE and stream.bytes_read == len(first)
    result.close()  # the client went away: the server closes the iterable (PEP 3333)
    assert stream.bytes_read == len(first), "reading went on after close()"


# --------------------------------------------------------------------------- HEAD


def test_head_runs_get_and_drops_the_body(wsgi_layer: Layer, driver: WSGIDriver) -> None:
    skip_if_gap(wsgi_layer, "head")
    get, head = driver.request("GET", "/json"), driver.request("HEAD", "/json")
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == get.header("content-length") == str(len(get.body))
    head = driver.request("HEAD", "/stream?n=3")
    assert head.status == 200 and head.body == b"" and head.header("content-length") is None


@pytest.fixture
def wsgiref_server(wsgi_layer: Layer) -> Iterator[tuple[str, int]]:
    """The layer on wsgiref's HTTP/1.0 server, in a thread, on a random loopback port."""

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, wsgi_layer.load(), WSGIServer, Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_head_sends_no_body_over_wsgiref(wsgi_layer: Layer, wsgiref_server: tuple[str, int]) -> None:
    skip_if_gap(wsgi_layer, "head")
    # wsgiref sends whatever body the app returns, even for HEAD: dropping it is the app's job.
    with socket.create_connection(wsgiref_server, timeout=10) as sock:
        sock.sendall(b"HEAD /json HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"content-length: 27" in head.lower()
    assert body == b""


# --------------------------------------------------------------------------- query, errors


def test_repeated_query_parameter_last_value_wins(driver: WSGIDriver) -> None:
    assert driver.request("GET", "/items?limit=500&limit=3").json()["limit"] == 3
    assert driver.request("GET", "/items?limit=3&limit=500").status == 422


def test_unhandled_exception_logged_on_the_layer_logger(
    wsgi_layer: Layer, driver: WSGIDriver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=wsgi_layer.logger):
        r = driver.request("GET", "/error")
    assert r.status == 500 and r.json() == {"detail": "Internal Server Error"}
    records = [rec for rec in caplog.records if rec.name == wsgi_layer.logger]
    assert len(records) == 1
    assert records[0].exc_info is not None and records[0].exc_info[0] is RuntimeError
    assert b"on purpose" not in r.body


def test_every_contract_case_is_clean_under_wsgiref_validate(wsgi_layer: Layer) -> None:
    from layercake.contract import run_case

    driver = WSGIDriver(wsgi_layer.load())
    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        for case in cases_for(wsgi_layer):
            result = run_case(driver, wsgi_layer, case)
            assert result.ok, f"{case.id}: {result.detail}"


# --------------------------------------------------------------------------- flask: g and teardown


@pytest.fixture
def flask_teardowns(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Wrap the layer's teardown_appcontext function to record what it saw."""
    from flask import g

    module = importlib.import_module(get_layer("flask").module)
    seen: list[dict[str, Any]] = []

    def spy(exc: BaseException | None) -> None:
        before = g.get("store")
        module.release_store(exc)
        seen.append({"before": before, "after": g.get("store"), "exc": exc})

    funcs = module.app.teardown_appcontext_funcs
    assert module.release_store in funcs, "release_store is not registered with @app.teardown_appcontext"
    monkeypatch.setattr(
        module.app, "teardown_appcontext_funcs", [spy if f is module.release_store else f for f in funcs]
    )
    return seen


def test_flask_teardown_releases_the_store(flask_teardowns: list[dict[str, Any]]) -> None:
    module = importlib.import_module(get_layer("flask").module)
    driver = WSGIDriver(module.app)
    assert driver.request("GET", "/items/1").status == 200
    assert driver.request("GET", "/plaintext").status == 200  # never asks for the store
    assert driver.request("GET", "/error").status == 500  # the handler raised
    assert [t["before"] is module.STORE for t in flask_teardowns] == [True, False, False]
    assert all(t["after"] is None for t in flask_teardowns)
    assert not module.STORE.closed  # released, not closed: the catalogue outlives the request


def test_flask_health_counts_through_g(flask_teardowns: list[dict[str, Any]]) -> None:
    module = importlib.import_module(get_layer("flask").module)
    r = WSGIDriver(module.app).request("GET", "/health")
    assert json.loads(r.body) == {"status": "ok", "startup_complete": True, "items": module.STORE.count()}
    assert flask_teardowns[-1]["before"] is module.STORE
