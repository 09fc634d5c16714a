"""The call tree laid out in time: the flame chart's boxes and the Trace Event file.

Theory of operation
-------------------
The profiler (:mod:`layercake.trace.profiler`) keeps a *call tree*, not a log: one node
per distinct call path, with its call count, its inclusive time and -- since it is what
a timeline needs -- the moment the path was first entered (``first_ns``, on the same
clock as the rest of the trace: nanoseconds from the app call).  :func:`spans` turns
each thread's tree into boxes on that clock:

* a node's box starts at its first call and is as long as its total time;
* a child's box lies inside its parent's, after the sibling before it: siblings are
  placed in the order they were first called, each moved right past the previous one
  and, if it would overrun the parent, left just enough to fit (the children's times
  add up to no more than the parent's, so they always fit);
* frames that were already running when the request began (the server's loop, the
  event loop's ``_run_once``: *outer* frames, with no time of their own) span their
  children.

So a box is exact for a path called once -- most of a request -- and, for a path called
several times (``json.dumps`` ×2), its summed time drawn from its first call.  The
chart says so in its caption; the tree's counts are on every box.

:func:`chrome_trace` writes the same boxes in the Trace Event format that Perfetto
(ui.perfetto.dev) and ``chrome://tracing`` open: a JSON object whose ``traceEvents`` are
``"X"`` (complete) events with ``ts`` and ``dur`` in microseconds, ``pid`` and ``tid``,
plus ``"M"`` metadata events naming the process and each thread, and ``"i"`` (instant)
events for the interface calls (``start_response``, ``send``) on the thread that made
them.  The format is Google's "Trace Event Format" document (2016, linked from the
Perfetto docs); it requires complete events on one thread to nest, which the layout
above guarantees.

What it deliberately doesn't do: invent per-call timings the profiler did not keep, or
draw boxes narrower than a pixel (:func:`spans` takes a minimum duration for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from layercake.trace.model import Trace


@dataclass(frozen=True)
class Span:
    thread: str
    thread_id: int
    depth: int  # 0: the outermost frame shown for this thread
    start_ns: int
    dur_ns: int
    label: str
    package: str
    file: str
    line: int
    calls: int
    resumes: int
    kind: str  # "py" | "c"
    outer: bool
    task: str | None

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.dur_ns

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file else "C function"


def _place(
    node: dict[str, Any],
    start: int,
    depth: int,
    thread: dict[str, Any],
    out: list[Span],
    min_ns: int,
    skip_outer: bool,
) -> None:
    dur = max(int(node.get("total_ns") or 0), 0)
    shown = not (skip_outer and node.get("outer"))
    if shown and dur >= min_ns:
        out.append(
            Span(
                thread=thread["name"],
                thread_id=int(thread.get("ident") or 0),
                depth=depth,
                start_ns=start,
                dur_ns=dur,
                label=node["label"],
                package=node["package"],
                file=node.get("file") or "",
                line=int(node.get("line") or 0),
                calls=int(node.get("calls") or 0),
                resumes=int(node.get("resumes") or 0),
                kind=node.get("kind", "py"),
                outer=bool(node.get("outer")),
                task=node.get("task"),
            )
        )
    elif shown:
        return  # too small to draw, and so is everything inside it
    children = sorted(node["children"], key=lambda c: c.get("first_ns") if c.get("first_ns") is not None else start)
    end = start + dur
    remaining = sum(max(int(c.get("total_ns") or 0), 0) for c in children)
    cursor = start
    for child in children:
        child_dur = max(int(child.get("total_ns") or 0), 0)
        first = child.get("first_ns")
        at = max(cursor, first if first is not None else cursor)
        at = max(cursor, min(at, end - remaining))  # leave room for the siblings still to come
        _place(child, at, depth + 1 if shown else depth, thread, out, min_ns, skip_outer)
        cursor = at + child_dur
        remaining -= child_dur


def spans(trace: Trace, min_ns: int = 0, skip_outer: bool = False) -> list[Span]:
    """Every call-tree node of every thread as a box in time (see the module docstring).

    ``min_ns`` drops boxes shorter than that (and their insides); ``skip_outer`` leaves out
    the frames that were already running, so depth 0 is the request's first own call.
    """
    out: list[Span] = []
    for tree in trace.profile.get("threads", []):
        thread = tree["thread"]
        kids = tree["children"]
        starts = [c["first_ns"] for c in kids if c.get("first_ns") is not None]
        start = min(starts) if starts else int(thread.get("first_ns") or 0)
        cursor = start
        for child in sorted(kids, key=lambda c: c.get("first_ns") if c.get("first_ns") is not None else start):
            first = child.get("first_ns")
            at = max(cursor, first if first is not None else cursor)
            _place(child, at, 0, thread, out, min_ns, skip_outer)
            cursor = at + max(int(child.get("total_ns") or 0), 0)
    return out


def _us(ns: int) -> float:
    return round(ns / 1000, 3)


def chrome_trace(trace: Trace) -> dict[str, Any]:
    """The trace's call tree (and interface calls) in the Trace Event format (JSON object form)."""
    pid = int(trace.server_process.get("pid") or 1)
    boxes = spans(trace)
    names = {s.thread: s.thread_id for s in boxes}
    for tree in trace.profile.get("threads", []):
        names.setdefault(tree["thread"]["name"], int(tree["thread"].get("ident") or 0))
    # Small thread ids read better in a viewer than 15-digit pthread identifiers.
    tids = {name: i + 1 for i, name in enumerate(names)}
    title = f"{trace.method} {trace.path} — {trace.layer} on {trace.server}"
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": f"{trace.server} (pid {pid})"}},
        {"name": "process_labels", "ph": "M", "pid": pid, "tid": 0, "args": {"labels": title}},
    ]
    for name, tid in tids.items():
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
    for s in boxes:
        args: dict[str, Any] = {"package": s.package, "where": s.where(), "calls": s.calls}
        if s.resumes:
            args["resumes"] = s.resumes
        if s.task:
            args["task"] = s.task
        if s.outer:
            args["outer"] = "already running when the request began"
        events.append(
            {
                "name": s.label,
                "cat": s.package,
                "ph": "X",
                "ts": _us(s.start_ns),
                "dur": _us(s.dur_ns),
                "pid": pid,
                "tid": tids[s.thread],
                "args": args,
            }
        )
    for call in trace.conversation:
        thread = str(call.get("thread"))
        if thread not in tids:
            tids[thread] = len(tids) + 1
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tids[thread], "args": {"name": thread}})
        message = call.get("message")
        label = call.get("call", "call") + (
            f" {message['type']}" if isinstance(message, dict) and "type" in message else ""
        )
        events.append(
            {
                "name": label,
                "cat": f"interface.{call.get('interface', '')}",
                "ph": "i",
                "s": "t",
                "ts": _us(int(call.get("t_ns") or 0)),
                "pid": pid,
                "tid": tids[thread],
                "args": {"interface": call.get("interface"), "task": call.get("task")},
            }
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "request": f"{trace.method} {trace.path}",
            "layer": trace.layer,
            "server": trace.server,
            "bridge": trace.bridge or "none",
            "clock": "µs from the app call, in the server process; times include the profiler's overhead",
            "aggregation": "one event per distinct call path: its total time, from its first call",
            "created": trace.meta.get("created", ""),
        },
    }
