"""``layercake trace``, ``scope-diff`` and ``lifespan``: follow one request through the stack.

Thin wrappers over :mod:`layercake.trace`: parse the arguments, call the library, print
with rich, write ``--json``/``--html`` when asked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from rich.console import Console

from layercake.apps import app_or_layer
from layercake.errors import LayercakeError
from layercake.trace import render
from layercake.trace.recorder import LIFESPAN_MODES
from layercake.trace.run import lifespan, scope_diff, trace

console = Console()

_METHOD = re.compile(r"^[A-Z]+$")


def _method_and_path(words: tuple[str, ...]) -> tuple[str, str]:
    """``[METHOD] PATH``: one word is a path (GET), two are a method and a path."""
    if not words:
        return "GET", "/"
    if len(words) == 1:
        return "GET", words[0]
    if len(words) == 2 and _METHOD.match(words[0].upper()):
        return words[0].upper(), words[1]
    raise LayercakeError(f"expected [METHOD] PATH, got {' '.join(words)!r}", 2)


# RFC 9110 §5.1: a field name is a token; §5.6.2 lists the characters a token may use.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _headers(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    """``--header NAME:VALUE`` pairs, refused unless they make one well-formed field line.

    A value with CR or LF in it would be sent as a second header line (header injection),
    and a name with a space draws a 400 the trace can only report as "no record": both are
    malformed requests, which is what ``--raw FILE`` is for.
    """
    out = []
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise LayercakeError(f"--header takes NAME:VALUE, not {pair!r}", 2)
        name, value = name.strip(), value.strip()
        if not _TOKEN.match(name):
            raise LayercakeError(
                f"--header name {name!r} is not a token (RFC 9110 §5.1); send malformed requests with --raw FILE", 2
            )
        if any(c in value for c in "\r\n\0"):
            raise LayercakeError(
                f"--header value for {name!r} contains CR, LF or NUL, which a field value "
                "cannot (RFC 9110 §5.5); send malformed requests with --raw FILE",
                2,
            )
        out.append((name, value))
    return out


# RFC 9110 §9.3's methods: with --app, a first word that is one of these is the request's
_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}


def _app_words(layer: str | None, request: tuple[str, ...], app: str | None) -> tuple[str | None, tuple[str, ...]]:
    """With --app there is no LAYER: the first word click took for one is the method or path."""
    if app is not None and layer is not None and (layer.startswith("/") or layer.upper() in _METHODS):
        return None, (layer, *request)
    return layer, request


@click.command("trace")
@click.argument("layer", required=False)
@click.argument("request", nargs=-1, metavar="[METHOD] [PATH]")
@click.option(
    "--app",
    "app",
    metavar="MODULE:ATTR",
    help="Your own WSGI or ASGI application instead of a layer (the current directory is on the path).",
)
@click.option(
    "--interface",
    type=click.Choice(["wsgi", "asgi"]),
    help="--app's interface, when it cannot be told from the callable.",
)
@click.option("--server", default=None, help="Server to run on (default: our scratch server for the interface).")
@click.option("--data", default=None, help="Request body (sent with Content-Length; JSON gets application/json).")
@click.option("--header", "header", multiple=True, metavar="K:V", help="Extra request header (repeatable).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the trace here.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML page here.",
)
@click.option(
    "--chrome-trace",
    "chrome_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the call tree in the Trace Event format (JSON) that Perfetto and chrome://tracing open.",
)
@click.option("--depth", default=render.DEFAULT_DEPTH, show_default=True, help="Call-tree depth to open.")
@click.option(
    "--warmup",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests sent before the traced one (0: trace the very first request, imports and all).",
)
@click.option("--http", "http", default=None, help="HTTP parser, where the server has a choice (uvicorn: h11).")
@click.option(
    "--raw",
    "raw_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this file's bytes verbatim ({host} is replaced); e.g. a request the server should refuse.",
)
@click.option(
    "--ws",
    "ws",
    default=None,
    metavar="TEXT",
    help="Open a WebSocket at PATH instead, send TEXT as one message, read the answer, close.",
)
@click.option(
    "--no-profile", is_flag=True, help="No call tree: the conversation's timestamps without the profiler's overhead."
)
def trace_cmd(
    layer: str | None,
    request: tuple[str, ...],
    app: str | None,
    interface: str | None,
    server: str | None,
    data: str | None,
    header: tuple[str, ...],
    json_file: Path | None,
    html_file: Path | None,
    chrome_file: Path | None,
    depth: int,
    warmup: int,
    http: str | None,
    raw_file: Path | None,
    ws: str | None,
    no_profile: bool,
) -> None:
    """Trace one request: LAYER (or --app MODULE:ATTR) [--server NAME] [METHOD] PATH (GET / when both are left out).

    Runs LAYER on the server with recorders inside the server process, sends one real
    request over loopback and shows, in order: the request bytes, the parser's events,
    the environ/scope, the interface conversation, the call tree coloured by package
    (with the thread or task that ran each part) and the response bytes.

    \b
        layercake trace fastapi GET /items/1
        layercake trace flask --server uvicorn /json        (WSGI through the a2wsgi bridge)
        layercake trace bare_asgi --server uvicorn --http h11 POST /echo --data hello
        layercake trace starlette /ws --ws hello         (a WebSocket: handshake, frames, close)
        layercake trace bare_wsgi --raw smuggle.http     (bytes as given: see who refuses what)
        layercake trace fastapi /json --chrome-trace t.json  (open t.json in Perfetto)
        layercake trace --app demos.myapp:app GET '/primes?n=5000'   (your own app)
    """
    layer, request = _app_words(layer, request, app)
    method, path = _method_and_path(request) if not raw_file else ("GET", "/")
    if depth < 1:
        raise LayercakeError("--depth must be at least 1", 2)
    target = app_or_layer(layer, app, interface)
    with console.status(f"tracing {method} {path} on {target.name}…"):
        result = trace(
            target,
            server,
            method,
            path,
            (data or "").encode(),
            _headers(header),
            warmup=warmup,
            http=http,
            profile=not no_profile,
            websocket=ws,
            raw=raw_file.read_bytes() if raw_file else None,
        )
    console.print(render.render_trace(result, depth))
    if json_file:
        result.save(json_file)
        console.print(f"trace written to {json_file}")
    if html_file:
        html_file.write_text(render.trace_html(result, depth))
        console.print(f"HTML page written to {html_file}")
    if chrome_file:
        from layercake.trace.flame import chrome_trace

        chrome_file.write_text(json.dumps(chrome_trace(result)))
        console.print(f"Trace Event file written to {chrome_file} (open it at ui.perfetto.dev or chrome://tracing)")


@click.command("scope-diff")
@click.argument("layer", required=False)
@click.argument("request", nargs=-1, metavar="[METHOD] [PATH]")
@click.option(
    "--app",
    "app",
    metavar="MODULE:ATTR",
    help="Your own WSGI or ASGI application instead of a layer (the current directory is on the path).",
)
@click.option(
    "--interface",
    type=click.Choice(["wsgi", "asgi"]),
    help="--app's interface, when it cannot be told from the callable.",
)
@click.option("--servers", required=True, help="Comma-separated servers, e.g. scratch-asgi,uvicorn,hypercorn.")
@click.option("--only-differences", is_flag=True, help="Hide the keys every server agrees on.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the table here.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML page.")
def scope_diff_cmd(
    layer: str | None,
    request: tuple[str, ...],
    app: str | None,
    interface: str | None,
    servers: str,
    only_differences: bool,
    json_file: Path | None,
    html_file: Path | None,
) -> None:
    """The same request on several servers: every environ/scope key side by side ([METHOD] PATH; default GET /).

    \b
        layercake scope-diff bare_asgi GET /inspect --servers scratch-asgi,uvicorn,hypercorn
        layercake scope-diff --app demos.myapp:app GET /hello --servers scratch-asgi,uvicorn
    """
    layer, request = _app_words(layer, request, app)
    method, path = _method_and_path(request)
    target = app_or_layer(layer, app, interface)
    # dict.fromkeys: --servers uvicorn,uvicorn compares a server with itself ("0 of 17 keys
    # differ"), which is a typo, so a repeat counts once and two distinct names are needed.
    names = list(dict.fromkeys(s.strip() for s in servers.split(",") if s.strip()))
    with console.status(f"sending {method} {path} to {', '.join(names)}…"):
        diff = scope_diff(target, names, method, path)
    console.print(render.render_scope_diff(diff, only_differences))
    if json_file:
        json_file.write_text(json.dumps(diff.to_dict(), indent=1))
    if html_file:
        html_file.write_text(render.scope_diff_html(diff))


@click.command("lifespan")
@click.argument("layer")
@click.option("--server", default=None, help="Server to run on (default: our scratch server for the interface).")
@click.option(
    "--simulate",
    type=click.Choice(LIFESPAN_MODES),
    default="pass",
    show_default=True,
    help="pass: the layer's own lifespan; unsupported: an app that raises on the lifespan scope; "
    "fail-startup: an app that answers lifespan.startup.failed.",
)
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the record here.")
def lifespan_cmd(layer: str, server: str | None, simulate: str, json_file: Path | None) -> None:
    """Record the lifespan exchange: start the server, send GET /health, stop it gracefully.

    \b
        layercake lifespan starlette --server uvicorn
        layercake lifespan fastapi --server uvicorn --simulate fail-startup
    """
    with console.status(f"running {layer} through start, one request and stop…"):
        record = lifespan(layer, server, simulate)
    console.print(render.render_lifespan(record))
    if json_file:
        json_file.write_text(json.dumps(record.to_dict(), indent=1))


COMMANDS = [trace_cmd, scope_diff_cmd, lifespan_cmd]
