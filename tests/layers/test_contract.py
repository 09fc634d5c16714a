"""The parity suite: every contract case against every layer.

In-process first (WSGI through ``wsgiref.validate``, ASGI with lifespan and
WebSocket), then over real HTTP on a loopback port: each layer on our scratch server
for its interface and on one widely deployed third-party server (uvicorn for ASGI,
gunicorn's gthread worker for WSGI).  The whole layer x server matrix is ``tests/servers`` and
``layercake grid``.
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
    assert result.ok, result.detail


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
    result = run_case(clients[key][0], layer, case)
    assert result.ok, result.detail
