"""Run a traced server, send one real request, and assemble the record.

Theory of operation
-------------------
:func:`trace` starts the layer on a server through the registry
(``servers.supervise.start_server``), serving ``layercake.trace.target:app`` -- the
layer wrapped in recorders -- with the environment that tells it the layer and a
directory for its records.  The registry is handed a copy of the layer whose interface
is the server's, so it adds no bridge of its own: the target builds the bridge itself,
with a recorder on each side (see :mod:`layercake.trace.target`).

The request goes over loopback on a raw socket, so the trace holds the exact bytes
sent and received.  It carries ``Connection: close`` and we read to end of file: the
simplest framing every server honours (RFC 9112 §9.6), and one that works on HTTP/1.0
servers such as wsgiref.  The response is then parsed with h11 in the client role,
which de-chunks the body and reports the framing.

Before the traced request, ``warmup`` requests (the same one when it is safe to repeat,
``GET /json`` otherwise) pay the first-request costs -- FastAPI builds its middleware
stack, anyio imports its thread pool, ``re`` compiles patterns -- so the call tree shows
the steady state.  ``warmup=0`` traces the very first request instead.

:func:`scope_diff` sends the same request to several servers and compares the environs
or scopes; :func:`lifespan` runs a server through start, one request and a graceful
stop, and reads back the lifespan events in order.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h11

from layercake import __version__
from layercake.apps import is_user_app
from layercake.errors import LayercakeError
from layercake.trace.instrumented import (
    APP_ENV,
    APP_INTERFACE_ENV,
    DIR_ENV,
    LAYER_ENV,
    LIFESPAN_ENV,
    PROFILE_ENV,
    SERVE_ENV,
    TARGET,
)
from layercake.trace.model import LifespanRecord, ScopeDiff, Trace
from layers import Layer, get_layer

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
RECORD_TIMEOUT = 10.0  # seconds to wait for the server to write a request's record
IO_TIMEOUT = 15.0  # seconds for one exchange: /slow?ms=10000 is the contract's longest


# ---------------------------------------------------------------------------------------
# The request on the wire
# ---------------------------------------------------------------------------------------


def build_request(
    method: str, path: str, host: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """The raw HTTP/1.1 request we send: request line, headers, blank line, body."""
    if not path.startswith("/"):
        raise LayercakeError(f"the path must start with '/', not {path!r}", 2)
    if any(not "!" <= c <= "~" or c == "#" for c in path):
        # RFC 9112 §3.2.1: an origin-form target is a path and a query, visible ASCII only,
        # with no fragment (a client strips "#..."). Sent as typed, the server answers 400
        # before the app runs and the trace could only say "no record".
        raise LayercakeError(
            f"the path {path!r} has a space, '#', control or non-ASCII character, which a request "
            "target cannot carry: percent-encode it (e.g. %20), drop a #fragment, or send "
            "malformed bytes with --raw FILE",
            2,
        )
    names = {k.lower() for k, _ in headers}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] if "host" not in names else [f"{method} {path} HTTP/1.1"]
    if "user-agent" not in names:
        lines.append(f"User-Agent: layercake-trace/{__version__}")
    if "accept" not in names:
        lines.append("Accept: */*")
    lines += [f"{k}: {v}" for k, v in headers]
    if body and "content-type" not in names:
        lines.append(f"Content-Type: {_guess_type(body)}")
    if (
        (body or method in ("POST", "PUT", "PATCH"))
        and "content-length" not in names
        and "transfer-encoding" not in names
    ):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _guess_type(body: bytes) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "application/octet-stream"
    return "application/json"


def exchange(host: str, port: int, raw: bytes, timeout: float = IO_TIMEOUT) -> bytes:
    """Send ``raw`` on a fresh connection and return every byte received until the server closes."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(raw)
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                raise LayercakeError(
                    f"no end of response from {host}:{port} within {timeout:.0f} s (got {len(received)} bytes)", 1
                ) from None
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return bytes(received)


def exchange_ws(
    host: str,
    port: int,
    path: str,
    message: str,
    timeout: float = IO_TIMEOUT,
) -> tuple[bytes, bytes, list[dict[str, Any]]]:
    """Open a WebSocket at ``path``, send ``message`` as one text frame, read the answer, close.

    RFC 6455 in four steps, framed by wsproto in the client role: the opening handshake
    (§4.1), one masked text frame (§5.3: a client masks every frame), whatever the server
    sends back until we have a message, then the closing handshake (§7.1.2: we send close
    1000 and wait for the server's close).  Returns every byte sent, every byte received,
    and the WebSocket events the client saw.
    """
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (
        AcceptConnection,
        CloseConnection,
        Message,
        RejectConnection,
        RejectData,
        Request,
        TextMessage,
    )

    ws = WSConnection(ConnectionType.CLIENT)
    sent, received, seen = bytearray(), bytearray(), []
    deadline = time.monotonic() + timeout

    def put(event: Any) -> None:
        data = ws.send(event)
        sent.extend(data)
        sock.sendall(data)

    def pump(until: tuple[type, ...]) -> bool:
        while time.monotonic() < deadline:
            for event in ws.events():
                seen.append(
                    {
                        "event": type(event).__name__,
                        **(
                            {"data": event.data if isinstance(event.data, str) else bytes(event.data).decode("latin-1")}
                            if hasattr(event, "data")
                            else {}
                        ),
                        **({"code": int(event.code)} if hasattr(event, "code") else {}),
                        **({"status_code": event.status_code} if hasattr(event, "status_code") else {}),
                    }
                )
                if isinstance(event, until):
                    return True
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionResetError:
                data = b""
            received.extend(data)
            ws.receive_data(data or None)
            if not data:
                for event in ws.events():
                    seen.append({"event": type(event).__name__})
                return False
        return False

    with socket.create_connection((host, port), timeout=timeout) as sock:
        put(Request(host=f"{host}:{port}", target=path))
        pump((AcceptConnection, RejectConnection))
        if seen and seen[-1]["event"] == "AcceptConnection":
            put(TextMessage(data=message))
            pump((Message,))
            put(CloseConnection(code=1000))
            pump((CloseConnection,))
        elif seen:
            pump((RejectData,))  # the refusal's body, if any
    return bytes(sent), bytes(received), seen


def parse_response(request: bytes, response: bytes) -> dict[str, Any]:
    """The response as h11 (client role) reads it: status, headers, de-chunked body, framing.

    h11 reads a response only after its client side has sent a request, so the request's
    head is replayed into it (the body need not be: h11 lets a response arrive early, as a
    413 does).  A head h11 itself would refuse to send -- a deliberately broken ``--raw``
    request -- is replaced by a plain ``GET``: only HEAD changes how a response is framed.
    """
    client = h11.Connection(h11.CLIENT)
    head = request.partition(b"\r\n\r\n")[0]
    try:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in header_lines]
        client.send(h11.Request(method=method, target=target, headers=[(k, v.strip()) for k, v in headers]))
    except (ValueError, h11.LocalProtocolError):
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "replayed")]))
    client.receive_data(response)
    client.receive_data(b"")
    out: dict[str, Any] = {
        "status": None,
        "reason": "",
        "http_version": "",
        "headers": [],
        "body": "",
        "chunks": 0,
        "framing": None,
        "error": None,
    }
    chunks: list[bytes] = []
    try:
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                out["status"], out["reason"] = event.status_code, event.reason.decode("latin-1")
                out["http_version"] = event.http_version.decode()
                out["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in event.headers.raw_items()]
                names = {k.lower() for k, _ in out["headers"]}
                out["framing"] = (
                    "chunked"
                    if "transfer-encoding" in names
                    else "content-length"
                    if "content-length" in names
                    else "close-delimited"
                )
            elif isinstance(event, h11.InformationalResponse):  # 101 Switching Protocols (a WebSocket)
                out["status"], out["reason"] = event.status_code, event.reason.decode("latin-1")
                out["http_version"] = event.http_version.decode()
                out["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in event.headers.raw_items()]
                out["framing"] = "switched protocol"
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed, type)):  # type: NEED_DATA, PAUSED
                break
    except h11.RemoteProtocolError as exc:
        out["error"] = f"h11 could not parse the response: {exc}"
    out["body"] = b"".join(chunks).decode("latin-1")
    out["chunks"] = len(chunks)
    return out


# ---------------------------------------------------------------------------------------
# Running the traced server
# ---------------------------------------------------------------------------------------


class _Records:
    """The directory the traced server writes into, read from this side."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def requests(self) -> list[Path]:
        return sorted(self.directory.glob("request-*.json"), key=lambda p: p.stat().st_mtime_ns)

    def wait_for_request(
        self, after: int, timeout: float = RECORD_TIMEOUT, required: bool = True
    ) -> dict[str, Any] | None:
        """The newest request record once there are more than ``after``; None (or an error) on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests()
            if len(found) > after:
                return json.loads(found[-1].read_text())
            time.sleep(0.02)
        if not required:
            return None
        raise LayercakeError("the traced server wrote no record for the request (did the request reach the app?)", 1)

    def lines(self, name: str) -> list[dict[str, Any]]:
        path = self.directory / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def traced_server(
    layer: Layer,
    server: str | None = None,
    http: str | None = None,
    lifespan_mode: str = "pass",
    directory: Path | None = None,
    profile: bool = True,
) -> Iterator[tuple[Any, _Records, Any]]:
    """Start ``layer`` on ``server`` serving the recording target; yield (server, records, spec).

    The records' directory is temporary unless ``directory`` is given (then the caller owns it).
    """
    from servers.registry import ServerOptions, default_server, get_server
    from servers.supervise import start_server

    spec = get_server(server or default_server(layer.interface))
    owned = directory is None
    directory = directory or Path(tempfile.mkdtemp(prefix="layercake-trace-"))
    env = {
        LAYER_ENV: layer.name,
        DIR_ENV: str(directory),
        SERVE_ENV: spec.interface,
        LIFESPAN_ENV: lifespan_mode,
        PROFILE_ENV: "1" if profile else "0",
    }
    if is_user_app(layer):  # --app: the server imports the user's module, from the user's directory
        env |= {APP_ENV: layer.target, APP_INTERFACE_ENV: layer.interface, **layer.env()}  # type: ignore[attr-defined]  # is_user_app() has just said it is a UserApp, which has env()
    # The registry sees a layer of the server's own interface: the target does the bridging.
    as_served = replace(layer, interface=spec.interface, target=TARGET)
    opts = ServerOptions(app_target=TARGET, env=env, http=http)
    try:
        with start_server(spec, as_served, opts) as srv:
            yield srv, _Records(directory), spec
    finally:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)


def _native_command(spec: Any, layer: Layer, http: str | None) -> str:
    """What a user would type to run this layer on this server without the tracer."""
    from servers.registry import ServerOptions
    from servers.supervise import plan_server

    try:
        return plan_server(spec, layer, ServerOptions(port=8000, http=http)).native_command
    except Exception as exc:  # noqa: BLE001 -- only a label; never fail a trace over it
        return f"(unavailable: {exc})"


PARSER_NOTES = {
    "head reader + h11": "our head reader finds the end of the head and runs the strict checks (servers/core/head.py, "
    "strict.py), then a fresh h11.Connection parses it; both observed by wrapping their "
    "classes inside the server process",
    "h11": "h11's events, observed by wrapping h11.Connection inside the server process",
    "httptools": "httptools parses in C (llhttp); what shows is its callbacks into uvicorn's protocol "
    "(on_url, on_header, ...), observed by wrapping them inside the server process",
    "head reader + h11 + wsproto": "our head reader and h11 for the handshake, then wsproto's frames after the "
    "upgrade, observed by wrapping their classes inside the server process",
    "head reader + h11 + writer": "our head reader finds the end of the head and runs the strict checks "
    "(servers/core/head.py, strict.py), a fresh h11.Connection parses it, and our "
    "ResponseWriter frames the answer (servers/core/writer.py); all observed by "
    "wrapping their classes inside the server process",
    "head reader + h11 + writer + wsproto": "our head reader, h11 and writer for the handshake, then wsproto's "
    "frames after the upgrade, observed by wrapping their classes",
    "h11 + wsproto": "h11 for the handshake, then wsproto's frames after the upgrade, observed by wrapping "
    "their classes inside the server process",
    "head reader + httptools + writer": "our head reader finds the end of the head and runs the strict checks "
    "(servers/core/head.py, strict.py), then httptools (llhttp, in C) parses it: what shows is llhttp's callbacks "
    "into our HttptoolsParser (servers/core/parsers.py); our ResponseWriter frames the answer",
    "head reader + httptools + writer + wsproto": "our head reader, httptools' callbacks and our writer for the "
    "handshake, then wsproto's frames after the upgrade",
    "http.server": "what http.server's parse_request made of the head (its parser is a readline loop)",
    None: "opaque: this server parses HTTP outside Python's reach (or in code we do not hook); "
    "what it produced is the environ/scope below",
}


def _parser_note(observed: str | None) -> str:
    return PARSER_NOTES.get(observed) or f"{observed}: observed by wrapping their classes inside the server process"


def _refused_events(events: list[dict[str, Any]], raw: bytes) -> dict[str, Any]:
    """When the app was never called: the events from the last time our bytes reached a parser on.

    Only our connection is open while we trace, so the window is ours; times are counted
    from its first event.
    """
    start = raw[:40].decode("latin-1")
    firsts = [
        i
        for i, e in enumerate(events)
        if e.get("op") in ("HeadReader.feed", "receive_data", "parse_request")
        and (
            e.get("data", {}).get("preview", "").startswith(start)
            or e.get("requestline", "")
            and start.startswith(e["requestline"][:40])
        )
    ]
    if not firsts:
        return {"observed": None, "events": []}
    chosen = events[firsts[-1] :]
    t0 = chosen[0]["t_ns"]
    for event in chosen:
        event["t_ns"] -= t0
    ops = {e.get("op") for e in chosen}
    observed = "head reader + h11" if "HeadReader.feed" in ops else "http.server" if "parse_request" in ops else "h11"
    return {"observed": observed, "events": chosen}


def _parser_events(events: list[dict[str, Any]], method: str, path: str, t0_ns: int, pid: int) -> dict[str, Any]:
    """The parser events of the connection that carried our request, timed from the app call."""
    mine = [e for e in events if e.get("pid") == pid and e.get("t_ns", 0) <= t0_ns + 10**10]
    request_line = f"{method} {path} "
    conn = None
    for event in mine:  # the last connection that carried our request
        if (
            event.get("event") in ("Request", "parse_request", "on_headers_complete")
            and event.get("method") == method
            and event.get("target") == path
        ):
            conn = event["conn"]
    if conn is None:
        return {"observed": None, "events": []}
    chosen = [e for e in mine if e["conn"] == conn]
    # id() is reused once an object is freed (the warm-up's connection): keep the run that
    # starts with the last arrival of our request's bytes.
    starts = [
        i
        for i, e in enumerate(chosen)
        if e["t_ns"] <= t0_ns
        and (e.get("op") == "parse_request" or e.get("data", {}).get("preview", "").startswith(request_line))
    ]
    chosen = chosen[starts[-1] :] if starts else chosen
    first_op = chosen[0].get("op", "") if chosen else ""
    observed = (
        "http.server" if first_op == "parse_request" else "httptools" if first_op.startswith("httptools.") else "h11"
    )
    # Our servers: the head reader ran before h11 (its own object, so its own id).
    heads = [
        e for e in mine if e.get("op") == "HeadReader.feed" and e["t_ns"] <= (chosen[0]["t_ns"] if chosen else t0_ns)
    ]
    complete = [e for e in heads if e.get("head", {}).get("preview", "").startswith(request_line)]
    if complete:
        last = complete[-1]
        reader = [e for e in heads if e["conn"] == last["conn"] and e["t_ns"] <= last["t_ns"]]
        earlier = [i for i, e in enumerate(reader[:-1]) if e.get("event", "").startswith("head complete")]
        chosen = reader[earlier[-1] + 1 if earlier else 0 :] + chosen
        observed = f"head reader + {observed}"  # h11, or httptools (--http httptools)
    # Our servers write the response by hand (servers/core/writer.py): its events after our request.
    if chosen:
        written = [e for e in mine if e.get("op", "").startswith("ResponseWriter.") and e["t_ns"] >= chosen[0]["t_ns"]]
        if written:
            chosen = sorted(chosen + written, key=lambda e: e["t_ns"])
            observed += " + writer"
    # After a WebSocket upgrade, wsproto's frames (another object again): those after our Request.
    if chosen:
        frames = [e for e in mine if e.get("op", "").startswith("ws.") and e["t_ns"] >= chosen[0]["t_ns"]]
        if frames:
            chosen = sorted(chosen + frames, key=lambda e: e["t_ns"])
            observed += " + wsproto"
    for event in chosen:
        event["t_ns"] -= t0_ns
    return {"observed": observed, "events": chosen}


#: How long to wait for the app's record once the response is complete: the server has
#: answered, so a missing record means the app was never called (the server refused it).
NO_APP_WAIT = 2.0


def _request_line(raw: bytes) -> tuple[str, str]:
    line = raw.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return (parts[0], parts[1]) if len(parts) >= 2 else (line, "")


def _layer(layer: str | Layer) -> Layer:
    """A ladder layer by name, or a Layer given whole (a user's app from ``--app``)."""
    return layer if isinstance(layer, Layer) else get_layer(layer)


def trace(
    layer_name: str | Layer,
    server: str | None = None,
    method: str = "GET",
    path: str = "/",
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    warmup: int = 1,
    http: str | None = None,
    profile: bool = True,
    websocket: str | None = None,
    raw: bytes | None = None,
) -> Trace:
    """Trace one request to ``layer_name`` on ``server`` (default: ours for its interface).

    ``profile=False`` leaves out the call tree, so the conversation's timestamps are undisturbed.
    ``websocket="text"`` opens a WebSocket at ``path`` instead, sends the text and closes.
    ``raw`` sends those bytes verbatim instead of building a request (``{host}`` is replaced
    by the server's address): the way to trace a request a server should refuse.  When the
    app is never called the trace still holds the bytes, the parser's events and the answer.
    """
    if websocket is not None and method.upper() != "GET":
        raise LayercakeError("a WebSocket opens with GET (RFC 6455 §4.1)", 2)
    layer = _layer(layer_name)
    method = method.upper()
    with traced_server(layer, server, http, profile=profile) as (srv, records, spec):
        host = f"{srv.host}:{srv.port}"
        if raw is not None:
            raw = raw.replace(b"{host}", host.encode())
            method, path = _request_line(raw)
        warm = (
            build_request(method, path, host, body, headers)
            if method in SAFE_METHODS and raw is None
            else build_request("GET", "/json", host)
        )
        for _ in range(warmup):
            seen = len(records.requests())
            exchange(srv.host, srv.port, warm)
            records.wait_for_request(after=seen)
        time.sleep(0.05)  # let the warm-up connection's last parser events land
        before = len(records.requests())
        frames = None
        if websocket is not None:
            sent, received, frames = exchange_ws(srv.host, srv.port, path, websocket)
        else:
            sent = raw if raw is not None else build_request(method, path, host, body, headers)
            received = exchange(srv.host, srv.port, sent)
        record = records.wait_for_request(
            after=before, timeout=NO_APP_WAIT if received else RECORD_TIMEOUT, required=False
        )
        time.sleep(0.05)
        if record is not None:
            parser = _parser_events(records.lines("parser.jsonl"), method, path, record["t0_ns"], record["pid"])
        else:
            parser = _refused_events(records.lines("parser.jsonl"), sent)
        bridge = spec.bridge_for(layer.interface)
    if record is None:
        record = {
            "pid": srv.pid,
            "duration_ns": None,
            "errors": [],
            "interfaces": [],
            "environ": None,
            "scope": None,
            "conversation": [],
            "profile": {},
        }
    return Trace(
        layer=layer.name,
        interface=layer.interface,
        server=spec.name,
        server_interface=spec.interface,
        bridge=bridge,
        native_command=_native_command(spec, layer, http),
        method=method,
        path=path,
        request_bytes=sent,
        response_bytes=received,
        response=parse_response(sent, received) | ({"websocket": frames} if frames is not None else {}),
        parser={
            "name": spec.parser,
            "observed": parser["observed"],
            "note": _parser_note(parser["observed"]),
            "events": parser["events"],
        },
        environ=record["environ"],
        scope=record["scope"],
        conversation=record["conversation"],
        profile=record["profile"],
        server_process={
            "pid": record["pid"],
            "duration_ns": record["duration_ns"],
            "errors": record["errors"],
            "interfaces": record["interfaces"],
            "app_called": bool(record["interfaces"]),
            "outer_interface": record["interfaces"][0] if record["interfaces"] else None,
        },
        warmup=warmup,
        meta={
            "python": platform.python_version(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "layercake": __version__,
            "host": platform.node(),
        },
    )


# ---------------------------------------------------------------------------------------
# scope-diff
# ---------------------------------------------------------------------------------------


def _layer_view(record: dict[str, Any], interface: str) -> dict[str, Any]:
    """What the *layer* was handed: the environ for a WSGI layer, the scope for an ASGI one.

    Across a bridge that is the bridge's construction (a2wsgi builds the environ from the
    server's scope), which is exactly what the layer has to live with on that server.
    """
    return (record["environ"] if interface == "wsgi" else record["scope"]) or {}


#: PEP 3333 / CGI (RFC 3875 §4.1) names: never mistaken for the process environment.
_CGI = {
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "GATEWAY_INTERFACE",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_PORT",
    "REQUEST_URI",
    "RAW_URI",
    "PATH_TRANSLATED",
    "AUTH_TYPE",
    "REMOTE_USER",
}
PROCESS_ENV_ROW = "(process environment)"


def _from_process_env(key: str) -> bool:
    # wsgiref (like CGI) starts every environ from a copy of os.environ; the server inherits ours.
    return (
        key not in _CGI
        and not key.startswith(("HTTP_", "wsgi."))
        and (key in os.environ or key.startswith("LAYERCAKE_") or key in ("PYTHONPATH", "PYTHONUNBUFFERED"))
    )


def _flatten(view: dict[str, Any]) -> dict[str, Any]:
    """One row per key; headers become one row per header, numbered, so order and casing show.

    Variables copied from the server's process environment (wsgiref does, as CGI did)
    become a single row counting them, instead of fifty rows of ``HOME`` and ``PATH``.
    """
    out: dict[str, Any] = {}
    copied = [key for key in view if _from_process_env(key)]
    if copied:
        out[PROCESS_ENV_ROW] = f"{len(copied)} variables copied from os.environ"
    for key, value in view.items():
        if key in copied:
            continue
        if key == "headers" and isinstance(value, list):
            for i, pair in enumerate(value):
                out[f"headers[{i}]"] = f"{pair[0]}: {pair[1]}" if isinstance(pair, list) and len(pair) == 2 else pair
        elif isinstance(value, dict) and key in ("asgi", "extensions", "state"):
            if not value:
                out[key] = {}
            for sub, subvalue in value.items():
                out[f"{key}.{sub}"] = subvalue
        else:
            out[key] = value
    return out


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _normalise(key: str, value: Any, server_port: int) -> Any:
    """Take out what differs between any two runs -- ports picked at random, object addresses --
    so that a highlighted difference is always the server's doing."""
    if key in ("client", "REMOTE_PORT") or key.startswith("client"):
        if isinstance(value, list) and len(value) == 2:
            return [value[0], "<client port>"]
        if isinstance(value, (int, str)) and key == "REMOTE_PORT":
            return "<client port>"
    if isinstance(value, list):
        return [_normalise("", v, server_port) for v in value]
    if isinstance(value, dict):  # a nested scope (a2wsgi's environ["asgi.scope"])
        return {k: _normalise(k, v, server_port) for k, v in value.items()}
    if value == server_port or value == str(server_port):
        return "<server port>"
    if isinstance(value, str):
        return _ADDRESS.sub(" at 0x…", value)
    return value


def scope_diff(
    layer_name: str | Layer,
    servers: Sequence[str],
    method: str = "GET",
    path: str = "/",
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
) -> ScopeDiff:
    """Send the same request to ``layer_name`` on each server and compare what the layer was handed.

    Every server gets the same request bytes, ``Host`` included (``127.0.0.1:8000``, not the
    random port), so a difference in a value is the server's (or its bridge's) doing.
    """
    if len(servers) < 2:
        raise LayercakeError("scope-diff needs at least two servers, e.g. --servers scratch-asgi,uvicorn", 2)
    layer = _layer(layer_name)
    views: dict[str, dict[str, Any]] = {}
    interfaces: dict[str, str] = {}
    order: dict[str, list[str]] = {}
    raw = build_request(method.upper(), path, "127.0.0.1:8000", body, headers)
    for name in servers:
        with traced_server(layer, name) as (srv, records, spec):
            exchange(srv.host, srv.port, raw)
            record = records.wait_for_request(after=0)
            assert record is not None  # required=True raises instead
            port = srv.port
        view = _layer_view(record, layer.interface)
        bridge = spec.bridge_for(layer.interface)
        interfaces[name] = f"{layer.interface} via the {bridge} bridge" if bridge else layer.interface
        views[name] = {k: _normalise(k, v, port) for k, v in _flatten(view).items()}
        if layer.interface == "asgi":
            order[name] = [pair[0] for pair in view.get("headers", [])]
        else:
            order[name] = [k for k in view if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH")]
    keys: list[str] = []
    for view in views.values():
        keys += [k for k in view if k not in keys]
    rows = []
    for key in sorted(keys, key=_key_order):
        values = {name: views[name].get(key, ScopeDiff.MISSING) for name in servers}
        distinct = {json.dumps(v, sort_keys=True, default=repr) for v in values.values()}
        rows.append({"key": key, "values": values, "differs": len(distinct) > 1})
    return ScopeDiff(
        layer=layer.name,
        method=method.upper(),
        path=path,
        servers=list(servers),
        interfaces=interfaces,
        rows=rows,
        header_order=order,
    )


def _key_order(key: str) -> tuple[int, str]:
    # The CGI-style names first, then wsgi.*, then server-specific extensions (PEP 3333 order).
    if key.startswith("headers["):
        return (1, f"{int(key[8:-1]):04d}")
    if key.isupper():
        return (0, key)
    if key.startswith("wsgi."):
        return (2, key)
    return (3, key)


# ---------------------------------------------------------------------------------------
# lifespan
# ---------------------------------------------------------------------------------------


def lifespan(
    layer_name: str, server: str | None = None, mode: str = "pass", probe_path: str = "/health"
) -> LifespanRecord:
    """Start, send one request, stop gracefully; the lifespan events in the order they happened.

    The events come from the server process (or processes: a pre-forking server runs the
    lifespan in each worker) and are ordered by ``perf_counter``, which on Linux is
    CLOCK_MONOTONIC and so comparable across processes.  A server that refuses to start
    (``mode="fail-startup"``) is not an error here: that is the record.
    """
    from servers.registry import default_server, get_server
    from servers.supervise import ServerStartError

    layer = get_layer(layer_name)
    spec = get_server(server or default_server(layer.interface))
    records = _Records(Path(tempfile.mkdtemp(prefix="layercake-lifespan-")))
    started, exit_status, output, probe = False, None, "", None
    request_marks: list[dict[str, Any]] = []
    try:
        with traced_server(layer, spec.name, lifespan_mode=mode, directory=records.directory) as (srv, _, _):
            started = True
            raw = build_request("GET", probe_path, f"{srv.host}:{srv.port}")
            received = exchange(srv.host, srv.port, raw)
            parsed = parse_response(raw, received)
            record = records.wait_for_request(after=0)
            assert record is not None  # required=True raises instead
            probe = {"path": probe_path, "status": parsed["status"], "body": parsed["body"][:300]}
            request_marks.append(
                {
                    "kind": f"request GET {probe_path}",
                    "t_ns": record["t0_ns"],
                    "pid": record["pid"],
                    "thread": None,
                    "task": None,
                    "status": parsed["status"],
                    "body": parsed["body"][:200],
                    "duration_ns": record["duration_ns"],
                }
            )
            exit_status = srv.stop()
            output = srv.output()
    except ServerStartError as exc:  # e.g. --simulate fail-startup: the server refuses to start
        output = exc.output
    finally:
        events = records.lines("lifespan.jsonl")
        shutil.rmtree(records.directory, ignore_errors=True)
    events = sorted(events + request_marks, key=lambda e: e["t_ns"])
    t0 = events[0]["t_ns"] if events else 0
    for event in events:
        event["t_ns"] -= t0
    return LifespanRecord(
        layer=layer.name,
        interface=layer.interface,
        server=spec.name,
        bridge=spec.bridge_for(layer.interface),
        native_command=_native_command(spec, layer, None),
        mode=mode,
        events=events,
        started=started,
        exit_status=exit_status,
        server_output=output,
        probe=probe,
    )
