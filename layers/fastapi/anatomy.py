"""FastAPI's anatomy: from bare ASGI to a full FastAPI endpoint, one feature per step.

Theory of operation
-------------------
Each function below builds one small, complete ASGI application, and each adds exactly
one thing over the function before it -- its docstring's first line says what, and the
rest how FastAPI does it.  They all answer the same request the same way
(``layercake.anatomy.ITEM_REQUEST``, FastAPI's own tutorial shape)::

    PUT /items/42?q=cake   {"name":"cake","price":9.5}
    -> 200 application/json  {"item_id":42,"name":"cake","price":9.5,"q":"cake"}

What a step does not yet get from FastAPI it does by hand -- the first FastAPI step
takes a ``Request`` and reads the path, query and body itself -- and the step that
brings the feature replaces that hand work.  So each delta in ``layercake anatomy
fastapi`` is what one feature costs over doing the same job yourself: the questions
asked in FastAPI's tracker ("Depends overhead", "response_model doubles the time",
"BaseHTTPMiddleware is slow", "def vs async def").

The ladder: bare ASGI -> Starlette returning a ``Response`` -> FastAPI returning a
``Response`` -> a path parameter with type conversion -> a validated ``Query`` -> a
returned ``dict`` (``jsonable_encoder``) -> a ``response_model`` (pydantic's
serializer) -> a validated body model -> one async ``Depends`` -> a chain of them ->
the built-in telemetry check switched off -> the docs routes removed -> a no-op pure
ASGI middleware -> a no-op ``BaseHTTPMiddleware`` -> a sync ``Depends`` (a thread-pool
hop) -> a ``def`` endpoint.  Two steps *remove* something ``FastAPI()`` brings by
default, so their deltas are what those defaults cost every request.  The order keeps
small deltas on a small base: the expensive steps (``BaseHTTPMiddleware``, the thread
pool) come last, since every step after them would carry their cost and their jitter.

What it deliberately doesn't do: anything but this one request (the contract's full
app is ``layers/fastapi/app.py``), or an OpenTelemetry SDK -- the telemetry step is
about the check FastAPI makes when *nothing* is configured, the cost everyone pays.

Specs: ASGI "HTTP"; the validation rules are pydantic's (FastAPI's ``Query``,
``Path`` and body models).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.routing import Route

from layercake.anatomy import ITEM_ANSWER, ITEM_REQUEST, Ladder, Step, serve_steps
from layers.starlette.anatomy import NoopASGIMiddleware, NoopBaseHTTPMiddleware, bare_asgi, dumps


class Item(BaseModel):
    """The request body: what the client sends."""

    name: str = Field(min_length=1, max_length=100)
    price: float = Field(gt=0)


class ItemOut(BaseModel):
    """The answer: the item with its id and the query it was asked with."""

    item_id: int
    name: str
    price: float
    q: str


async def query_q(q: Annotated[str, Query(max_length=50)]) -> str:
    """A dependency: the validated ``q`` query parameter."""
    return q


async def search_terms(q: Annotated[str, Depends(query_q)]) -> str:
    """A dependency on a dependency: ``q`` tidied."""
    return q.strip()


async def search(q: Annotated[str, Depends(search_terms)]) -> str:
    """The third link of the chain."""
    return q


def settings() -> dict[str, Any]:
    """A *sync* dependency (``def``), like reading settings or a current user: FastAPI runs it in the thread pool."""
    return {"max_price": 1000.0}


# --- the steps ---


async def item_by_hand(request: Request) -> Response:
    item = json.loads(await request.body())
    answer = {
        "item_id": int(request.path_params["item_id"]),
        "name": item["name"],
        "price": item["price"],
        "q": request.query_params["q"],
    }
    return Response(dumps(answer), media_type="application/json")


def starlette_response() -> Starlette:
    """Starlette returning a ``Response``: its app, router and ``Request``, the rest by hand.

    The path parameter arrives as a string and is converted with ``int()``, the body is
    decoded with ``json.loads`` and the answer encoded with ``json.dumps`` -- the floor
    FastAPI is built on (``FastAPI`` subclasses ``Starlette``).
    """
    return Starlette(routes=[Route("/items/{item_id}", item_by_hand, methods=["PUT"])])


def fastapi_response() -> FastAPI:
    """FastAPI returning a ``Response``: the same hand-written endpoint, on ``FastAPI()`` and ``APIRoute``.

    The endpoint takes only ``request: Request`` and returns a ``Response``, so FastAPI
    has no parameter to validate and nothing to serialise -- what remains is its
    machinery: ``APIRoute``'s handler (``solve_dependencies`` with an empty dependant),
    its extra middleware (``AsyncExitStackMiddleware``, a body limit, the telemetry
    exception observer), the per-request telemetry check in ``FastAPI.__call__``
    (see ``telemetry_off``) and four docs routes the router tries before ours (see
    ``docs_off``).
    """
    app = FastAPI()
    app.put("/items/{item_id}")(item_by_hand)
    return app


def path_param() -> FastAPI:
    """A path parameter with type conversion: ``item_id: int``, validated by pydantic.

    FastAPI sees ``item_id`` in the path and the signature and makes it a path
    parameter; on each request ``solve_dependencies`` validates the string against
    ``int`` with the parameter's pydantic ``TypeAdapter`` (a 422 if it is not one).
    """
    app = FastAPI()

    @app.put("/items/{item_id}")
    async def item(item_id: int, request: Request) -> Response:
        item = json.loads(await request.body())
        answer = {"item_id": item_id, "name": item["name"], "price": item["price"], "q": request.query_params["q"]}
        return Response(dumps(answer), media_type="application/json")

    return app


def query_param() -> FastAPI:
    """A validated ``Query`` parameter: ``q: Annotated[str, Query(max_length=50)]``.

    Required (no default), a string of at most 50 characters: FastAPI reads it from
    ``request.query_params`` and validates it with pydantic alongside ``item_id``.
    """
    app = FastAPI()

    @app.put("/items/{item_id}")
    async def item(item_id: int, q: Annotated[str, Query(max_length=50)], request: Request) -> Response:
        item = json.loads(await request.body())
        answer = {"item_id": item_id, "name": item["name"], "price": item["price"], "q": q}
        return Response(dumps(answer), media_type="application/json")

    return app


def return_dict() -> FastAPI:
    """Returning a ``dict``: FastAPI runs it through ``jsonable_encoder`` into a ``JSONResponse``.

    No return annotation on purpose: ``-> dict[str, Any]`` would be read as a
    ``response_model`` (the next step).  Without one, ``serialize_response`` calls
    ``jsonable_encoder`` -- a Python walk over the value -- and ``JSONResponse`` dumps it.
    """
    app = FastAPI()

    @app.put("/items/{item_id}")
    async def item(item_id: int, q: Annotated[str, Query(max_length=50)], request: Request):  # noqa: ANN202
        item = json.loads(await request.body())
        return {"item_id": item_id, "name": item["name"], "price": item["price"], "q": q}

    return app


def response_model() -> FastAPI:
    """A ``response_model``: the returned dict is validated into ``ItemOut`` and dumped by pydantic's serializer.

    With a response model FastAPI validates the return value against it (the model's
    field, in pydantic-core) and serialises it straight to JSON bytes with pydantic --
    fields outside the model would be dropped, which is why people use it.
    """
    app = FastAPI()

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(item_id: int, q: Annotated[str, Query(max_length=50)], request: Request) -> Any:
        item = json.loads(await request.body())
        return {"item_id": item_id, "name": item["name"], "price": item["price"], "q": q}

    return app


def body_model() -> FastAPI:
    """A validated body model: ``item: Item`` instead of ``json.loads(await request.body())``.

    FastAPI reads the body, decodes the JSON, and validates it into ``Item`` (a
    non-empty name, a positive price) -- every error in one 422 with the others.
    """
    app = FastAPI()

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(item_id: int, q: Annotated[str, Query(max_length=50)], item: Item) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


def async_depends() -> FastAPI:
    """One async ``Depends``: ``q`` comes from the ``query_q`` dependency instead of the signature.

    The dependency's own parameters (the ``Query``) are solved first, then it is
    awaited, and its return value becomes the endpoint's argument.
    """
    app = FastAPI()

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(item_id: int, q: Annotated[str, Depends(query_q)], item: Item) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


def depends_chain() -> FastAPI:
    """A chain of dependencies: ``search`` -> ``search_terms`` -> ``query_q``, three async links.

    ``solve_dependencies`` recurses: each sub-dependant is solved (and cached for the
    request) before the one that needs it.
    """
    app = FastAPI()

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(item_id: int, q: Annotated[str, Depends(search)], item: Item) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


def telemetry_off() -> FastAPI:
    """FastAPI's built-in telemetry check, switched off: ``FastAPI(telemetry={...: False})``.

    FastAPI 0.165 has native OpenTelemetry support.  On every HTTP request
    ``FastAPI.__call__`` asks ``NativeTelemetry.enabled()`` whether any of tracing,
    metrics and logs has a provider: with the defaults (all three ``True``) that is
    ``opentelemetry.trace.get_tracer_provider()``, ``metrics.get_meter_provider()`` and
    ``_logs.get_logger_provider()`` -- each also looks its ``OTEL_PYTHON_*_PROVIDER``
    variable up in ``os.environ`` -- and each is checked by type against OpenTelemetry's
    deferred proxy providers (``_unconfigured``).  When none is configured every request
    pays for the three look-ups and then runs the app untraced.  Setting ``tracing``,
    ``metrics`` and ``logs`` to ``False`` short-circuits ``enabled()`` on the flags.
    (``APIRoute``'s handler still calls ``get_telemetry_data()``, one context look-up,
    whatever the settings.)
    """
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(item_id: int, q: Annotated[str, Depends(search)], item: Item) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


def docs_off() -> FastAPI:
    """The docs routes removed: ``openapi_url=None`` (with ``docs_url`` and ``redoc_url``).

    ``FastAPI()`` adds ``/openapi.json``, ``/docs``, ``/docs/oauth2-redirect`` and
    ``/redoc`` to the router before any route of ours, and the router tries routes in
    order: each request is matched against those four first.  Without them our route
    is the first one tried (and there is no schema or Swagger UI).
    """
    app = FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(item_id: int, q: Annotated[str, Depends(search)], item: Item) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


def asgi_middleware() -> FastAPI:
    """A no-op pure ASGI middleware (``NoopASGIMiddleware``): one more ``await`` in the stack."""
    app = FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(NoopASGIMiddleware)

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(item_id: int, q: Annotated[str, Depends(search)], item: Item) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


def base_http_middleware() -> FastAPI:
    """A no-op ``BaseHTTPMiddleware`` as well: ``call_next`` runs the app in a task and re-streams the response.

    Compare its delta with the pure ASGI middleware's above: both do nothing, but
    ``BaseHTTPMiddleware`` builds a ``Request``, starts an anyio task group, and passes
    the response back through a memory object stream.
    """
    app = FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(NoopASGIMiddleware)
    app.add_middleware(NoopBaseHTTPMiddleware)

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(item_id: int, q: Annotated[str, Depends(search)], item: Item) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


def sync_depends() -> FastAPI:
    """One sync ``Depends``: a plain ``def`` dependency, which FastAPI runs in the thread pool.

    ``solve_dependencies`` sees a non-coroutine function and calls it with
    ``run_in_threadpool`` -- a hop to an anyio worker thread and back, per request.
    Its value is not part of the answer (as with settings or a current user).
    """
    app = FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(NoopASGIMiddleware)
    app.add_middleware(NoopBaseHTTPMiddleware)

    @app.put("/items/{item_id}", response_model=ItemOut)
    async def item(
        item_id: int,
        q: Annotated[str, Depends(search)],
        item: Item,
        config: Annotated[dict[str, Any], Depends(settings)],
    ) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


def def_endpoint() -> FastAPI:
    """A ``def`` endpoint instead of ``async def``: the endpoint itself runs in the thread pool too.

    ``run_endpoint_function`` awaits a coroutine function directly and hands a plain
    function to ``run_in_threadpool``: a second thread hop per request.
    """
    app = FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(NoopASGIMiddleware)
    app.add_middleware(NoopBaseHTTPMiddleware)

    @app.put("/items/{item_id}", response_model=ItemOut)
    def item(
        item_id: int,
        q: Annotated[str, Depends(search)],
        item: Item,
        config: Annotated[dict[str, Any], Depends(settings)],
    ) -> Any:
        return {"item_id": item_id, "q": q, **item.model_dump()}

    return app


LADDER = Ladder(
    "fastapi",
    "asgi",
    ITEM_REQUEST,
    ITEM_ANSWER,
    (
        Step(bare_asgi, adds="asgi by hand"),
        Step(starlette_response, adds="starlette"),
        Step(fastapi_response, adds="fastapi", includes=("telemetry check", "docs routes")),
        Step(path_param, adds="path parameter"),
        Step(query_param, adds="query parameter"),
        Step(return_dict, adds="jsonable_encoder"),
        Step(response_model, adds="response model"),
        Step(body_model, adds="body model"),
        Step(async_depends, adds="async depends"),
        Step(depends_chain, adds="dependency chain"),
        Step(telemetry_off, removes="telemetry check"),
        Step(docs_off, removes="docs routes"),
        Step(asgi_middleware, adds="pure asgi middleware"),
        Step(base_http_middleware, adds="basehttpmiddleware"),
        Step(sync_depends, adds="sync depends", threads=True),
        Step(def_endpoint, adds="def endpoint"),
    ),
    title="FastAPI, feature by feature: what each abstraction costs one request, over doing it by hand.",
)
__getattr__ = serve_steps(LADDER)  # PEP 562: `layers.fastapi.anatomy:path_param_app` is the built app, for servers
