"""Load generation: wrk's output (real captures from this machine) and the built-in generator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from layercake.bench.loadgen import (
    LoadResult,
    Request,
    encode_request,
    parse_result_line,
    parse_wrk_output,
    parse_wrk_text,
    percentile,
    run_load,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_result_line_is_read_exactly() -> None:
    r = parse_wrk_output(fixture("wrk_plaintext_c64.txt"))
    assert r.generator == "wrk"
    assert r.requests == 144634
    assert r.duration_s == pytest.approx(1.002373)
    assert r.bytes_read == 14897302
    assert r.errors == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    assert r.latency_us["p50"] == 420 and r.latency_us["p99"] == 888 and r.latency_us["p99.9"] == 3730
    assert r.latency_us["max"] == 5024
    assert r.rps == pytest.approx(144634 / 1.002373)


@pytest.mark.parametrize(
    "name", ["wrk_plaintext_c64.txt", "wrk_create_c16.txt", "wrk_404_c8.txt", "wrk_socket_errors_c4.txt"]
)
def test_text_summary_agrees_with_the_result_line(name: str) -> None:
    text = fixture(name)
    exact, printed = parse_result_line(text, "wrk"), parse_wrk_text(text)
    assert exact is not None
    assert printed.requests == exact.requests
    assert printed.errors == exact.errors
    # wrk prints "1.00s" / "1.10s" and latencies rounded to two decimals of their unit
    assert printed.duration_s == pytest.approx(exact.duration_s, abs=0.01)
    for p in ("p50", "p75", "p90", "p99"):
        assert printed.latency_us[p] == pytest.approx(exact.latency_us[p], rel=0.01)
    assert printed.bytes_read == pytest.approx(exact.bytes_read, rel=0.01)


def test_non_2xx_responses_are_counted_as_status_errors() -> None:
    r = parse_wrk_output(fixture("wrk_404_c8.txt"))
    assert r.non_2xx == r.requests == 155943
    assert r.socket_errors == 0


def test_socket_errors_are_counted_by_kind() -> None:
    r = parse_wrk_output(fixture("wrk_socket_errors_c4.txt"))
    assert r.errors["read"] == 22931
    assert r.socket_errors == 22931 and r.non_2xx == 0


def test_plain_wrk_output_without_our_script_is_understood() -> None:
    r = parse_wrk_output(fixture("wrk_plain_noscript_c64.txt"))
    assert r.requests == 143228
    assert r.duration_s == pytest.approx(1.0)
    assert r.latency_us["p50"] == pytest.approx(425) and r.latency_us["p99"] == pytest.approx(880)
    assert r.latency_us["mean"] == pytest.approx(447.96)
    assert r.errors["status"] == 0


def test_not_wrk_output_is_refused() -> None:
    with pytest.raises(ValueError, match="not wrk output"):
        parse_wrk_output("Usage: wrk <options> <url>")


def test_builtin_generator_line_uses_the_same_parser() -> None:
    line = (
        'LAYERCAKE_RESULT {"duration_us": 2000000, "requests": 10, "bytes": 1000, "errors": {"connect": 1, '
        '"read": 0, "write": 0, "status": 2, "timeout": 0}, "latency_us": {"min": 1.0, "max": 9.0, "mean": 5.0, '
        '"stdev": 2.0, "percentiles": {"50": 5.0, "75": 6.0, "90": 8.0, "99": 9.0, "99.9": 9.0}}}'
    )
    r = parse_result_line("noise\n" + line + "\n", "builtin")
    assert isinstance(r, LoadResult)
    assert r.generator == "builtin" and r.rps == 5.0
    assert r.socket_errors == 1 and r.non_2xx == 2


def test_builtin_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 99) == 10.0 and percentile(values, 99.9) == 10.0
    assert percentile(values, 0) == 1.0
    assert percentile([], 50) == 0.0


def test_request_bytes() -> None:
    raw = encode_request(Request("POST", "/items", b'{"a":1}'), "127.0.0.1:8000")
    assert raw == (
        b"POST /items HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
        b'Content-Length: 7\r\n\r\n{"a":1}'
    )
    assert encode_request(Request("GET", "/json"), "h") == b"GET /json HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.fixture
def floor_url():
    from servers.supervise import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "layercake.bench.floor", "--port", str(port)], stderr=subprocess.PIPE, text=True
    )
    try:
        assert "serving on" in proc.stderr.readline()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


@pytest.mark.parametrize("generator", ["builtin", "wrk"])
def test_a_short_load_against_the_floor(floor_url: str, generator: str) -> None:
    if generator == "wrk":
        import shutil

        if not shutil.which("wrk"):
            pytest.skip("wrk is not installed")
    get = run_load(floor_url, Request("GET", "/plaintext"), 4, 1, generator=generator)
    post = run_load(floor_url, Request("POST", "/items", b'{"name":"x","price":1}'), 2, 1, generator=generator)
    missing = run_load(floor_url, Request("GET", "/nope"), 2, 1, generator=generator)
    assert get.requests > 0 and get.socket_errors == 0 and get.non_2xx == 0
    assert post.requests > 0 and post.socket_errors == 0 and post.non_2xx == 0
    assert missing.requests > 0 and missing.non_2xx == missing.requests
    assert get.latency_us["p50"] <= get.latency_us["p99"] <= get.latency_us["max"]
