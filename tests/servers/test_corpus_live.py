"""Every corpus case against both scratch servers over a real loopback socket.

Each case is sent whole, one byte per write and in two random splittings; each time the
status of every response, whether the connection closed (or stayed usable, checked by
one more request on it) and whether the server still answers a good request afterwards
must be what the case file says.  One server per module, shared by all cases: a case
that broke the server would show up in the cases after it too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from layercake.corpus import load_corpus
from layercake.probe import run_case
from tests.servers.hardening_server import SCRATCH, Served, scratch

CORPUS = load_corpus()


#: Each scratch server with each parser (and scratch-asgi's fast pair on uvloop): the corpus must hold for all.
#: The default run takes each server's readable mode (h11) and its fast one (httptools; on scratch-asgi with
#: uvloop); the other combinations -- h11-mypyc, httptools on asyncio -- run with ``-m full``.
def _modes() -> list[object]:
    modes = []
    for name in sorted(SCRATCH):
        fast = ("--http", "httptools", "--loop", "uvloop") if name == "scratch-asgi" else ("--http", "httptools")
        others = [("--http", "h11-mypyc")] + ([("--http", "httptools")] if name == "scratch-asgi" else [])
        for flags, full in [((), False), (fast, False), *((f, True) for f in others)]:
            marks = [pytest.mark.full] if full else []
            modes.append(pytest.param((name, flags), id=" ".join((name, *flags)), marks=marks))
    return modes


MODES = _modes()


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest) -> Iterator[Served]:
    name, flags = request.param
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        if flag == "--http" and value != "h11":
            pytest.importorskip(value.replace("-", "_"), reason=f"--http {value} needs the servers extra")
        if flag == "--loop":
            pytest.importorskip(value, reason=f"--loop {value} needs the servers extra")
    with scratch(name, *flags) as served:
        yield served


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_corpus_case(server: Served, case) -> None:
    failures = []
    for split, seed in (("whole", 0), ("bytes", 0), ("random", 1), ("random", 2)):
        # close_wait: generous, so a loaded CI machine cannot turn a prompt close into a failure.
        result = run_case(server.host, server.port, case, split, seed=seed, timeout=10.0, close_wait=5.0)
        if not result.passed:
            failures.append(f"{split}/{seed}: got {result.status_text()}: {'; '.join(result.problems())}")
    assert not failures, f"{case.id} ({case.description}, {case.rule}): expected {case.expect_text()}\n" + "\n".join(
        failures
    )
    assert server.proc.poll() is None, server.log()[-2000:]


def test_corpus_is_large_and_covers_every_category() -> None:
    categories = {case.category for case in CORPUS}
    assert len(CORPUS) >= 60
    assert {"smuggling", "fields", "chunked", "reqline", "limits", "expect", "pipelining", "http10"} <= categories


EXPECT_CASES = [case for case in CORPUS if case.category == "expect"]


@pytest.mark.parametrize(("server_name", "layer"), [("scratch-wsgi", "bare_wsgi"), ("scratch-asgi", "bare_asgi")])
def test_expect_cases_with_a_contract_layer(server_name: str, layer: str) -> None:
    """The Expect cases against a real layer, which reads exactly Content-Length bytes and so never asks for
    the end of the message itself: the server must still finish the request and keep the connection."""
    from servers.registry import ServerOptions
    from servers.supervise import start_server

    with start_server(server_name, layer, ServerOptions(port=0)) as running:
        host, port = running.url.removeprefix("http://").rsplit(":", 1)
        for case in EXPECT_CASES:
            for split, seed in (("whole", 0), ("bytes", 0), ("random", 1)):
                result = run_case(host, int(port), case, split, seed=seed, timeout=10.0, close_wait=5.0)
                assert result.passed, f"{case.id} {split}: got {result.status_text()}: {'; '.join(result.problems())}"
