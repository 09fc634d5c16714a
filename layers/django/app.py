"""django: the contract on Django's WSGI handler -- URLconf, class-based views, the handler chain.

Theory of operation
-------------------
Django is a full-stack framework: an ORM, templates, forms, an admin, sessions and
auth, each an installable app.  This layer uses only the part every Django request
goes through, the way Django's documentation shows it:

* ``WSGIHandler`` -- what ``get_wsgi_application()`` returns -- *is* the WSGI callable
  (PEP 3333): it sends the ``request_started`` signal, builds a ``WSGIRequest`` around
  the environ and calls ``get_response()``, which runs the middleware chain built once
  at startup (``load_middleware``), resolves the path against the URLconf and calls
  the view; then it calls ``start_response`` and returns the response object itself
  as the body iterable (its ``close()`` sends ``request_finished``);
* the URLconf: ``urlpatterns``, a list of ``path()`` routes with converters, and the
  error views ``handler404``/``handler500`` looked up in the same module;
* views: a view is any callable taking the request; routes with several methods are
  Django's class-based ``View``, whose ``dispatch()`` picks ``get``/``post`` by method
  and answers 405 for the rest -- Django routes by *path*, never by method;
* ``HttpResponse``, ``JsonResponse``, ``StreamingHttpResponse``; ``request.GET`` (a
  ``QueryDict``), ``request.headers``, ``request.read()``; ``reverse()`` for Location.

The project (settings, the middleware switch) is ``layers/shared/django_project.py``,
shared with ``django_asgi``; this file is the app.  With no middleware (the default)
the work is the contract's and nothing else; ``layercake --django-middleware default``
adds the seven middleware ``startproject`` installs.

What it deliberately doesn't use: the ORM (the store is the shared SQLite store, equal
work), forms (validation is ``layers/shared/validation.py``, as in Flask), templates
(the shared index page), ``request.body`` (it buffers the whole body, and Django's
own size check answers 400, not the contract's 413).  And no WebSocket: WSGI cannot
hold a connection, so ``/ws`` is a 404 -- Django's answer on ASGI too, without Channels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import IO, Any

from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path, reverse
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from layers import get_layer
from layers.shared.django_project import configure
from layers.shared.introspect import json_safe
from layers.shared.pages import index_page
from layers.shared.store import Store, open_store
from layers.shared.validation import (
    MAX_ECHO_BODY,
    MAX_ITEM_BODY,
    ValidationFailed,
    parse_item_id,
    parse_new_item,
    parse_page,
    parse_slow_ms,
    parse_stream_n,
)

# The settings, before anything reads them (importing Django's modules does not; the
# handler's middleware chain and the first request do).  Once per process.
configure()

LAYER = "django"

# How much of the request body one read asks for: 64 KiB, as in every WSGI layer.
READ_SIZE = 64 * 1024


# --- Resources ---
# Django has no per-request resource hook of its own (no ``g``, no dependency): a
# module-level object, opened when the module is imported, is the idiom -- what a
# cache client or an HTTP session looks like in a Django project.  WSGI has no startup
# hook, so import is startup (as in Flask); an ``AppConfig.ready()`` would run at the
# same moment, from ``django.setup()``.
STORE = open_store()


def get_store() -> Store:
    return STORE


INDEX_PAGE = index_page(LAYER, get_layer(LAYER).description)


# --- Handlers ---
# Each handler takes the request and its path parameters, as every Django view does.


# JSON by hand, encoded as Starlette's JSONResponse does (compact, UTF-8, no NaN), so
# every layer sends the same bytes: JsonResponse passes these to json.dumps (its own
# default would write ", " and ": " and escape non-ASCII).
JSON_DUMPS = {"ensure_ascii": False, "allow_nan": False, "separators": (",", ":")}


def sized(response: HttpResponse) -> HttpResponse:
    """``response`` with its ``Content-Length``.  Django's HttpResponse has none of its own:
    CommonMiddleware adds it (and runserver), so without middleware every answer would be
    sent chunked (RFC 9112 §7.1) or closed at its end -- the other layers' response
    classes set it, so the helpers here do."""
    response["Content-Length"] = str(len(response.content))
    return response


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    # safe=False: JsonResponse refuses anything but a dict unless told (a pre-ES5 JSON
    # hijacking guard); every answer here is a dict anyway.
    return sized(JsonResponse(data, status=status, headers=headers, safe=False, json_dumps_params=JSON_DUMPS))


class BodyTooLarge(Exception):
    """The request body is over the route's limit: answer 413 (Django has no such exception)."""


def query(request: HttpRequest) -> dict[str, str]:
    """``request.GET`` as name -> value.  A QueryDict's ``[name]`` is the *last* value of a
    repeated name -- Starlette's choice too, which the shared validator follows."""
    return {name: request.GET[name] for name in request.GET}


def request_body(request: HttpRequest, limit: int) -> Iterator[bytes]:
    """The body as an iterator of chunks: 413 now (``BodyTooLarge``) if the declared length
    is over ``limit``, 413 later (raised by the iterator) once more than ``limit`` arrived."""
    try:
        declared: int | None = int(request.META["CONTENT_LENGTH"])
    except (KeyError, ValueError):
        declared = None
    if declared is not None and declared > limit:
        raise BodyTooLarge
    stream: IO[bytes] | HttpRequest = request
    if declared is None and request.META.get("wsgi.input_terminated"):
        # A chunked upload.  WSGIRequest reads through a LimitedStream at CONTENT_LENGTH
        # and takes a missing length as 0, so request.read() would see an empty body;
        # the server's own stream ends where the body does (the "input terminated"
        # extension, which Werkzeug honours and Django does not), so read that.
        stream = request.META["wsgi.input"]
    return _read_chunks(stream, limit)


def _read_chunks(stream: IO[bytes] | HttpRequest, limit: int) -> Iterator[bytes]:
    received = 0
    while chunk := stream.read(READ_SIZE):
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge
        yield chunk


def index(request: HttpRequest) -> HttpResponse:
    return sized(HttpResponse(INDEX_PAGE, content_type="text/html; charset=utf-8"))


def plaintext(request: HttpRequest) -> HttpResponse:
    return sized(HttpResponse("Hello, World!", content_type="text/plain; charset=utf-8"))


def json_hello(request: HttpRequest) -> HttpResponse:
    return json_response({"message": "Hello, World!"})


def get_item(request: HttpRequest, item_id: str) -> HttpResponse:
    item = get_store().get(parse_item_id(item_id))
    if item is None:
        return json_response({"detail": "Item not found"}, 404)
    return json_response(item)


def list_items(request: HttpRequest) -> HttpResponse:
    limit, offset = parse_page(query(request))
    items, total = get_store().list(limit, offset)
    return json_response({"items": items, "limit": limit, "offset": offset, "total": total})


def create_item(request: HttpRequest) -> HttpResponse:
    # Consumed inside the view, so a body that grows past 1 MiB is still a 413.
    body = b"".join(request_body(request, MAX_ITEM_BODY))
    item = get_store().create(**parse_new_item(body, request.META.get("CONTENT_TYPE")))
    # reverse() builds from the route's name and the request's script prefix.
    return json_response(item, 201, {"Location": reverse("get_item", kwargs={"item_id": item["id"]})})


def stream(request: HttpRequest) -> HttpResponse:
    n = parse_stream_n(query(request))

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            yield f"chunk {i}\n".encode("ascii")

    # No Content-Length: the WSGI server sends each chunk as the iterator yields it.
    return StreamingHttpResponse(chunks(), content_type="text/plain; charset=utf-8")


def echo(request: HttpRequest) -> HttpResponse:
    # The body iterator is the response body: each read goes straight back out.  A
    # declared length over 16 MiB is a 413 here, before reading.  A chunked upload that
    # passes 16 MiB is found only while streaming, after "200 OK" went out; the
    # iterator's BodyTooLarge then escapes into the server, which aborts the response.
    return StreamingHttpResponse(request_body(request, MAX_ECHO_BODY), content_type="application/octet-stream")


def headers(request: HttpRequest) -> HttpResponse:
    # request.headers is Django's HttpHeaders over the HTTP_* keys of META (the environ).
    return json_response({name.lower(): value for name, value in request.headers.items()})


def inspect_request(request: HttpRequest) -> HttpResponse:
    # WSGIRequest.META *is* the environ (Django writes PATH_INFO and SCRIPT_NAME back).
    return json_response({"layer": LAYER, "interface": "wsgi", "request": json_safe(request.environ)})


def slow(request: HttpRequest) -> HttpResponse:
    ms = parse_slow_ms(query(request))
    time.sleep(ms / 1000)  # blocks this worker thread, uses no CPU
    return json_response({"slept_ms": ms})


def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("GET /error raises on purpose; this text must never reach the client")


def health(request: HttpRequest) -> HttpResponse:
    # The store was opened at import, before the first request: startup is done.
    return json_response({"status": "ok", "startup_complete": True, "items": get_store().count()})


# --- Errors ---
# Django turns an exception into a response in convert_exception_to_response, around
# every middleware and the view: Http404 (and a path no route matches) goes to the
# URLconf's handler404, anything unexpected is logged on "django.request" with its
# traceback and goes to handler500.  Method dispatch and the contract's own errors
# (422, 413) belong to the view, so they are the class-based View's business: Route.


def too_large() -> HttpResponse:
    # Python's phrase for 413 (RFC 9110's "Content Too Large" from Python 3.13 on), the
    # reason phrase Django's own HttpResponse(status=413) carries.
    return json_response({"detail": HTTPStatus(413).phrase}, 413)


class Route(View):
    """Django's class-based ``View`` as a method table: ``route(get=list_items, post=create_item)``.

    ``View.dispatch`` calls the method named after the request's method (``HEAD`` runs
    ``get``) and ``http_method_not_allowed`` for any other; these two overrides give
    the contract's bodies.  The handlers stay plain functions (``staticmethod``), so they
    read like every other layer's.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().dispatch(request, *args, **kwargs)
        except ValidationFailed as exc:
            return json_response(exc.detail(), 422)
        except BodyTooLarge:
            return too_large()

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Django's own 405 is an empty HttpResponseNotAllowed with the same Allow header:
        # every method this view has, HEAD and OPTIONS included (RFC 9110 §15.5.6).
        return json_response({"detail": "Method Not Allowed"}, 405, {"Allow": ", ".join(self._allowed_methods())})


def route(**handlers: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The view for one path: a ``Route`` subclass with a handler per method, as ``as_view()``."""
    name = "_".join(h.__name__ for h in handlers.values())
    route: type[Route] = type(f"Route_{name}", (Route,), {m: staticmethod(h) for m, h in handlers.items()})
    view = route.as_view()
    # No route of an API without cookie sessions needs the CSRF check, which with the
    # default middleware on would answer 403 to every POST (no token) and to a DELETE
    # before its 405.  csrf_exempt on every view, as Django REST framework's
    # APIView.as_view() does; without middleware it changes nothing.
    return csrf_exempt(view)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # A SuspiciousOperation: a Host not in ALLOWED_HOSTS (read by CommonMiddleware).
    return json_response({"detail": "Bad Request"}, 400)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_response({"detail": "Not Found"}, 404)


def handler500(request: HttpRequest) -> HttpResponse:
    # Django has already logged the exception (django.request, with the traceback) when
    # it calls this; the client gets the generic body, never the exception's text.
    return json_response({"detail": "Internal Server Error"}, 500)


# --- Application ---
# The URLconf: Django matches the path only ("items" has one view for GET and POST),
# without the leading slash.  "<item_id>" is the default "str" converter (one
# non-empty segment) on purpose: "<int:item_id>" would answer 404 for "/items/abc";
# the contract says 422.  Print the resolved table with
#   python -c "from layers.django.app import urlpatterns; print(*urlpatterns, sep='\n')"
urlpatterns = [
    path("", route(get=index), name="index"),
    path("plaintext", route(get=plaintext), name="plaintext"),
    path("json", route(get=json_hello), name="json_hello"),
    path("items/<item_id>", route(get=get_item), name="get_item"),
    path("items", route(get=list_items, post=create_item), name="items"),
    path("stream", route(get=stream), name="stream"),
    path("echo", route(post=echo), name="echo"),
    path("headers", route(get=headers), name="headers"),
    path("inspect", route(get=inspect_request), name="inspect_request"),
    path("slow", route(get=slow), name="slow"),
    path("error", route(get=error), name="error"),
    path("health", route(get=health), name="health"),
]


class LayerRequest(WSGIRequest):
    # The URLconf for this layer's requests.  Django resolves against ROOT_URLCONF unless
    # a request carries its own ``urlconf`` (usually set by a middleware); settings are
    # per process and this process may also serve django_asgi, so each layer names its
    # own here -- a class attribute, no per-request work.
    urlconf = __name__


class LayerHandler(WSGIHandler):
    request_class = LayerRequest


# The WSGI callable: get_wsgi_application() is django.setup() (done in configure())
# followed by WSGIHandler(), whose __init__ builds the middleware chain once.
#
# There is no "/ws": a WebSocket handler needs the connection after the response, and
# a WSGI application only ever returns a body.  So "/ws" is a 404 here (CONTRACT.md,
# item 14).
app = LayerHandler()
