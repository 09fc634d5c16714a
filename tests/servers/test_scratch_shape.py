"""The two scratch servers share one skeleton, so that ``diff`` between them teaches the concurrency model."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SERVERS = Path(__file__).resolve().parents[2] / "servers"
HEADING = re.compile(r"^ *# =+\n *# (.+)\n *# =+$", re.MULTILINE)


def headings(name: str) -> list[str]:
    return HEADING.findall((SERVERS / name).read_text())


def test_same_section_headings_in_the_same_order() -> None:
    expected = ["Accept loop", "Connection", "Event loop over the connection's events", "Request cycle", "Entry points"]
    assert headings("scratch_wsgi.py") == expected
    assert headings("scratch_asgi.py") == expected


def test_every_server_file_opens_with_a_theory_of_operation() -> None:
    for path in [*SERVERS.glob("scratch_*.py"), *SERVERS.glob("core/*.py"), SERVERS / "bench_scratch.py"]:
        text = path.read_text()
        assert text.startswith('"""'), path
        docstring = text.split('"""')[1]
        assert len(docstring.splitlines()) >= 3, f"{path.name}: the opening docstring is too thin"


def sections(name: str) -> dict[str, str]:
    """Heading -> the source text under it, up to the next heading."""
    text = (SERVERS / name).read_text()
    marks = list(HEADING.finditer(text))
    return {
        m.group(1): text[m.end() : nxt.start() if nxt else len(text)]
        for m, nxt in zip(marks, [*marks[1:], None], strict=True)
    }


def defined(source: str) -> set[str]:
    return set(re.findall(r"^ *(?:class|def|async def) (\w+)", source, re.MULTILINE))


# What each heading promises, as names the section must define (both servers alike).
PROMISES = {
    "Accept loop": {"Server", "serve", "stop"},
    "Connection": {"Connection", "__init__"},
    "Event loop over the connection's events": set(),
    "Request cycle": {"RequestCycle", "run", "fail"},
    "Entry points": {"serve", "running", "main"},
}


@pytest.mark.parametrize("name", ["scratch_wsgi.py", "scratch_asgi.py"])
def test_each_section_holds_what_its_heading_says(name: str) -> None:
    parts = sections(name)
    for heading, names in PROMISES.items():
        assert names <= defined(parts[heading]), f"{name}: {heading!r} lacks {names - defined(parts[heading])}"
    # The event loop section is where the connection's events are asked for and acted on -- and only there and in
    # the accept loop (the selector thread's own loop on scratch-wsgi).
    assert "next_event()" in parts["Event loop over the connection's events"]
    assert "next_event()" not in parts["Request cycle"]
    # The request cycle is where the application is called, and nowhere else.
    calls = {h for h, src in parts.items() if re.search(r"\.app\(", src)}
    assert calls == {"Request cycle"} or calls == {"Request cycle", "Connection"} and name == "scratch_asgi.py"


@pytest.mark.parametrize("name", ["scratch_wsgi.py", "scratch_asgi.py", "scratch_websocket.py"])
def test_no_protocol_decision_in_a_server_file(name: str) -> None:
    """Status codes, h11, header names and the strict gate are the connection's business (servers/core/)."""
    tree = ast.parse((SERVERS / name).read_text())
    statuses = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is int]
    assert not [s for s in statuses if 100 <= s <= 599 and s not in (500,)], "a status code decided in the server"
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imports & {
        "h11",
        "httptools",
        "wsproto",
        "servers.core.strict",
        "servers.core.head",
        "servers.core.parsers",
    }
    header_names = [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is bytes and n.value.istitle()
    ]
    assert not header_names
