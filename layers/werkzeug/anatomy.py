"""Werkzeug's anatomy: from bare WSGI to Werkzeug's toolkit, one piece per step.

Theory of operation
-------------------
Each function below builds one small, complete WSGI application (PEP 3333), and each
adds exactly one Werkzeug piece over the function before it -- its docstring's first
line says which.  They all answer the same HTML-form request the same way
(``layercake.anatomy.FORM_REQUEST``)::

    PUT /items/42?q=cake   name=cake&price=9.5   (application/x-www-form-urlencoded)
    -> 200 application/json  {"item_id":42,"name":"cake","price":9.5,"q":"cake"}

A form, not JSON, because Werkzeug's own parser is for forms (``request.form``, a
``MultiDict``); JSON would be ``json.loads`` in every step alike.  What a step does not
yet get from Werkzeug it does by hand, like ``bare_wsgi``; the step that brings the
piece replaces that hand work, so its delta in ``layercake anatomy werkzeug`` is what
the piece costs over doing it yourself.

The ladder: by hand -> ``Request`` (the environ wrapped; the query as ``request.args``)
-> ``Response`` (a WSGI app that makes the status line, headers and length) ->
``routing.Map`` (rules, the ``int`` converter, 404/405) -> the form parser
(``request.form``).

What it deliberately doesn't do: anything but this one request; the contract's full app
is ``layers/werkzeug/app.py``.

Specs: PEP 3333 (``environ``, ``start_response``, ``wsgi.input`` limited to
``CONTENT_LENGTH``), the HTML form encoding (``application/x-www-form-urlencoded``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from layercake.anatomy import FORM_REQUEST, ITEM_ANSWER, Ladder, Step, serve_steps

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def read_body(environ: dict[str, Any]) -> bytes:
    """PEP 3333: read ``wsgi.input`` up to ``CONTENT_LENGTH`` (never past it), by hand."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length > 0 else b""


def answer_json(start_response: Callable[..., Any], payload: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def item_route(path: str, method: str) -> int | None:
    """Routing by hand: ``PUT /items/<int>`` -> the id, else None."""
    parts = path.split("/")
    if method == "PUT" and len(parts) == 3 and parts[1] == "items" and parts[2].isdigit():
        return int(parts[2])
    return None


# --- the steps ---


def bare_wsgi_form() -> WSGIApp:
    """Bare WSGI: the form request routed, parsed and answered by hand (the baseline)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        item_id = item_route(environ["PATH_INFO"], environ["REQUEST_METHOD"])
        if item_id is None:
            return answer_json(start_response, b'{"detail":"Not Found"}', "404 Not Found")
        q = parse_qs(environ["QUERY_STRING"])["q"][0]
        form = parse_qs(read_body(environ).decode("latin-1"))
        answer = {"item_id": item_id, "name": form["name"][0], "price": float(form["price"][0]), "q": q}
        return answer_json(start_response, dumps(answer))

    return app


def request() -> WSGIApp:
    """Werkzeug's ``Request``: the environ wrapped; the query read as ``request.args``.

    ``request.args`` parses ``QUERY_STRING`` into an ``ImmutableMultiDict`` on first use
    (cached on the request); ``request.get_data()`` reads the body through
    ``request.stream``, ``wsgi.input`` already limited to ``CONTENT_LENGTH``.  The body
    is still parsed by hand.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request(environ)
        item_id = item_route(req.path, req.method)
        if item_id is None:
            return answer_json(start_response, b'{"detail":"Not Found"}', "404 Not Found")
        form = parse_qs(req.get_data().decode("latin-1"))
        answer = {"item_id": item_id, "name": form["name"][0], "price": float(form["price"][0]), "q": req.args["q"]}
        return answer_json(start_response, dumps(answer))

    return app


def response() -> WSGIApp:
    """Werkzeug's ``Response``: itself a WSGI app, it makes the status line, headers and ``Content-Length``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request(environ)
        item_id = item_route(req.path, req.method)
        if item_id is None:
            return Response(b'{"detail":"Not Found"}', 404, mimetype="application/json")(environ, start_response)
        form = parse_qs(req.get_data().decode("latin-1"))
        answer = {"item_id": item_id, "name": form["name"][0], "price": float(form["price"][0]), "q": req.args["q"]}
        return Response(dumps(answer), mimetype="application/json")(environ, start_response)

    return app


def routing() -> WSGIApp:
    """Werkzeug's ``routing.Map``: a ``Rule`` with the ``int`` converter replaces the hand-written match.

    ``url_map.bind_to_environ(environ)`` makes a ``MapAdapter`` for the request; its
    ``match()`` tries the rules and returns the endpoint and the converted arguments, or
    raises ``NotFound``/``MethodNotAllowed`` -- HTTP exceptions that are WSGI apps too.
    """
    url_map = Map([Rule("/items/<int:item_id>", endpoint="item", methods=["PUT"])])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request(environ)
        try:
            _endpoint, args = url_map.bind_to_environ(environ).match()
        except HTTPException as exc:
            return exc(environ, start_response)
        form = parse_qs(req.get_data().decode("latin-1"))
        answer = {"item_id": args["item_id"], "name": form["name"][0], "price": float(form["price"][0])}
        answer["q"] = req.args["q"]
        return Response(dumps(answer), mimetype="application/json")(environ, start_response)

    return app


def form_parsing() -> WSGIApp:
    """The form parser: ``request.form``, a ``MultiDict`` parsed by Werkzeug's ``FormDataParser``.

    On first access ``request.form`` checks the ``Content-Type``, reads the stream and
    decodes ``application/x-www-form-urlencoded`` (or streams ``multipart/form-data``)
    into an ``ImmutableMultiDict`` -- ``form["name"]`` is the first value.
    """
    url_map = Map([Rule("/items/<int:item_id>", endpoint="item", methods=["PUT"])])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request(environ)
        try:
            _endpoint, args = url_map.bind_to_environ(environ).match()
        except HTTPException as exc:
            return exc(environ, start_response)
        answer = {"item_id": args["item_id"], "name": req.form["name"], "price": float(req.form["price"])}
        answer["q"] = req.args["q"]
        return Response(dumps(answer), mimetype="application/json")(environ, start_response)

    return app


LADDER = Ladder(
    "werkzeug",
    "wsgi",
    FORM_REQUEST,
    ITEM_ANSWER,
    (
        Step(bare_wsgi_form, adds="wsgi by hand"),
        Step(request, adds="request"),
        Step(response, adds="response"),
        Step(routing, adds="routing map"),
        Step(form_parsing, adds="form parser"),
    ),
    title="Werkzeug, piece by piece: from a hand-written WSGI callable to Request, Response, Map and forms.",
)
__getattr__ = serve_steps(LADDER)  # PEP 562: `layers.werkzeug.anatomy:routing_app` is the built app, for servers
