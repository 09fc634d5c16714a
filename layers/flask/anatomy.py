"""Flask's anatomy: from bare WSGI through Werkzeug to Flask with validation, one feature per step.

Theory of operation
-------------------
Each function below builds one small, complete WSGI application (PEP 3333), and each
adds exactly one thing over the function before it -- its docstring's first line says
what.  They all answer the same request the same way (``layercake.anatomy.ITEM_REQUEST``,
the one the FastAPI anatomy answers too)::

    PUT /items/42?q=cake   {"name":"cake","price":9.5}
    -> 200 application/json  {"item_id":42,"name":"cake","price":9.5,"q":"cake"}

What a step does not yet get from the framework it does by hand; the step that brings
the feature replaces that hand work, so its delta in ``layercake anatomy flask`` is what
the feature costs over doing it yourself.

The ladder: by hand -> Werkzeug's ``Request``/``Response`` -> Werkzeug's ``routing.Map``
-> a Flask route (the app and request contexts, ``full_dispatch_request``) ->
``jsonify`` -> ``before_request``/``teardown_request`` hooks -> ``g`` -> an error handler
-> pydantic validation of the body, the way Flask users add what FastAPI has built in.

What it deliberately doesn't do: anything but this one request; the contract's full app
is ``layers/flask/app.py``.  No Flask extension (flask-pydantic and the like): the last
step is the two lines such an extension runs for you.

Specs: PEP 3333.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from flask import Flask, abort, g, jsonify
from flask import request as flask_request
from pydantic import BaseModel, Field, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from layercake.anatomy import ITEM_ANSWER, ITEM_REQUEST, Ladder, Step, serve_steps
from layers.werkzeug.anatomy import answer_json, dumps, item_route, read_body

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Item(BaseModel):
    """The request body, as FastAPI's anatomy declares it."""

    name: str = Field(min_length=1, max_length=100)
    price: float = Field(gt=0)


# --- the steps ---


def bare_wsgi() -> WSGIApp:
    """Bare WSGI: the request routed, parsed and answered by hand (the baseline)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        item_id = item_route(environ["PATH_INFO"], environ["REQUEST_METHOD"])
        if item_id is None:
            return answer_json(start_response, b'{"detail":"Not Found"}', "404 Not Found")
        q = parse_qs(environ["QUERY_STRING"])["q"][0]
        item = json.loads(read_body(environ))
        answer = {"item_id": item_id, "name": item["name"], "price": item["price"], "q": q}
        return answer_json(start_response, dumps(answer))

    return app


def werkzeug_wrappers() -> WSGIApp:
    """Werkzeug's ``Request`` and ``Response``: ``request.args``, ``request.get_json()``, a ``Response`` app.

    Routing is still by hand; the environ is wrapped, the query and the JSON body are
    read through the request, and the ``Response`` makes status line and headers.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request(environ)
        item_id = item_route(req.path, req.method)
        if item_id is None:
            return Response(b'{"detail":"Not Found"}', 404, mimetype="application/json")(environ, start_response)
        item = req.get_json()
        answer = {"item_id": item_id, "name": item["name"], "price": item["price"], "q": req.args["q"]}
        return Response(dumps(answer), mimetype="application/json")(environ, start_response)

    return app


def werkzeug_routing() -> WSGIApp:
    """Werkzeug's ``routing.Map``: ``Rule("/items/<int:item_id>")`` matched by a ``MapAdapter``."""
    url_map = Map([Rule("/items/<int:item_id>", endpoint="item", methods=["PUT"])])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request(environ)
        try:
            _endpoint, args = url_map.bind_to_environ(environ).match()
        except HTTPException as exc:
            return exc(environ, start_response)
        item = req.get_json()
        answer = {"item_id": args["item_id"], "name": item["name"], "price": item["price"], "q": req.args["q"]}
        return Response(dumps(answer), mimetype="application/json")(environ, start_response)

    return app


def flask_route() -> Flask:
    """A Flask route: ``@app.put`` on ``Flask``, the view returning a ``Response`` built by hand.

    ``Flask.wsgi_app`` pushes an app context and a request context (``flask.request``
    becomes this request, through context variables), then ``full_dispatch_request``:
    URL matching (the same ``Map``), the view, ``make_response``, and the contexts popped.
    """
    app = Flask(__name__)

    @app.put("/items/<int:item_id>")
    def item(item_id: int) -> Response:
        item = flask_request.get_json()
        answer = {"item_id": item_id, "name": item["name"], "price": item["price"], "q": flask_request.args["q"]}
        return Response(dumps(answer), mimetype="application/json")

    return app


def flask_jsonify() -> Flask:
    """``jsonify``: Flask's JSON provider encodes the answer (sorted keys, a trailing newline)."""
    app = Flask(__name__)

    @app.put("/items/<int:item_id>")
    def item(item_id: int) -> Response:
        item = flask_request.get_json()
        return jsonify(item_id=item_id, name=item["name"], price=item["price"], q=flask_request.args["q"])

    return app


def request_hooks() -> Flask:
    """``before_request`` and ``teardown_request`` hooks (no-ops): Flask calls each around every request."""
    app = Flask(__name__)

    @app.before_request
    def before() -> None:
        return None

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        return None

    @app.put("/items/<int:item_id>")
    def item(item_id: int) -> Response:
        item = flask_request.get_json()
        return jsonify(item_id=item_id, name=item["name"], price=item["price"], q=flask_request.args["q"])

    return app


def flask_g() -> Flask:
    """``g``: the ``before_request`` hook puts ``q`` on ``g`` (the app context's namespace) and the view reads it there."""
    app = Flask(__name__)

    @app.before_request
    def before() -> None:
        g.q = flask_request.args["q"]

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        return None

    @app.put("/items/<int:item_id>")
    def item(item_id: int) -> Response:
        item = flask_request.get_json()
        return jsonify(item_id=item_id, name=item["name"], price=item["price"], q=g.q)

    return app


def error_handler() -> Flask:
    """An error handler: ``@app.errorhandler(HTTPException)`` answers errors in JSON (not on this request's path).

    Flask looks handlers up only when an exception is raised, so on a good request this
    registration should cost nothing -- the step checks that claim.
    """
    app = Flask(__name__)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(detail=exc.description), exc.code or 500

    @app.before_request
    def before() -> None:
        g.q = flask_request.args["q"]

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        return None

    @app.put("/items/<int:item_id>")
    def item(item_id: int) -> Response:
        item = flask_request.get_json()
        return jsonify(item_id=item_id, name=item["name"], price=item["price"], q=g.q)

    return app


def pydantic_body() -> Flask:
    """Flask + pydantic: the body validated into ``Item`` (``model_validate_json``), a 422 when it is wrong.

    What FastAPI does from the type annotation, written out: the raw body goes to
    pydantic-core in one call (parsing and validating together), and a
    ``ValidationError`` becomes an HTTP error for the handler above.
    """
    app = Flask(__name__)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(detail=exc.description), exc.code or 500

    @app.before_request
    def before() -> None:
        g.q = flask_request.args["q"]

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        return None

    @app.put("/items/<int:item_id>")
    def item(item_id: int) -> Response:
        try:
            item = Item.model_validate_json(flask_request.get_data())
        except ValidationError as exc:
            abort(422, exc.errors(include_url=False))
        return jsonify(item_id=item_id, name=item.name, price=item.price, q=g.q)

    return app


LADDER = Ladder(
    "flask",
    "wsgi",
    ITEM_REQUEST,
    ITEM_ANSWER,
    (
        Step(bare_wsgi, adds="wsgi by hand"),
        Step(werkzeug_wrappers, adds="werkzeug request and response"),
        Step(werkzeug_routing, adds="routing map"),
        Step(flask_route, adds="flask"),
        Step(flask_jsonify, adds="jsonify"),
        Step(request_hooks, adds="request hooks"),
        Step(flask_g, adds="g"),
        Step(error_handler, adds="error handler"),
        Step(pydantic_body, adds="pydantic validation"),
    ),
    title="Flask, feature by feature: from a hand-written WSGI callable through Werkzeug to Flask with pydantic.",
)
__getattr__ = serve_steps(LADDER)  # PEP 562: `layers.flask.anatomy:flask_route_app` is the built app, for servers
