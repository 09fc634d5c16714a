"""The parity suite: every contract case against every layer.

In-process first (WSGI through ``wsgiref.validate``, ASGI with lifespan and
WebSocket), then over real HTTP on a loopback port: each layer on our scratch server
for its interface and on one widely deployed third-party server (uvicorn for ASGI,
gunicorn's gthread worker for WSGI).  The whole layer x server matrix is ``tests/servers`` and
``layercake grid``.

A case the registry lists among a layer's ``gaps`` (Django's ASGI handler has no lifespan,
for one) must *fail*: a gap that starts passing is a stale entry, and the test says so.
Over HTTP those run on a client with a short timeout: two of them send a declared body
that never comes, and a handler that waits for whole bodies waits until the client stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from layercake.contract import CASES, Case, HTTPClient, run_case
from layercake.inprocess import driver_for
from layers import LAYERS, Layer

PAIRS = [(layer, case) for layer in LAYERS.values() for case in CASES if layer.interface in case.interfaces]
IDS = [f"{layer.name}-{case.id}" for layer, case in PAIRS]

# One of ours and one widely deployed server per interface.  (Not waitress: it buffers
# the whole request body before calling the app, so a declared 16 MiB upload cannot be
# refused from its headers -- the grid shows that gap.)
HTTP_SERVERS = {"wsgi": ("scratch-wsgi", "gunicorn-gthread"), "asgi": ("scratch-asgi", "uvicorn")}
SERVED = [(layer, server, case) for layer, case in PAIRS for server in HTTP_SERVERS[layer.interface]]
SERVED_IDS = [f"{layer.name}@{server}-{case.id}" for layer, server, case in SERVED]


GAP_TIMEOUT = 3.0  # seconds a gap case may wait over HTTP before the client gives up


def check_result(layer: Layer, case: Case, ok: bool, detail: str) -> None:
    if case.id in layer.gaps:
        assert not ok, f"{case.id} passes on {layer.name}, but is registered as a gap ({layer.gaps[case.id]})"
    else:
        assert ok, detail


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[Any, Any]]:
    """One client per layer (and per server), reused by that layer's cases, closed at the end."""
    opened: dict[Any, Any] = {}
    yield opened
    for client, server in opened.values():
        client.close()
        if server is not None:
            server.__exit__(None, None, None)


@pytest.mark.parametrize(("layer", "case"), PAIRS, ids=IDS)
def test_inprocess(layer: Layer, case: Case, clients: dict[Any, Any]) -> None:
    if layer.name not in clients:
        clients[layer.name] = (driver_for(layer.load(), layer.interface), None)
    result = run_case(clients[layer.name][0], layer, case)
    check_result(layer, case, result.ok, result.detail)


@pytest.mark.parametrize(("layer", "server", "case"), SERVED, ids=SERVED_IDS)
def test_over_http(layer: Layer, server: str, case: Case, clients: dict[Any, Any]) -> None:
    from servers.registry import ServerOptions, get_server
    from servers.supervise import start_server

    if not get_server(server).available:
        pytest.skip(f"{server} is not installed")
    key = (layer.name, server)
    if key not in clients:
        running = start_server(server, layer.name, ServerOptions(port=0))
        running.__enter__()
        clients[key] = (HTTPClient(running.url, layer.interface), running)
    client = clients[key][0]
    if case.id in layer.gaps:
        if (*key, "gap") not in clients:
            clients[(*key, "gap")] = (HTTPClient(client.url, layer.interface, timeout=GAP_TIMEOUT), None)
        client = clients[(*key, "gap")][0]
    result = run_case(client, layer, case)
    check_result(layer, case, result.ok, result.detail)
