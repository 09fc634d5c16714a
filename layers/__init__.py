"""The ladder: eight layers, one contract (CONTRACT.md).

Each entry names where the application object lives (an import string, resolved only
when asked for, so listing the layers imports no framework), the interface it speaks,
the rung below it, and what it adds.  Everything that iterates over layers -- the CLI,
the tour, the tests' fixtures, the grid, the benchmarks -- iterates over ``LAYERS``.

``gaps`` are the contract cases a layer cannot pass by its framework's design, each
with the reason (Django on ASGI has no lifespan and no WebSocket): the grid, ``verify``
and ``layercake layers`` show them as known, and the tests assert that they still fail.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
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
    # contract case id (or a layer test's name for behaviour beyond the contract, like "head")
    # -> why this layer cannot pass it: its framework's design, not a bug
    gaps: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    # where the layer logs an unhandled exception (Django logs it itself, on django.request)
    log_name: str = ""
    # True: ``below`` is the rung it is read beside, not code it is built on (Django is a
    # framework of its own on WSGI/ASGI; its rung below on the ladder is Flask / FastAPI)
    standalone: bool = False

    @property
    def relation(self) -> str:
        """How the layer stands to the rung below: "built on flask", "beside flask", "the WSGI interface itself"."""
        if self.below is None:
            return f"the {self.interface.upper()} interface itself"
        return f"beside {self.below}" if self.standalone else f"built on {self.below}"

    @property
    def logger(self) -> str:
        """The logger the layer's unhandled exceptions are logged on, with their traceback."""
        return self.log_name or f"layercake.layers.{self.name}"

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


# Why Django's ASGI handler cannot pass these cases (django/core/handlers/asgi.py, 5.2).
_WHOLE_BODY = (
    "Django's ASGIHandler reads the whole request body (read_body, into a temporary file) before "
    "the view runs, so a body over the limit is refused only after it all arrived"
)
# Beyond the contract, what the layer tests check of every layer and Django leaves to the server.
_HEAD = (
    "Django's handlers send a HEAD response's body and leave dropping it to the server (runserver, gunicorn "
    "and uvicorn do; wsgiref does not)"
)
DJANGO_GAPS = {"head": _HEAD}
DJANGO_ASGI_GAPS = {
    "lifespan_startup": "Django's ASGIHandler serves only 'http' scopes and raises on 'lifespan', so no server "
    "runs lifespan: the store opens on the first request (startup_complete false)",
    "ws_echo": "Django's ASGIHandler has no WebSocket (that is Channels): /ws is refused, 404 where the server "
    "offers the denial-response extension, else 403",
    "create_too_large": _WHOLE_BODY,
    "echo_too_large": _WHOLE_BODY,
    "head": _HEAD,
}

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
        Layer(
            "django",
            "wsgi",
            "layers.django.app:app",
            "flask",  # the rung below on the ladder, not a dependency: Django is WSGI all its own
            "Django on WSGI: WSGIHandler, the URLconf, class-based views, JsonResponse; middleware optional.",
            gaps=DJANGO_GAPS,
            log_name="django.request",
            standalone=True,
        ),
        Layer(
            "django_asgi",
            "asgi",
            "layers.django_asgi.app:app",
            "fastapi",  # likewise: Django's ASGI handler is ASGI all its own
            "Django on ASGI: ASGIHandler, async views; its sync parts hop to threads via sync_to_async.",
            gaps=DJANGO_ASGI_GAPS,
            log_name="django.request",
            standalone=True,
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
