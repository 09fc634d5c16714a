"""The ladder: six layers, one contract (CONTRACT.md).

Each entry names where the application object lives (an import string, resolved only
when asked for, so listing the layers imports no framework), the interface it speaks,
the rung below it, and what it adds.  Everything that iterates over layers -- the CLI,
the tour, the tests' fixtures, the grid, the benchmarks -- iterates over ``LAYERS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from layercake.errors import UnknownName

Interface = Literal["wsgi", "asgi"]

LAYERS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Layer:
    name: str
    interface: Interface
    target: str  # "module:attribute" of the application object
    below: str | None  # the rung this one is built on (None: the interface itself)
    description: str
    docs: bool = False  # serves /docs and /openapi.json

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def directory(self) -> Path:
        return LAYERS_DIR / self.name

    @property
    def source(self) -> Path:
        return self.directory / "app.py"

    def load(self) -> Any:
        """Import and return the application object."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer(
            "bare_wsgi",
            "wsgi",
            "layers.bare_wsgi.app:app",
            None,
            "A PEP 3333 callable written by hand: routing, parsing, validation and JSON.",
        ),
        Layer(
            "werkzeug",
            "wsgi",
            "layers.werkzeug.app:app",
            "bare_wsgi",
            "Werkzeug's Request/Response wrappers and routing.Map over the same WSGI callable.",
        ),
        Layer(
            "flask",
            "wsgi",
            "layers.flask.app:app",
            "werkzeug",
            "Flask: decorators, the app and request contexts, g and teardown, error handlers.",
        ),
        Layer(
            "bare_asgi",
            "asgi",
            "layers.bare_asgi.app:app",
            None,
            "An ASGI app written by hand: scope, receive and send, lifespan and WebSocket messages.",
        ),
        Layer(
            "starlette",
            "asgi",
            "layers.starlette.app:app",
            "bare_asgi",
            "Starlette: Request/Response classes, Router, lifespan with app.state, WebSocket class.",
        ),
        Layer(
            "fastapi",
            "asgi",
            "layers.fastapi.app:app",
            "starlette",
            "FastAPI: pydantic models validate and serialise, Depends injects the store.",
            docs=True,
        ),
    )
}


def get_layer(name: str) -> Layer:
    """The layer called ``name``; an unknown name raises :class:`UnknownName` listing them."""
    try:
        return LAYERS[name]
    except KeyError:
        raise UnknownName("layer", name, LAYERS) from None


def layers_of(interface: Interface) -> list[Layer]:
    return [layer for layer in LAYERS.values() if layer.interface == interface]
