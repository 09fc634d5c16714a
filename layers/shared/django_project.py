"""The Django project both Django layers share: settings written out, and the middleware switch.

Theory of operation
-------------------
A Django *project* is a settings module plus a root URLconf; ``django-admin
startproject`` writes about 120 lines of settings for a site with an admin, a
database, templates, static files and eight middleware.  The contract needs none of
that, so :func:`configure` calls ``settings.configure(...)`` -- Django's documented
way to use it without a settings module ("Using settings without setting
DJANGO_SETTINGS_MODULE") -- with only what a request through ``WSGIHandler`` or
``ASGIHandler`` reads, each setting below with the reason it is there.  Then
``django.setup()`` configures logging and loads the app registry, as ``manage.py``
and ``get_wsgi_application()`` do.

Both layers, ``layers/django/app.py`` (WSGI, sync views) and
``layers/django_asgi/app.py`` (ASGI, async views), call :func:`configure` at import.
Settings are per process and can be configured once, and one process may load both
layers (the test suite, the in-process tour), so nothing layer-specific is a setting:
each layer's handler names its own URLconf on its requests (``request.urlconf``, see
``LayerRequest`` in each app), and ``ROOT_URLCONF`` -- which Django requires -- is a
module with no routes at all.

**The middleware switch.**  With no middleware (the default) Django does the same
work as the other layers: resolve, call the view, send.  ``LAYERCAKE_DJANGO_MIDDLEWARE
=default`` -- what ``layercake --django-middleware default ...`` sets for itself and
every server it starts -- installs the seven middleware ``startproject`` writes into
a new project's settings (its eighth, nothing, is not one), and the four contrib apps
they need, so both configurations can be measured.  The choice is read once, at
:func:`configure`: a server process serves one configuration.

What it deliberately leaves out (Django's defaults apply, or the feature is off):

* ``DATABASES``: empty.  The store is the shared SQLite store
  (``layers/shared/store.py``), as in every layer -- equal work; Django's ORM would be a
  different workload.  Django fills in its ``dummy`` backend, which no request touches.
* ``TEMPLATES``: none.  The index page is the shared ``layers/shared/pages.py``.
* ``STATIC_URL``/``STATIC_ROOT``, ``MEDIA_*``: nothing is served from files.
* ``AUTH_PASSWORD_VALIDATORS``, ``WSGI_APPLICATION``, ``ASGI_APPLICATION``: read only by
  ``manage.py`` commands (``runserver``, ``createsuperuser``), never by a request.
* ``LANGUAGE_CODE``/``TIME_ZONE``: nothing is translated or dated.
"""

from __future__ import annotations

import logging
import os
import secrets

from layercake.errors import UnknownName

#: The environment variable that chooses the middleware (read once per process).
ENV = "LAYERCAKE_DJANGO_MIDDLEWARE"

#: The choices.  ``default`` is exactly the list ``django-admin startproject`` writes
#: (Django 5.2, django/conf/project_template/project_name/settings.py-tpl), in its order:
#: the order matters -- sessions before auth (auth reads the session), CSRF before any
#: view, clickjacking last so its header lands on every response.
MIDDLEWARE: dict[str, list[str]] = {
    "none": [],
    "default": [
        "django.middleware.security.SecurityMiddleware",  # security headers (X-Content-Type-Options...)
        "django.contrib.sessions.middleware.SessionMiddleware",  # request.session, lazily loaded
        "django.middleware.common.CommonMiddleware",  # APPEND_SLASH, DISALLOWED_USER_AGENTS
        "django.middleware.csrf.CsrfViewMiddleware",  # CSRF check on unsafe methods
        "django.contrib.auth.middleware.AuthenticationMiddleware",  # request.user, lazily
        "django.contrib.messages.middleware.MessageMiddleware",  # request._messages
        "django.middleware.clickjacking.XFrameOptionsMiddleware",  # X-Frame-Options: DENY
    ],
}

#: The apps the default middleware import their models from.  Without them in
#: INSTALLED_APPS, importing AuthenticationMiddleware fails ("Model class
#: django.contrib.auth.models.Permission doesn't declare an explicit app_label").
MIDDLEWARE_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
]

#: Django's own ``ROOT_URLCONF`` must name a module with ``urlpatterns``: this one, with
#: none.  Every request carries its layer's URLconf instead (``request.urlconf``).
urlpatterns: list[object] = []


def middleware_choice() -> str:
    """The configured middleware choice: ``none`` unless ``LAYERCAKE_DJANGO_MIDDLEWARE`` says otherwise."""
    choice = os.environ.get(ENV, "none") or "none"
    if choice not in MIDDLEWARE:
        raise UnknownName(f"Django middleware choice (${ENV})", choice, MIDDLEWARE)
    return choice


def configure(apps: bool = False) -> str:
    """Configure Django for this process (once; later calls only check) and return the middleware choice.

    ``apps``: install the middleware's apps even without their middleware -- for the anatomy
    (``layers/django/anatomy.py``), which adds the middleware one handler at a time.  Not by
    default: defining their models makes Django keep a database connection object, and every
    request then pays ``close_old_connections`` for it (11 Python calls on ``GET /json``),
    work the other layers do not do."""
    import django
    from django.conf import settings

    choice = middleware_choice()
    if settings.configured:
        from django.apps import apps as registry

        if apps and not registry.is_installed("django.contrib.auth"):
            # Configured earlier in this process without them (a test run imports both):
            # Django's own way to change the app registry after setup, the one
            # override_settings(INSTALLED_APPS=...) uses.  For the rest of the process, so
            # the layers' requests here pay the connection check too (a few calls): the
            # figures the tools publish are measured in processes of their own, never here.
            registry.set_installed_apps(MIDDLEWARE_APPS)
        return choice
    with_apps = choice == "default" or apps
    settings.configure(
        # DEBUG off, as in production: with DEBUG on, a 404 or a 500 is Django's technical
        # page (the traceback, settings and all) instead of our handler404/handler500, and
        # every SQL query would be kept in memory.
        DEBUG=False,
        # Required with DEBUG off: the Host header is checked against this list whenever a
        # request's host is read (request.get_host(): CommonMiddleware does, our views do
        # not).  layercake serves on loopback only, so these are the only names it answers.
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"],
        # Django refuses to start without one.  Only the middleware's session and message
        # cookies would be signed with it and none is set by the contract, so a fresh random
        # key per process is enough: nothing signed has to outlive the process.
        SECRET_KEY=secrets.token_urlsafe(50),
        ROOT_URLCONF=__name__,
        MIDDLEWARE=MIDDLEWARE[choice],
        # Nothing is installed unless the middleware (or the anatomy, ``apps``) need it:
        # their models would make every request pay the connection check (see above).
        INSTALLED_APPS=MIDDLEWARE_APPS if with_apps else [],
        # Off: no translation machinery.  With it on (Django's default) the 404/500 reason
        # phrases and validation messages could be translated; the contract's are English.
        USE_I18N=False,
        # None: Django leaves logging alone.  Its DEFAULT_LOGGING prints to the console only
        # when DEBUG is on and mails errors to ADMINS (empty) when it is off, so with DEBUG
        # off a 500's traceback would go nowhere.  Left alone, "django.request" -- where
        # Django logs every unhandled exception -- reaches the process's own logging (the
        # server's, or Python's last-resort handler on stderr), as in every other layer.
        LOGGING_CONFIG=None,
        # Uploads up to this size stay in memory; bigger ones go to a temporary file.  On
        # ASGI the handler reads the *whole* body into such a file before the view runs,
        # so a 16 MiB echo is written to disk first; Django's default (2.5 MiB) is kept.
        FILE_UPLOAD_MAX_MEMORY_SIZE=2_621_440,
    )
    django.setup(set_prefix=False)  # the script prefix is set per request, from SCRIPT_NAME / root_path
    # Django logs every response of 400 or more on "django.request" (log_response): a 404
    # or a 422 at WARNING, a 500 at ERROR with its traceback.  The contract's 4xx are
    # answers, not incidents, and a line on stderr per 404 would be measured as Django's
    # cost by every benchmark: only errors are logged, as the other layers do.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    return choice
