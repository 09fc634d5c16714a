"""django_asgi: the contract on Django's ASGI handler -- async views, and sync_to_async around the rest.

Theory of operation
-------------------
The same project (``layers/shared/django_project.py``), the same URLconf and the same
views as the ``django`` layer, served by ``ASGIHandler`` -- what
``get_asgi_application()`` returns -- with every view ``async def``.  A request flows:

``ASGIHandler.__call__`` (only ``http`` scopes; it raises for any other) enters a
``ThreadSensitiveContext`` -> ``read_body()`` awaits ``receive()`` until the *whole*
body has arrived, into a ``SpooledTemporaryFile`` -> ``request_started.asend()`` ->
an ``ASGIRequest`` around the scope and that file -> ``get_response_async()``: the
middleware chain, built for async at startup (``load_middleware(is_async=True)``),
resolves the path and awaits the view -> ``send_response()`` sends
``http.response.start`` and the body (a streaming response's async iterator, chunk
by chunk) -> ``response.close()`` through ``sync_to_async``, which sends
``request_finished``.  Beside the view, a task awaits ``receive()`` for
``http.disconnect``, to cancel the view when the client goes.

Django is a sync framework with an async path: whatever has no async version runs in a
thread through asgiref's ``sync_to_async`` -- the signals' sync receivers (Django's own
``close_old_connections`` and ``reset_queries`` are connected to request_started and
request_finished), ``response.close()``, the exception-to-response conversion of a
404 or a 500, and every middleware that is not async-capable.  Each such call is a
*thread hop*: the event loop hands the function to another thread and waits for it.
``layercake trace django_asgi GET /json`` shows each hop, ``layercake bench
--in-process`` counts them; the ``django`` layer makes none.

Where Django's ASGI handler cannot do what the contract asks, this layer shows the gap
(``layers/__init__.py`` registers each):

* **no lifespan**: ``ASGIHandler`` raises for the ``lifespan`` scope, which tells the
  server "not supported"; the store is opened on the first request and ``/health``
  says ``startup_complete: false`` -- CONTRACT.md's rule for ASGI without lifespan;
* **no WebSocket**: that is Django Channels (its ``ProtocolTypeRouter`` dispatches on
  the scope type the way ``app`` below does).  ``/ws`` is refused: 404 when the server
  offers the ASGI "WebSocket Denial Response" extension, else a close before accept,
  which the server turns into a 403 (ASGI WebSocket spec);
* **the whole body first**: the view starts only after the last byte arrived, so
  ``/echo`` cannot stream the upload back as it comes, and a body over a limit is
  refused only once it has all been received -- a declared 16 MiB body the client
  never sends is waited for.

What it deliberately doesn't use: the same list as the ``django`` layer -- no ORM,
forms, templates, ``request.body``.

Specs: ASGI "HTTP" (``receive``/``send``), "WebSocket" and "Lifespan" (for what Django
refuses), RFC 9110 for status codes and ``Allow``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from django.core.handlers.asgi import ASGIHandler, ASGIRequest
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

LAYER = "django_asgi"

# How much of the request body one read asks for: 64 KiB, as in the WSGI layers.
READ_SIZE = 64 * 1024


# --- Resources ---
# As in the django layer, a module-level object -- opened on the first request, not at
# import: ASGI's startup hook is lifespan, which Django's handler refuses, so
# CONTRACT.md's rule for "ASGI without lifespan" applies and /health says so.  One
# event loop runs every request of the process, so the first-use check cannot race.
STORE: Store | None = None


def get_store() -> Store:
    global STORE
    if STORE is None:
        STORE = open_store()
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


def request_body(request: HttpRequest, limit: int) -> AsyncIterator[bytes]:
    """The body as an async iterator of chunks: 413 now (``BodyTooLarge``) if the declared
    length is over ``limit``, 413 later (raised by the iterator) once more than ``limit`` was read.

    By now ASGIHandler has read the whole body into a file (``read_body``); these reads
    come from that file, in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, on disk beyond.
    """
    try:
        declared: int | None = int(request.META["CONTENT_LENGTH"])
    except (KeyError, ValueError):
        declared = None
    if declared is not None and declared > limit:
        raise BodyTooLarge
    return _read_chunks(request, limit)


async def _read_chunks(request: HttpRequest, limit: int) -> AsyncIterator[bytes]:
    received = 0
    while chunk := request.read(READ_SIZE):
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge
        yield chunk


async def index(request: HttpRequest) -> HttpResponse:
    return sized(HttpResponse(INDEX_PAGE, content_type="text/html; charset=utf-8"))


async def plaintext(request: HttpRequest) -> HttpResponse:
    return sized(HttpResponse("Hello, World!", content_type="text/plain; charset=utf-8"))


async def json_hello(request: HttpRequest) -> HttpResponse:
    return json_response({"message": "Hello, World!"})


async def get_item(request: HttpRequest, item_id: str) -> HttpResponse:
    item = get_store().get(parse_item_id(item_id))
    if item is None:
        return json_response({"detail": "Item not found"}, 404)
    return json_response(item)


async def list_items(request: HttpRequest) -> HttpResponse:
    limit, offset = parse_page(query(request))
    items, total = get_store().list(limit, offset)
    return json_response({"items": items, "limit": limit, "offset": offset, "total": total})


async def create_item(request: HttpRequest) -> HttpResponse:
    # Consumed inside the view, so a body that grows past 1 MiB is still a 413.
    body = b"".join([chunk async for chunk in request_body(request, MAX_ITEM_BODY)])
    item = get_store().create(**parse_new_item(body, request.META.get("CONTENT_TYPE")))
    # reverse() builds from the route's name and the request's script prefix.
    return json_response(item, 201, {"Location": reverse("get_item", kwargs={"item_id": item["id"]})})


async def stream(request: HttpRequest) -> HttpResponse:
    n = parse_stream_n(query(request))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"chunk {i}\n".encode("ascii")

    # An async iterator: ASGIHandler sends one http.response.body per chunk.  A plain
    # generator would work too, but Django would first run it to the end in a thread
    # (sync_to_async(list), with a warning) -- nothing would stream.
    return StreamingHttpResponse(chunks(), content_type="text/plain; charset=utf-8")


async def echo(request: HttpRequest) -> HttpResponse:
    # The body iterator is the response body -- but the whole upload has already been
    # received (the gap: nothing goes back while it arrives).  A declared length over
    # 16 MiB is a 413 here, after ASGIHandler waited for all of it.  A chunked upload that
    # passes 16 MiB is found while streaming it back, after "200 OK" went out; the
    # iterator's BodyTooLarge then escapes into the server, which aborts the response.
    return StreamingHttpResponse(request_body(request, MAX_ECHO_BODY), content_type="application/octet-stream")


async def headers(request: HttpRequest) -> HttpResponse:
    # request.headers is Django's HttpHeaders over the HTTP_* keys of META, which
    # ASGIRequest builds from the scope's headers (repeated ones joined with ",").
    return json_response({name.lower(): value for name, value in request.headers.items()})


async def inspect_request(request: HttpRequest) -> HttpResponse:
    # ASGIRequest keeps the scope as it came; META is a WSGI-style dict built from it.
    return json_response({"layer": LAYER, "interface": "asgi", "request": json_safe(request.scope)})


async def slow(request: HttpRequest) -> HttpResponse:
    ms = parse_slow_ms(query(request))
    await asyncio.sleep(ms / 1000)  # the event loop serves others meanwhile
    return json_response({"slept_ms": ms})


async def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("GET /error raises on purpose; this text must never reach the client")


async def health(request: HttpRequest) -> HttpResponse:
    # No lifespan ever runs (Django refuses it): the store was opened by a request.
    return json_response({"status": "ok", "startup_complete": False, "items": get_store().count()})


# --- Errors ---
# Django turns an exception into a response in convert_exception_to_response, around
# every middleware and the view: Http404 (and a path no route matches) goes to the
# URLconf's handler404, anything unexpected is logged on "django.request" with its
# traceback and goes to handler500.  On the async path that conversion is a sync
# function run through sync_to_async(thread_sensitive=False): every 404 and 500 is one
# more thread hop.  Method dispatch and the contract's own errors (422, 413) belong to
# the view, so they are the class-based View's business: Route, awaited on the loop.


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

    async def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # With async handlers View.dispatch returns their coroutine: awaited here, so the
        # errors they raise are caught here, on the event loop -- no thread hop.
        try:
            return await super().dispatch(request, *args, **kwargs)
        except ValidationFailed as exc:
            return json_response(exc.detail(), 422)
        except BodyTooLarge:
            return too_large()

    async def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Django's own 405 is an empty HttpResponseNotAllowed with the same Allow header:
        # every method this view has, HEAD and OPTIONS included (RFC 9110 §15.5.6).
        return json_response({"detail": "Method Not Allowed"}, 405, {"Allow": ", ".join(self._allowed_methods())})


def route(**handlers: Callable[..., Awaitable[HttpResponse]]) -> Callable[..., Any]:
    """The view for one path: a ``Route`` subclass with a handler per method, as ``as_view()``.

    Every handler is ``async def``, so ``View.view_is_async`` is true and ``as_view()``
    marks the view a coroutine function: Django awaits it on the event loop.  A sync
    view here would be run through ``sync_to_async``, one more hop per request.
    """
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
    # it calls this -- in a thread: the async handler converts an exception to a response
    # through sync_to_async.  The client gets the generic body, never the exception's text.
    return json_response({"detail": "Internal Server Error"}, 500)


# --- Application ---
# The URLconf: Django matches the path only ("items" has one view for GET and POST),
# without the leading slash.  "<item_id>" is the default "str" converter (one
# non-empty segment) on purpose: "<int:item_id>" would answer 404 for "/items/abc";
# the contract says 422.  Print the resolved table with
#   python -c "from layers.django_asgi.app import urlpatterns; print(*urlpatterns, sep='\n')"
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


class LayerRequest(ASGIRequest):
    # The URLconf for this layer's requests (see the django layer: settings are per
    # process, and this process may serve both Django layers).
    urlconf = __name__


class LayerHandler(ASGIHandler):
    request_class = LayerRequest


# get_asgi_application() is django.setup() (done in configure()) followed by
# ASGIHandler(), whose __init__ builds the middleware chain once, for async.
django_app = LayerHandler()

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

NOT_FOUND = b'{"detail":"Not Found"}'


async def refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """No WebSocket without Channels: refuse the handshake, as a 404 where the server can send one."""
    message = await receive()  # websocket.connect (ASGI WebSocket spec: the first message)
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        # The "WebSocket Denial Response" extension: a real HTTP response to the handshake.
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(NOT_FOUND)).encode())]
        await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": NOT_FOUND})
    else:
        await send({"type": "websocket.close", "code": 1000})  # before accept: the server answers 403


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI application: HTTP goes to Django; a WebSocket is refused; lifespan goes to
    Django too, which raises ("Django can only handle ASGI/HTTP connections, not
    lifespan") -- the ASGI lifespan spec's way of saying "not supported".

    A plain ``django_app`` would do the same for HTTP and lifespan; for a WebSocket it
    would raise too, and the server would answer 500.  This dispatch on the scope type
    is the place where Channels puts its ``ProtocolTypeRouter``.
    """
    if scope["type"] == "websocket":
        await refuse_websocket(scope, receive, send)
    else:
        await django_app(scope, receive, send)
