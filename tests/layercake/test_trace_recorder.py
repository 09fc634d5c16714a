"""The tracer's parts without a server: package rules, the profiler, the recording middleware."""

from __future__ import annotations

import asyncio
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from layercake.trace import packages, profiler
from layercake.trace.model import Trace
from layercake.trace.recorder import RecordingASGI, RecordingWSGI

REPO = packages.REPO
STDLIB = Path(threading.__file__).resolve().parent


@pytest.fixture
def new_threads_profiled() -> Any:
    profiler.install_for_new_threads()
    yield
    threading.setprofile(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "package"),
    [
        (REPO / "servers/scratch_asgi.py", "server"),
        (REPO / "servers/core/http.py", "server"),
        (REPO / "servers/bridges.py", "bridge"),
        (REPO / "layers/fastapi/app.py", "layer"),
        (REPO / "layers/shared/store.py", "layer"),
        (REPO / "layers/__init__.py", "other"),  # the registry is not any layer's code
        (REPO / "layercake/trace/recorder.py", "trace"),
        (STDLIB / "json/encoder.py", "stdlib"),
        (STDLIB / "wsgiref/simple_server.py", "server"),
        (STDLIB / "http/server.py", "server"),
        ("<frozen importlib._bootstrap>", "stdlib"),
        ("<string>", "other"),
    ],
    ids=lambda v: str(v).rsplit("/", 2)[-1] if isinstance(v, Path) else str(v),
)
def test_files_are_classified_by_the_table(path: Path | str, package: str) -> None:
    assert packages.classify_file(str(path)) == package


def test_site_packages_are_classified_by_their_top_level_name() -> None:
    import a2wsgi
    import fastapi
    import h11
    import pydantic
    import starlette

    for module, package in (
        (fastapi, "fastapi"),
        (starlette, "starlette"),
        (pydantic, "pydantic"),
        (h11, "h11"),
        (a2wsgi, "bridge"),
    ):
        assert packages.classify_file(module.__file__) == package
    assert packages.classify_module("pydantic_core._pydantic_core") == "pydantic"
    assert packages.classify_module("_socket") == "stdlib"
    assert packages.classify_module("builtins") is None  # charged to the caller


# ---------------------------------------------------------------------------------------
# The profiler
# ---------------------------------------------------------------------------------------


def _find(node: dict[str, Any], label: str) -> dict[str, Any] | None:
    if node.get("label") == label:
        return node
    for child in node["children"]:
        found = _find(child, label)
        if found:
            return found
    return None


def _work() -> int:
    return sum(range(100))


def test_work_handed_to_a_thread_pool_appears_under_that_thread(new_threads_profiled: None) -> None:
    def request() -> int:
        with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
            return pool.submit(_work).result()

    result, prof = profiler.profile_call(request)
    assert result == 4950
    summary = prof.summary()
    by_thread = {tree["thread"]["name"]: tree for tree in summary["threads"]}
    assert set(by_thread) == {threading.current_thread().name, "pool_0"}
    assert _find(by_thread["pool_0"], "_work") is not None
    assert _find(by_thread[threading.current_thread().name], "_work") is None
    assert any(s["thread"] == "pool_0" for s in summary["switches"])


def test_a_job_handed_to_a_pool_is_one_thread_hop_with_its_origin(new_threads_profiled: None) -> None:
    def request() -> int:
        with ThreadPoolExecutor(1, thread_name_prefix="hop") as pool:
            return pool.submit(_work).result()

    _, prof = profiler.profile_call(request)
    summary = prof.summary()
    assert summary["hop_count"] == 1, summary["hops"]
    (hop,) = summary["hops"]
    assert hop["to"] == "hop_0" and hop["from"] == threading.current_thread().name
    assert hop["via"] == "ThreadPoolExecutor.submit"
    assert hop["handed_by"][0].startswith(
        "test_a_job_handed_to_a_pool_is_one_thread_hop_with_its_origin.<locals>.request"
    )
    assert hop["work"][0].startswith("_work")


def test_no_hop_without_another_thread() -> None:
    _, prof = profiler.profile_call(_work)
    assert prof.summary()["hop_count"] == 0


async def _inner() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def _outer() -> None:
    await _inner()


def test_coroutine_resumptions_are_not_counted_as_calls() -> None:
    _, prof = profiler.profile_call(lambda: asyncio.run(_outer()))
    tree = prof.summary()["threads"][0]
    inner = _find(tree, "_inner")
    assert inner is not None
    assert inner["calls"] == 1
    assert inner["resumes"] == 2
    assert inner["task"] and inner["task"].endswith("(_outer)")


def test_hidden_functions_leave_no_trace_in_the_tree() -> None:
    @profiler.hidden
    def bookkeeping() -> int:
        return _work()

    def request() -> int:
        return bookkeeping() + _work()

    _, prof = profiler.profile_call(request)
    tree = prof.summary()["threads"][0]
    assert _find(tree, "test_hidden_functions_leave_no_trace_in_the_tree.<locals>.bookkeeping") is None
    work = _find(tree, "_work")
    assert work is not None and work["calls"] == 1


# ---------------------------------------------------------------------------------------
# The recording middleware
# ---------------------------------------------------------------------------------------


def _environ(body: bytes = b"") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body + b"|" + repr(environ["wsgi.input"]).encode()]


def test_recording_wsgi_changes_nothing_the_server_or_app_can_see() -> None:
    records: list[dict[str, Any]] = []
    environ = _environ(b"abc")
    original_repr = repr(environ["wsgi.input"])
    statuses: list[str] = []
    result = RecordingWSGI(_wsgi_app, records.append)(environ, lambda s, h, e=None: statuses.append(s))
    # wsgiref sets Content-Length only when len(result) == 1: the wrapper must keep __len__.
    assert len(result) == 1  # type: ignore[arg-type]
    body = b"".join(result)
    result.close()  # type: ignore[attr-defined]
    assert body == b"abc|" + original_repr.encode()  # /inspect shows repr(wsgi.input): unchanged
    assert statuses == ["200 OK"]
    [record] = records
    calls = [e["call"] for e in record["conversation"]]
    assert calls == [
        "app(environ, start_response)",
        "wsgi.input.read",
        "start_response",
        "iterable chunk",
        "iterable exhausted",
        "close()",
    ]
    assert record["environ"]["REQUEST_METHOD"] == "POST"


def test_recording_asgi_records_the_conversation_in_order() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": message["body"]})

    records: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"hi", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "headers": [(b"host", b"x")]}
    asyncio.run(RecordingASGI(app, records.append)(scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"hi"
    [record] = records
    calls = [(e["call"], (e.get("message") or {}).get("type")) for e in record["conversation"]]
    assert calls == [
        ("app(scope, receive, send)", None),
        ("receive()", "http.request"),
        ("send()", "http.response.start"),
        ("send()", "http.response.body"),
    ]
    assert record["scope"]["raw_path"] == "/"  # bytes made JSON-safe (latin-1)
    assert record["profile"]["threads"]


def test_trace_round_trips_through_json() -> None:
    trace = Trace(
        layer="bare_asgi",
        interface="asgi",
        server="uvicorn",
        server_interface="asgi",
        bridge=None,
        native_command="uvicorn x:app",
        method="GET",
        path="/",
        request_bytes=b"GET / HTTP/1.1\r\n\r\n",
        response_bytes=bytes(range(256)),
        response={"status": 200},
        parser={"events": []},
        environ=None,
        scope={"type": "http"},
        conversation=[],
        profile={"threads": []},
    )
    again = Trace.from_dict(trace.to_dict())
    assert again == trace
    assert again.steps == ["request bytes", "environ/scope", "response bytes"]


def test_a_sync_endpoint_runs_in_anyio_worker_thread(new_threads_profiled: None) -> None:
    # None of the contract layers has a sync endpoint; this is the hop they would show.
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def hello(request: Any) -> PlainTextResponse:  # a plain def: Starlette runs it in anyio's thread pool
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/", hello)])
    records: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("t", 80),
        "client": ("c", 1),
        "http_version": "1.1",
    }
    asyncio.run(RecordingASGI(app, records.append)(scope, receive, send))
    assert sent[-1]["body"] == b"hi"
    trees = {tree["thread"]["name"]: tree for tree in records[0]["profile"]["threads"]}
    worker = [name for name in trees if name != threading.current_thread().name]
    assert worker, f"no second thread in {list(trees)}"
    assert _find(trees[worker[0]], "test_a_sync_endpoint_runs_in_anyio_worker_thread.<locals>.hello") is not None
    assert "anyio" in records[0]["profile"]["packages"]


def test_a_sync_endpoint_is_exactly_one_hop(new_threads_profiled: None) -> None:
    """The known case: a FastAPI plain ``def`` endpoint without a response model is one
    hop (anyio's worker thread); with a response model FastAPI validates the return value
    in the pool too, a second."""
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.get("/plain", response_model=None)
    def plain() -> PlainTextResponse:
        return PlainTextResponse("hi")

    @app.get("/modelled")
    def modelled() -> dict[str, str]:
        return {"message": "hi"}

    def hops(path: str) -> dict[str, Any]:
        records: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [],
            "scheme": "http",
            "server": ("t", 80),
            "client": ("c", 1),
            "http_version": "1.1",
        }

        async def twice() -> None:  # one root task, as under a server: the worker thread is reused
            await RecordingASGI(app, lambda r: None)(scope, receive, send)
            await RecordingASGI(app, records.append)(scope, receive, send)

        asyncio.run(twice())
        return records[0]["profile"]

    plain_profile = hops("/plain")
    assert plain_profile["hop_count"] == 1, plain_profile["hops"]
    assert plain_profile["hops"][0]["work"][0] == "_run_sync_endpoint (fastapi)"  # FastAPI handing over the endpoint
    assert hops("/modelled")["hop_count"] == 2


@pytest.mark.parametrize(
    ("interface", "bridge", "says"),
    [
        ("asgi", None, "the layer's own lifespan handling"),
        ("wsgi", "wsgi->asgi", "WSGI has no lifespan, the wsgi->asgi bridge acknowledges it"),
    ],
)
def test_lifespan_header_says_who_answered(interface: str, bridge: str | None, says: str) -> None:
    from rich.console import Console

    from layercake.trace.model import LifespanRecord
    from layercake.trace.render import render_lifespan

    record = LifespanRecord("x", interface, "uvicorn", bridge, "uvicorn x", "pass", [], True, 0, "")
    console = Console(width=200, record=True)
    console.print(render_lifespan(record))
    assert says in console.export_text()
