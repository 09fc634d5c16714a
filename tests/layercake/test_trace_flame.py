"""The call tree in time: the flame chart's layout, the Trace Event file, the package palette."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from layercake.cli import cli
from layercake.trace import render, trace
from layercake.trace.flame import chrome_trace, spans
from layercake.trace.model import Trace
from layercake.trace.packages import PACKAGES, WEB_COLOURS, colour_distance, contrast_ratio, web_colour

REQUIRED = {
    "X": ("name", "ph", "ts", "dur", "pid", "tid"),
    "M": ("name", "ph", "pid", "tid", "args"),
    "i": ("name", "ph", "ts", "pid", "tid"),
}


def check_trace_events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The Trace Event format's rules this file must keep; returns the complete ("X") events.

    Every event has the keys its phase requires; durations and timestamps are numbers and
    not negative; on each thread, complete events nest (a box starting inside another ends
    inside it) -- which is what Perfetto and chrome://tracing need to draw one stack per
    thread -- and every thread used is named by a thread_name metadata event.
    """
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    named: set[tuple[int, int]] = set()
    by_thread: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for event in doc["traceEvents"]:
        assert event["ph"] in REQUIRED, event
        missing = [k for k in REQUIRED[event["ph"]] if k not in event]
        assert not missing, f"{event} lacks {missing}"
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        if event["ph"] == "M" and event["name"] == "thread_name":
            named.add((event["pid"], event["tid"]))
        if event["ph"] in ("X", "i"):
            assert isinstance(event["ts"], int | float) and event["ts"] >= 0, event
        if event["ph"] == "X":
            assert isinstance(event["dur"], int | float) and event["dur"] >= 0, event
            by_thread[(event["pid"], event["tid"])].append(event)
    complete = [e for events in by_thread.values() for e in events]
    for thread, events in by_thread.items():
        assert thread in named, f"thread {thread} has no thread_name event"
        stack: list[float] = []  # end times of the open boxes
        for event in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
            while stack and event["ts"] >= stack[-1] - 1e-6:  # µs with ns decimals: sums in float
                stack.pop()
            end = event["ts"] + event["dur"]
            assert not stack or end <= stack[-1] + 1e-6, f"{event['name']} overlaps its parent on {thread}"
            stack.append(end)
    return complete


def _node(label: str, first: int | None, total: int, *children: dict[str, Any], outer: bool = False) -> dict:
    return {
        "label": label,
        "package": "layer",
        "file": "x.py",
        "line": 1,
        "task": None,
        "kind": "py",
        "outer": outer,
        "calls": 0 if outer else 1,
        "resumes": 0,
        "total_ns": total,
        "self_ns": 0,
        "lines": 1,
        "first_ns": first,
        "children": list(children),
    }


def _trace(tree: list[dict[str, Any]]) -> Trace:
    thread = {"ident": 7, "name": "MainThread", "event_loop": False, "first_ns": 0, "last_ns": 10_000}
    return Trace(
        layer="x",
        interface="wsgi",
        server="s",
        server_interface="wsgi",
        bridge=None,
        native_command="",
        method="GET",
        path="/",
        request_bytes=b"",
        response_bytes=b"",
        response={},
        parser={},
        environ=None,
        scope=None,
        conversation=[],
        profile={"threads": [{"thread": thread, "children": tree, "total_ns": 10_000}]},
        server_process={"pid": 42},
    )


def test_children_sit_inside_their_parent_in_the_order_they_were_first_called():
    # b was first called before a; c's first call (900) would overrun its parent, so it moves left
    tree = [
        _node(
            "server loop",
            100,  # as the profiler writes an outer frame: from its first child, as long as its children
            900,
            _node("app", 100, 900, _node("a", 400, 200), _node("b", 150, 200), _node("c", 900, 300)),
            outer=True,
        )
    ]
    boxes = {s.label: s for s in spans(_trace(tree))}
    assert boxes["server loop"].start_ns == 100 and boxes["server loop"].outer  # outer frames span their children
    assert boxes["b"].start_ns == 150 and boxes["a"].start_ns == 400
    assert boxes["c"].end_ns == boxes["app"].end_ns == 1000  # moved left just enough to fit
    assert [s.depth for s in spans(_trace(tree), skip_outer=True) if s.label == "app"] == [0]
    check_trace_events(chrome_trace(_trace(tree)))


def test_the_check_can_fail_on_overlapping_boxes():
    doc = {
        "traceEvents": [
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "t"}},
            {"name": "a", "ph": "X", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
            {"name": "b", "ph": "X", "ts": 5, "dur": 10, "pid": 1, "tid": 1},
        ]
    }
    with pytest.raises(AssertionError, match="overlaps"):
        check_trace_events(doc)
    doc["traceEvents"][2] = {"name": "b", "ph": "X", "ts": 5, "dur": -1, "pid": 1, "tid": 1}
    with pytest.raises(AssertionError):
        check_trace_events(doc)


@pytest.fixture(scope="module")
def fastapi_trace() -> Trace:
    return trace("fastapi", None, "GET", "/items/1")


def test_chrome_trace_of_a_real_request(fastapi_trace: Trace):
    doc = chrome_trace(fastapi_trace)
    complete = check_trace_events(doc)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    names = {e["name"] for e in complete}
    assert "FastAPI.__call__" in names and "get_item" in names  # the framework, down to the handler
    assert {e["cat"] for e in complete} >= {"fastapi", "starlette", "pydantic", "layer"}
    instants = [e["name"] for e in doc["traceEvents"] if e["ph"] == "i"]
    assert "send() http.response.start" in instants and "send() http.response.body" in instants
    threads = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert set(fastapi_trace.threads()) <= threads


def test_trace_page_leads_with_a_timeline_and_a_flame_chart(fastapi_trace: Trace):
    page = render.trace_html(fastapi_trace)
    assert page.index("class='wf'") < page.index("<svg") < page.index("1. Request bytes")
    assert "get_item" in page.split("<svg", 1)[1].split("</svg>", 1)[0]  # the handler has a box
    assert "<script" not in page and "http" not in page.split("<body>", 1)[0].replace("http://www.w3.org", "")
    body = render.trace_body(fastapi_trace)
    assert body.startswith("<div class='trace'>") and "<html" not in body  # the site frames it itself


def test_chrome_trace_option_writes_the_file(tmp_path: Path):
    out = tmp_path / "t.json"
    result = CliRunner().invoke(cli, ["trace", "bare_wsgi", "GET", "/json", "--chrome-trace", str(out)])
    assert result.exit_code == 0, result.output
    complete = check_trace_events(json.loads(out.read_text()))
    assert any(e["name"] == "app" and e["cat"] == "layer" for e in complete)


def test_package_colours_are_readable_and_distinct():
    colours = {p.name: web_colour(p.name) for p in PACKAGES} | WEB_COLOURS
    for name, colour in colours.items():
        # WCAG 2.x AA for text: 4.5:1 -- as text on white and as the fill behind white labels
        assert contrast_ratio(colour) >= 4.5, f"{name} {colour} is {contrast_ratio(colour):.2f}:1 on white"
    for (a, ca), (b, cb) in itertools.combinations(colours.items(), 2):
        assert colour_distance(ca, cb) >= 20, f"{a} and {b} look alike ({colour_distance(ca, cb):.1f})"
    assert web_colour("flask") != web_colour("werkzeug")
    # the check itself can fail: the old yellows were 1.8:1 and 2.6:1, and close together
    assert contrast_ratio("#e0c000") < 2 and colour_distance("#e0c000", "#b8a000") < 20
