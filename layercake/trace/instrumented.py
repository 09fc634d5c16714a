"""What a server serves while layercake traces: a layer wrapped in recorders.

Theory of operation
-------------------
Servers run as subprocesses (``servers/supervise.py``) and load their app from an import
string, so the tracer reaches inside the server process the same way: ``run.py`` starts
the server on ``layercake.trace.target:app`` with the environment below, and this
module builds (``target.py`` is the two-line module the server imports; this one holds
the parts the tracer's own side needs too, without building an app on import)::

    native:       RecordingWSGI(layer)                      RecordingASGI(layer)
    bridged:      RecordingASGI(wsgi_to_asgi(RecordingWSGI(layer)))     (WSGI layer, ASGI server)
                  RecordingWSGI(asgi_to_wsgi(RecordingASGI(layer)))     (ASGI layer, WSGI server)

The bridge is built here, with the same functions the registry's bridge targets use
(``servers/bridges.py``), rather than by the registry, so that a recorder can sit on
*both* sides of it: the outer one sees the server's interface, the inner one the
layer's, and the profiler sees the bridge's frames and its thread hop in between.

Records leave the process as files in ``$LAYERCAKE_TRACE_DIR`` -- never through the
response, which tracing must not change:

* ``request-<pid>-<n>.json``: one per request, written atomically (a temporary file,
  then ``os.replace``) when the request ends;
* ``parser.jsonl``: the parser's events (our head reader, h11, wsproto, http.server), one JSON line each;
* ``lifespan.jsonl``: the app being loaded, every lifespan message, the process exiting.

Importing this module also installs the profiler's dispatcher for threads started
later (bridge pools, anyio's workers), and the parser observers.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from layercake.trace import profiler, recorder
from layercake.trace.observers import (
    observe_h11,
    observe_head_reader,
    observe_http_server,
    observe_response_writer,
    observe_scratch_httptools,
    observe_uvicorn_httptools,
    observe_wsproto,
)
from layercake.trace.recorder import RecordingASGI, RecordingWSGI
from layers import Layer, get_layer

LAYER_ENV = "LAYERCAKE_TRACE_LAYER"  # the layer to serve
DIR_ENV = "LAYERCAKE_TRACE_DIR"  # where records are written
SERVE_ENV = "LAYERCAKE_TRACE_SERVE"  # the interface the server speaks: "wsgi" | "asgi"
LIFESPAN_ENV = "LAYERCAKE_TRACE_LIFESPAN"  # "pass" | "unsupported" | "fail-startup"
PROFILE_ENV = "LAYERCAKE_TRACE_PROFILE"  # "0": no call tree, undisturbed timings
APP_ENV = "LAYERCAKE_TRACE_APP"  # "module:attr" of a user's own app (--app), served instead of a layer
APP_INTERFACE_ENV = "LAYERCAKE_TRACE_APP_INTERFACE"  # that app's interface: "wsgi" | "asgi"
TARGET = "layercake.trace.target:app"


class FileSink:
    """Writes records into one directory; safe to call from any thread."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def request(self, record: dict[str, Any]) -> None:
        final = self.directory / f"request-{record['pid']}-{record['session']:04d}.json"
        tmp = final.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, final)

    def _append(self, name: str, event: dict[str, Any]) -> None:
        line = (json.dumps(event) + "\n").encode()
        with self._lock:
            fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def parser(self, event: dict[str, Any]) -> None:
        self._append("parser.jsonl", event)

    def lifespan(self, event: dict[str, Any]) -> None:
        self._append("lifespan.jsonl", event)


def _app_from_environment() -> Layer | None:
    """The user's own app (``--app``), when run.py named one: a Layer in all but the contract."""
    target = os.environ.get(APP_ENV)
    if not target:
        return None
    return Layer(target, os.environ.get(APP_INTERFACE_ENV, "asgi"), target, None, "your application")  # type: ignore[arg-type]  # the environment variable holds 'wsgi' or 'asgi', set by trace/run.py


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):  # "pkg.web:factory.app", as uvicorn allows
        obj = getattr(obj, part)
    return obj


def build(layer_name: str, serve: str, sink: FileSink, lifespan_mode: str = "pass", app: Layer | None = None) -> Any:
    """The layer's app (or ``app``, a user's) wrapped in recorders, bridged to ``serve`` if its interface differs."""
    layer = app if app is not None else get_layer(layer_name)
    inner = _load(layer.target)
    if layer.interface == serve:
        if serve == "wsgi":
            return RecordingWSGI(inner, sink.request)
        return RecordingASGI(inner, sink.request, sink.lifespan, lifespan_mode)
    from servers.bridges import asgi_to_wsgi, wsgi_to_asgi

    if serve == "asgi":  # a WSGI layer on an ASGI server
        return RecordingASGI(wsgi_to_asgi(RecordingWSGI(inner)), sink.request, sink.lifespan, lifespan_mode)
    # an ASGI layer on a WSGI server: the bridge drives lifespan itself, at this import
    return RecordingWSGI(asgi_to_wsgi(RecordingASGI(inner, None, sink.lifespan, lifespan_mode)), sink.request)


def from_environment() -> Any:
    """Build the traced app from ``$LAYERCAKE_TRACE_*`` (what ``target.py`` does at import)."""
    try:
        layer_name, directory = os.environ[LAYER_ENV], os.environ[DIR_ENV]
    except KeyError as missing:
        raise RuntimeError(f"layercake.trace.target: set {missing.args[0]} (run.py does this)") from None
    sink = FileSink(directory)
    recorder.PROFILE = os.environ.get(PROFILE_ENV, "1") != "0"
    if recorder.PROFILE:
        profiler.install_for_new_threads()  # before the bridge starts its threads
    observe_head_reader(sink.parser)
    observe_response_writer(sink.parser)
    observe_h11(sink.parser)
    observe_wsproto(sink.parser)
    observe_uvicorn_httptools(sink.parser)
    observe_scratch_httptools(sink.parser)
    observe_http_server(sink.parser)

    def mark(kind: str, **data: Any) -> None:
        sink.lifespan(
            {
                "kind": kind,
                "t_ns": time.perf_counter_ns(),
                "wall_time": time.time(),
                "pid": os.getpid(),
                "thread": threading.current_thread().name,
                "task": None,
                **data,
            }
        )

    mark("loading app", layer=layer_name)
    user_app = _app_from_environment()
    app = build(
        layer_name,
        os.environ.get(SERVE_ENV) or (user_app or get_layer(layer_name)).interface,
        sink,
        os.environ.get(LIFESPAN_ENV) or "pass",
        user_app,
    )
    mark("app loaded", layer=layer_name)
    atexit.register(mark, "process exit")
    return app
