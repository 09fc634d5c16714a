"""``layercake serve`` as a user runs it: it prints the native command, the URL and curl
lines, and SIGINT (Ctrl-C) or SIGTERM stops the server and every worker -- checked in
/proc, not assumed.  Plus the CLI's exit statuses for bad input."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from servers.supervise import process_group_members

ROOT = Path(__file__).resolve().parents[2]


def _layercake(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "layercake", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until_serving(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[str, str, int]:
    """Lines up to the last curl line: (the lines, url, server pid).

    The URL is the first one printed (our line, or our servers' own "serving on" line,
    which may come after ours), the pid comes from our line."""
    assert proc.stdout is not None
    seen, url, pid = [], "", 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r"(http://[0-9.]+:\d+)", line)
        if m and not url:
            url = m.group(1)
        m = re.search(r"^layercake: .*\bpid (\d+)", line)
        if m:
            pid = int(m.group(1))
        if "/health" in line:  # the last curl line
            return "".join(seen), url, pid
    proc.kill()
    raise AssertionError("layercake serve never said it was serving:\n" + "".join(seen))


@pytest.mark.parametrize(
    ("layer", "server", "sig"),
    [
        ("bare_wsgi", "gunicorn-gthread", signal.SIGINT),
        ("bare_asgi", "uvicorn", signal.SIGTERM),
    ],
    ids=["gunicorn-workers-SIGINT", "uvicorn-workers-SIGTERM"],
)
def test_serve_stops_every_worker(layer: str, server: str, sig: signal.Signals) -> None:
    proc = _layercake("serve", layer, "--server", server, "--port", "0", "--workers", "2", "--no-access-log")
    pid = 0
    try:
        text, url, pid = _read_until_serving(proc)
        assert "native command:" in text and ("-w 2" in text or "--workers 2" in text)
        assert f"curl -i {url}/plaintext" in text
        assert httpx.get(url + "/plaintext", timeout=10).status_code == 200
        for _ in range(100):  # the master forks its workers after binding (bounded wait)
            if len(process_group_members(pid)) >= 3:
                break
            time.sleep(0.05)
        assert len(process_group_members(pid)) >= 3, "expected a master and two workers"
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
        assert process_group_members(pid) == [], "orphaned server processes"
        assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid and process_group_members(pid):  # a failed assertion must not leave the server running
            os.killpg(pid, signal.SIGKILL)


def test_serve_stops_on_sigint_even_when_started_with_sigint_ignored() -> None:
    # What `layercake serve ... &` in a shell script gets: SIGINT ignored from the start, so
    # Python installs no KeyboardInterrupt handler and `kill -INT` used to do nothing.
    proc = subprocess.Popen(
        [sys.executable, "-m", "layercake", "serve", "bare_wsgi", "--port", "0", "--no-access-log"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    pid = 0
    try:
        _, url, pid = _read_until_serving(proc)
        assert httpx.get(url + "/plaintext", timeout=10).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert process_group_members(pid) == [], "orphaned server processes"
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid and process_group_members(pid):
            os.killpg(pid, signal.SIGKILL)


def test_serve_refuses_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _layercake("serve", "bare_wsgi", "--server", "wsgiref", "--port", str(port))
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "already in use" in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["serve", "bare_wsgi", "--server", "nginx"], "unknown server 'nginx'"),
        (["serve", "no_layer"], "unknown layer 'no_layer'"),
        (["serve", "bare_asgi", "--server", "uvicorn", "--threads", "4"], "has no --threads"),
        (["serve", "bare_wsgi", "--seconds", "-1"], "is not in the range x>0"),  # once served and said "-1 s are up"
    ],
    ids=["unknown-server", "unknown-layer", "unsupported-flag", "negative-seconds"],
)
def test_serve_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    proc = _layercake(*args, "--port", "0")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and says in out and "Traceback" not in out


def _wait_for_members(pid: int, at_least: int) -> None:
    for _ in range(200):  # bounded: the master forks its workers after binding
        if len(process_group_members(pid)) >= at_least:
            return
        time.sleep(0.05)


def test_a_second_ctrl_c_kills_the_group_while_a_request_is_in_flight() -> None:
    # uvicorn finishes in-flight requests on SIGTERM; a second Ctrl-C used to abort our stop inside
    # its wait, print "stopped" and return while uvicorn went on serving.  Now it SIGKILLs the group,
    # as uvicorn's own second Ctrl-C does, and says so.
    import threading

    proc = _layercake("serve", "fastapi", "--server", "uvicorn", "--port", "0", "--no-access-log")
    pid = 0
    outcome: list[str] = []
    try:
        text, url, pid = _read_until_serving(proc)

        def slow() -> None:
            try:
                outcome.append(str(httpx.get(url + "/slow?ms=10000", timeout=30).status_code))
            except httpx.HTTPError as exc:
                outcome.append(type(exc).__name__)

        request = threading.Thread(target=slow)
        request.start()
        time.sleep(1.0)  # the request is in the handler's sleep now
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        request.join(timeout=30)
        assert proc.returncode == 0, out
        assert (text + out).count("serving on") == 1, text + out
        assert "force-stopped uvicorn" in out and "SIGKILL" in out, out
        assert process_group_members(pid) == [], "orphaned server processes"
        assert outcome and outcome[0] != "200", "the request in flight finished: the server was not killed"
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid and process_group_members(pid):
            os.killpg(pid, signal.SIGKILL)


def test_one_ctrl_c_lets_the_request_in_flight_finish() -> None:
    # The first Ctrl-C is graceful: a short request in flight gets its answer, then all stop.
    import threading

    proc = _layercake("serve", "bare_asgi", "--server", "uvicorn", "--port", "0", "--no-access-log")
    pid = 0
    outcome: list[int] = []
    try:
        _, url, pid = _read_until_serving(proc)
        request = threading.Thread(
            target=lambda: outcome.append(httpx.get(url + "/slow?ms=1500", timeout=30).status_code)
        )
        request.start()
        time.sleep(0.7)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        request.join(timeout=30)
        assert outcome == [200], out
        assert "stopped uvicorn and all its workers" in out and "force-stopped" not in out, out
        assert process_group_members(pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid and process_group_members(pid):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.parametrize("server", ["scratch-wsgi", "gunicorn-sync"])
def test_serve_stops_on_sighup_and_says_serving_once(server: str) -> None:
    # SIGHUP is what closing the terminal sends.
    proc = _layercake("serve", "bare_wsgi", "--server", server, "--port", "0", "--workers", "2", "--no-access-log")
    pid = 0
    try:
        text, url, pid = _read_until_serving(proc)
        _wait_for_members(pid, 3)
        assert len(process_group_members(pid)) >= 3, "expected a master and two workers"
        proc.send_signal(signal.SIGHUP)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert process_group_members(pid) == [], "orphaned server processes"
        assert (text + out).count("serving on") == 1, text + out
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid and process_group_members(pid):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_site_serve_stops_on_every_stop_signal(tmp_path: Path, sig: signal.Signals) -> None:
    # `layercake site --serve` was orphaned by SIGHUP and kept answering.  serve_site is what the
    # command runs after building; a one-page site is enough to serve.
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title><p>hello")
    code = (
        "import sys; from layercake.site import serve_site; "
        f"serve_site({str(tmp_path)!r}, port=0, log=lambda line: print(line, flush=True))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pid = 0
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not pid:
            line = proc.stdout.readline()
            seen.append(line)
            m = re.search(r"is at (http://\S+)/ \(pid (\d+)\)", line)
            if m:
                url, pid = m.group(1), int(m.group(2))
        assert pid, "".join(seen)
        assert "hello" in httpx.get(url + "/", timeout=10).text
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "stopped scratch-wsgi" in out, out
        assert ("".join(seen) + out).count("serving on") == 1, "".join(seen) + out
        assert process_group_members(pid) == [], "orphaned site server"
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid and process_group_members(pid):
            os.killpg(pid, signal.SIGKILL)
