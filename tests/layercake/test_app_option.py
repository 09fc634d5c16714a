"""``--app module:attr``: a user's own application served, traced, compared and measured.

The sample apps are ``demos/myapp.py`` (not part of the contract) and one written into a
temporary directory, as a user's would be -- so the current-directory rule is tested too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from layercake.apps import UserApp, detect_interface, load_app
from layercake.bench.costs import app_document
from layercake.cli import cli
from layercake.errors import LayercakeError
from layercake.trace import scope_diff, trace
from layercake.trace.flame import chrome_trace
from tests.layercake.test_trace_flame import check_trace_events

PROJECT = Path(__file__).resolve().parents[2]

YOUR_APP = '''
def application(environ, start_response):
    """A WSGI app of the user's own, outside the project."""
    body = ("yours: " + environ["PATH_INFO"]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture
def your_dir(tmp_path: Path) -> Path:
    (tmp_path / "yourapp.py").write_text(textwrap.dedent(YOUR_APP))
    return tmp_path


# --- telling WSGI from ASGI, and refusing what is neither ---


class ThreeArgs:
    def __call__(self, scope: Any, receive: Any, send: Any) -> Any: ...


class AsyncCall:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...


def two_args(environ: Any, start_response: Any) -> list[bytes]:
    return []


async def async_fn(scope: Any, receive: Any, send: Any) -> None: ...


@pytest.mark.parametrize(
    ("obj", "interface"),
    [(two_args, "wsgi"), (async_fn, "asgi"), (AsyncCall(), "asgi"), (ThreeArgs(), "asgi")],
    ids=["wsgi-function", "async-function", "async-__call__", "three-arguments"],
)
def test_interface_is_detected(obj: Any, interface: str):
    assert detect_interface(obj)[0] == interface


def test_frameworks_are_detected():
    assert load_app("layers.flask.app:app").interface == "wsgi"
    assert load_app("layers.starlette.app:app").interface == "asgi"
    assert load_app("demos.myapp:wsgi_app", "wsgi").detected == "given with --interface"


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("myapp", "is not module:attr"),
        ("no_such_module_here:app", "no module named 'no_such_module_here'"),
        ("demos.myapp:nothing", "has no attribute 'nothing'; its callables: app, count_primes, route, wsgi_app"),
        ("demos.myapp:MAX_N", "that is an int, not a WSGI or ASGI application"),
        ("demos.myapp:count_primes", "a callable taking 1 argument is neither WSGI"),
    ],
)
def test_a_bad_app_is_one_line_and_exit_2(target: str, says: str):
    with pytest.raises(LayercakeError) as caught:
        load_app(target)
    assert says in caught.value.message and caught.value.exit_code == 2
    for command in (
        ["trace", "--app", target, "/"],
        ["serve", "--app", target, "--seconds", "1"],
        ["scope-diff", "--app", target, "--servers", "scratch-asgi,uvicorn"],
        ["bench", "--in-process", "--app", target],
    ):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2, (command, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("layercake: --app: ") and says in lines[0]


def test_layer_and_app_together_or_neither_are_refused():
    for command, says in (
        (["trace", "flask", "--app", "demos.myapp:app"], "not both"),
        (["trace"], "give a LAYER"),
        (["trace", "flask", "--interface", "wsgi"], "goes with --app"),
        (["bench", "--app", "demos.myapp:app"], "add --in-process"),
    ):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2 and says in result.output, (command, result.output)


def test_an_import_error_inside_the_app_is_named(tmp_path: Path):
    (tmp_path / "broken_app_mod.py").write_text("import not_installed_dependency_xyz\napp = None\n")
    with pytest.raises(LayercakeError, match="importing 'broken_app_mod' failed: No module named"):
        load_app("broken_app_mod:app", app_dir=tmp_path)


# --- over real servers ---


def _serve(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``layercake serve`` as a user would; the process, the URL it prints, what it printed so far."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "layercake", "serve", "--port", "0", "--seconds", "60", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    deadline, seen = time.monotonic() + 60, []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        found = re.search(r"serving on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return proc, found.group(1), "".join(seen)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("serve never said where it serves:\n" + "".join(seen))


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


def test_serve_the_sample_app_on_our_asgi_server():
    proc, url, head = _serve(["--app", "demos.myapp:app"], PROJECT)
    try:
        assert httpx.get(f"{url}/hello?name=reader", timeout=10).json() == {"hello": "reader"}
        assert httpx.get(f"{url}/primes?n=100", timeout=10).json() == {"n": 100, "primes": 25}
        assert httpx.post(f"{url}/hello", timeout=10).status_code == 405
    finally:
        out = head + _stop(proc)
    assert "demos.myapp:app (asgi) on scratch-asgi" in out and f"curl -i {url}/" in out
    assert "/items" not in out  # the contract's curl lines are not the app's


def test_serve_your_wsgi_app_from_its_directory_through_a_bridge(your_dir: Path):
    # run from the app's directory, as `uvicorn yourapp:app` would be; an ASGI server, so a2wsgi carries it
    proc, url, head = _serve(["--app", "yourapp:application", "--server", "scratch-asgi"], your_dir)
    try:
        answer = httpx.get(f"{url}/anything", timeout=10)
        assert answer.status_code == 200 and answer.text == "yours: /anything"
    finally:
        out = head + _stop(proc)
    assert "through the wsgi->asgi bridge" in out


def test_trace_the_sample_app_by_package_and_thread():
    t = trace(load_app("demos.myapp:app"), None, "GET", "/primes?n=20000")
    assert t.response["status"] == 200 and json.loads(t.response["body"]) == {"n": 20000, "primes": 2262}
    assert t.scope is not None and t.scope["path"] == "/primes"
    assert t.packages()["layer"]["calls"] > 0  # the app's own code is its own package, not "other"
    assert len(t.threads()) >= 2  # the event loop and the worker that asyncio.to_thread handed the sieve to
    check_trace_events(chrome_trace(t))


def test_trace_cli_on_your_app_writes_json_and_chrome_trace(your_dir: Path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "layercake",
            "trace",
            "--app",
            "yourapp:application",
            "GET",
            "/x",
            "--json",
            "t.json",
            "--chrome-trace",
            "c.json",
        ],
        cwd=your_dir,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads((your_dir / "t.json").read_text())
    assert saved["interface"] == "wsgi" and saved["response"]["body"] == "yours: /x"
    assert "layer" in saved["profile"]["packages"]
    events = check_trace_events(json.loads((your_dir / "c.json").read_text()))
    assert any(e["name"] == "application" and e["cat"] == "layer" for e in events)


def test_scope_diff_compares_servers_for_your_app():
    pytest.importorskip("uvicorn")
    diff = scope_diff(load_app("demos.myapp:app"), ["scratch-asgi", "uvicorn"], "GET", "/hello")
    assert diff.servers == ["scratch-asgi", "uvicorn"] and diff.layer == "demos.myapp:app"
    keys = {row["key"]: row for row in diff.rows}
    assert keys["path"]["values"] == {"scratch-asgi": "/hello", "uvicorn": "/hello"} and not keys["path"]["differs"]


def test_bench_in_process_measures_your_routes_as_they_answer():
    app = load_app("demos.myapp:app")
    assert isinstance(app, UserApp) and not app.contract
    doc = app_document(app, ["/hello", "POST /hello", "/primes?n=300"], seconds=0.05)
    assert not doc["failures"]
    rows = {r["endpoint"]: r for r in doc["in_process"]}
    assert [rows[k]["status"] for k in ("GET /hello", "POST /hello", "GET /primes?n=300")] == [200, 405, 200]
    assert all(r["counters"]["by_package"]["layer"]["calls"] > 0 for r in rows.values())
    result = CliRunner().invoke(
        cli, ["bench", "--in-process", "--app", "demos.myapp:wsgi_app", "--path", "/hello", "--seconds", "0.05"]
    )
    assert result.exit_code == 0 and "GET /hello" in result.output, result.output
