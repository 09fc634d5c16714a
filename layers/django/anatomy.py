"""Django's anatomy: from bare WSGI to ``WSGIHandler``, the URL resolver, a view, and each default middleware.

Theory of operation
-------------------
Each function below builds one small, complete WSGI application (PEP 3333), and each adds exactly one thing over
the function before it -- its docstring's first line says what.  They all answer the request the Flask and FastAPI
anatomies answer (``layercake.anatomy.ITEM_REQUEST``)::

    PUT /items/42?q=cake   {"name":"cake","price":9.5}
    -> 200 application/json  {"item_id":42,"name":"cake","price":9.5,"q":"cake"}

The ladder: by hand (the Flask ladder's baseline) -> Django's ``WSGIHandler`` with one catch-all route, the view
doing the rest by hand -> the URL resolver (``path()`` with the ``int`` converter) -> the view's tools
(``request.GET``, ``JsonResponse``) -> then the seven middleware ``django-admin startproject`` writes, one per step,
in its order: ``SecurityMiddleware``, ``SessionMiddleware``, ``CommonMiddleware``, ``CsrfViewMiddleware``,
``AuthenticationMiddleware``, ``MessageMiddleware``, ``XFrameOptionsMiddleware``.  Three do their work on every
response (Security's and XFrameOptions' headers, Common's Host check and ``Content-Length``); the session, the user
and the messages are never read here, so those steps cost what such a middleware costs a request that does not use
it -- which is what every request pays once it is in ``settings.MIDDLEWARE``.

How a step gets its own URLconf and middleware in one process: settings are per process
(``layers/shared/django_project.py`` configures them once), so a step's handler carries its own.  The URLconf goes
on the request class (``request.urlconf``, which Django resolves against before ``ROOT_URLCONF``, as the layer does);
the middleware chain is built when ``WSGIHandler()`` is made (``BaseHandler.load_middleware`` reads
``settings.MIDDLEWARE`` once), so :func:`handler` sets the list only for that moment.  The middleware's four
contrib apps are installed from the first step on (``configure(apps=True)``), so every step, the handler step
included, also pays Django's per-request database-connection check for them (``close_old_connections``, 11 Python
calls): the middleware steps then measure the middleware alone.

What it deliberately doesn't do: anything but this one request (the contract's full app is ``layers/django/app.py``),
Django's ASGI handler (its thread hops are counted by ``layercake bench --in-process`` and ``trace`` on
``django_asgi``), or the ORM (the layers use the shared SQLite store).

Specs: PEP 3333.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path, re_path
from django.views.decorators.csrf import csrf_exempt

from layercake.anatomy import ITEM_ANSWER, ITEM_REQUEST, Ladder, Step, serve_steps
from layers.flask.anatomy import bare_wsgi, item_route
from layers.shared.django_project import MIDDLEWARE, configure

configure(apps=True)  # the middleware steps need their apps installed


class URLconf:
    """A URLconf as an object, not a module: Django reads its ``urlpatterns`` the same way (and caches a resolver
    per URLconf, so it must be hashable -- a plain instance is)."""

    def __init__(self, urlpatterns: Sequence[URLPattern]) -> None:
        self.urlpatterns = list(urlpatterns)


def handler(urlpatterns: Sequence[URLPattern], middleware: Sequence[str] = ()) -> WSGIHandler:
    """A ``WSGIHandler`` resolving against ``urlpatterns`` through ``middleware`` (see the module docstring)."""
    request_class = type("StepRequest", (WSGIRequest,), {"urlconf": URLconf(urlpatterns)})
    handler_class = type("StepHandler", (WSGIHandler,), {"request_class": request_class})
    saved = settings.MIDDLEWARE
    settings.MIDDLEWARE = list(middleware)
    try:
        return handler_class()
    finally:
        settings.MIDDLEWARE = saved


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@csrf_exempt  # an API view (as in the layer, and as Django REST framework does): no CSRF token on a PUT
def item_view(request: HttpRequest, item_id: int) -> HttpResponse:
    """The view of the steps from ``view_tools`` on: Django's tools for the query and the answer."""
    if request.method != "PUT":  # as in url_resolver: only the tools change
        return JsonResponse({"detail": "Method Not Allowed"}, status=405)
    item = json.loads(request.body)
    answer = {"item_id": item_id, "name": item["name"], "price": item["price"], "q": request.GET.get("q", "")}
    return JsonResponse(answer)


ROUTES = [path("items/<int:item_id>", item_view)]


def with_middleware(count: int) -> WSGIHandler:
    """The view's handler with the first ``count`` of ``startproject``'s middleware, in its order."""
    return handler(ROUTES, MIDDLEWARE["default"][:count])


# --- the steps ---


def wsgi_handler() -> WSGIHandler:
    """Django's ``WSGIHandler``: an ``HttpRequest``, the handler's cycle, one catch-all route; the rest by hand.

    ``WSGIHandler.__call__`` sends ``request_started``, wraps the environ in a ``WSGIRequest``
    and runs ``get_response``: set the URLconf, resolve (one ``re_path`` that matches
    everything), call the view, then ``request_finished`` when the server closes the
    response.  The view routes, reads the query and serializes by hand, as bare WSGI does.
    """

    @csrf_exempt
    def anything(request: HttpRequest) -> HttpResponse:
        item_id = item_route(request.path_info, request.method or "")
        if item_id is None:
            return HttpResponse(b'{"detail":"Not Found"}', status=404, content_type="application/json")
        item = json.loads(request.body)
        q = request.META["QUERY_STRING"].partition("q=")[2].partition("&")[0]
        answer = {"item_id": item_id, "name": item["name"], "price": item["price"], "q": q}
        return HttpResponse(dumps(answer), content_type="application/json")

    return handler([re_path(r"", anything)])


def url_resolver() -> WSGIHandler:
    """The URL resolver: ``path("items/<int:item_id>")`` and its ``int`` converter replace the hand-written route.

    ``URLResolver.resolve`` tries each pattern's regex (compiled once from the ``path()``
    syntax), converts the captured ``item_id`` with ``IntConverter.to_python`` and returns
    a ``ResolverMatch`` naming the view and its arguments.
    """

    @csrf_exempt
    def item(request: HttpRequest, item_id: int) -> HttpResponse:
        if request.method != "PUT":
            return HttpResponse(b'{"detail":"Method Not Allowed"}', status=405, content_type="application/json")
        item = json.loads(request.body)
        q = request.META["QUERY_STRING"].partition("q=")[2].partition("&")[0]
        answer = {"item_id": item_id, "name": item["name"], "price": item["price"], "q": q}
        return HttpResponse(dumps(answer), content_type="application/json")

    return handler([path("items/<int:item_id>", item)])


def view_tools() -> WSGIHandler:
    """The view's tools: ``request.GET`` (a ``QueryDict``) and ``JsonResponse`` (``DjangoJSONEncoder``).

    ``request.GET`` parses ``QUERY_STRING`` on first use into a ``QueryDict`` (a
    ``MultiValueDict``); ``JsonResponse`` serializes with ``DjangoJSONEncoder`` (dates,
    decimals, UUIDs) and sets ``Content-Type: application/json``.
    """
    return handler(ROUTES)


def security() -> WSGIHandler:
    """``SecurityMiddleware``: the security headers (``X-Content-Type-Options``, ``Referrer-Policy``, COOP).

    ``process_request`` checks whether to redirect to HTTPS (``SECURE_SSL_REDIRECT``, off);
    ``process_response`` sets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
    same-origin`` and ``Cross-Origin-Opener-Policy: same-origin`` by default.
    """
    return with_middleware(1)  # Security


def sessions() -> WSGIHandler:
    """``SessionMiddleware``: ``request.session``, a lazy ``SessionStore`` nobody reads here.

    ``process_request`` makes the session store from the session cookie (none); it is
    loaded only when read.  ``process_response`` asks whether the session was accessed
    or modified (no) and adds ``Vary: Cookie`` only if it was.
    """
    return with_middleware(2)  # Security, Session


def common() -> WSGIHandler:
    """``CommonMiddleware``: ``DISALLOWED_USER_AGENTS``, ``APPEND_SLASH`` / ``PREPEND_WWW``, and the Host check.

    ``process_request`` validates the Host against ``ALLOWED_HOSTS`` (``get_host()``) and
    the user agent; ``process_response`` looks for a 404 to redirect to the slash-ended
    URL, and sets ``Content-Length`` when the response is not streaming.
    """
    return with_middleware(3)  # Security, Session, Common


def csrf() -> WSGIHandler:
    """``CsrfViewMiddleware``: the CSRF check on unsafe methods (this view is ``csrf_exempt``, as an API's is).

    ``process_request`` reads the CSRF cookie (none); ``process_view`` sees the view's
    ``csrf_exempt`` mark and lets the PUT through; ``process_response`` sets the cookie
    only if a token was used.
    """
    return with_middleware(4)  # Security, Session, Common, Csrf


def authentication() -> WSGIHandler:
    """``AuthenticationMiddleware``: ``request.user``, a ``SimpleLazyObject`` nobody evaluates here.

    It checks that the session middleware is installed and attaches a lazy user (and
    ``request.auser`` for async code); the session and the database are touched only
    when ``request.user`` is read.
    """
    return with_middleware(5)  # Security, Session, Common, Csrf, Authentication


def messages() -> WSGIHandler:
    """``MessageMiddleware``: ``request._messages``, the cookie-then-session message storage.

    ``process_request`` makes a ``FallbackStorage`` (cookie storage, then session
    storage); ``process_response`` stores messages added during the request (none).
    """
    return with_middleware(6)  # Security, Session, Common, Csrf, Authentication, Message


def xframe() -> WSGIHandler:
    """``XFrameOptionsMiddleware``: ``X-Frame-Options: DENY`` on every response (clickjacking).

    ``process_response`` sets the header unless the response has one or the view is
    ``xframe_options_exempt``.  With it, the chain is ``startproject``'s seven.
    """
    return with_middleware(7)  # Security, Session, Common, Csrf, Authentication, Message, XFrameOptions


LADDER = Ladder(
    "django",
    "wsgi",
    ITEM_REQUEST,
    ITEM_ANSWER,
    (
        Step(bare_wsgi, adds="wsgi by hand"),
        Step(wsgi_handler, adds="django handler"),
        Step(url_resolver, adds="url resolver"),
        Step(view_tools, adds="request.GET and JsonResponse"),
        Step(security, adds="SecurityMiddleware"),
        Step(sessions, adds="SessionMiddleware"),
        Step(common, adds="CommonMiddleware"),
        Step(csrf, adds="CsrfViewMiddleware"),
        Step(authentication, adds="AuthenticationMiddleware"),
        Step(messages, adds="MessageMiddleware"),
        Step(xframe, adds="XFrameOptionsMiddleware"),
    ),
    title="Django, piece by piece: from a hand-written WSGI callable to WSGIHandler, the resolver and the middleware.",
)
__getattr__ = serve_steps(LADDER)  # PEP 562: `layers.django.anatomy:url_resolver_app` is the built app, for servers
