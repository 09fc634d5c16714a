"""The two scratch servers share one skeleton, so that ``diff`` between them teaches the concurrency model."""

from __future__ import annotations

import re
from pathlib import Path

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
