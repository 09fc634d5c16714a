"""Fixtures shared by the whole suite, parametrised over the registries so every test
runs for every layer (and, in tests/servers, every server) it applies to."""

from __future__ import annotations

import pytest

from layers import LAYERS, Layer


@pytest.fixture(params=list(LAYERS.values()), ids=list(LAYERS))
def layer(request: pytest.FixtureRequest) -> Layer:
    return request.param
