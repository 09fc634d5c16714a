"""Showing a trace: rich renderables for the terminal, one self-contained HTML page.

Theory of operation
-------------------
Both outputs walk the same :class:`~layercake.trace.model.Trace` in the same order --
the six steps, then the per-package and per-thread summaries -- so what the terminal
shows and what the page shows never disagree.  Every call-tree node is coloured by its
package (``packages.PACKAGES`` holds the colours, the legend is generated from it).

Making a tree of thousands of nodes readable:

* ``depth`` limits how deep the tree opens (terminal: how deep it is printed; HTML: which
  ``<details>`` start open -- the rest is there, collapsed);
* except on the way to the layer's own code: the calls that lead from the server to the
  handler are always followed, however deep (FastAPI's handler sits some twenty calls
  down), with their siblings cut at ``depth`` -- the path is the story;
* a run of *outer* frames (already running when the request began: the server's loop,
  the event loop's ``_run_once``) is folded into one line naming them, so depth counts
  the request's own calls;
* builtin C calls (``len``, ``dict.get``) are hidden unless they cost something
  (:data:`C_CALL_MIN_SHARE`) or belong to another package (``socket.send``, pydantic-core);
* a node with many children shows the costliest :data:`MAX_CHILDREN` and a count of the rest.

The HTML page has no JavaScript and no external asset: ``<details>``/``<summary>`` do
the collapsing, one ``<style>`` block does the colours.  It shows before it tells: the
request as a timeline (a waterfall of its milestones) and the call tree as a flame chart
(SVG, laid out by :mod:`layercake.trace.flame`) come first, the tables after them.  Its
body (:func:`trace_body`) is also what the site puts inside its own layout.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from layercake.trace.model import LifespanRecord, ScopeDiff, Trace
from layercake.trace.packages import COLOURS, PACKAGES, WEB_COLOURS, web_colour

DEFAULT_DEPTH = 6
MAX_CHILDREN = 30
C_CALL_MIN_SHARE = 0.01  # a builtin call is shown if it takes at least 1% of its thread's time
RAW_LIMIT = 4096  # bytes of a raw request/response shown in the terminal


# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------


def fmt_ns(ns: int | None) -> str:
    if ns is None:
        return ""
    if abs(ns) < 10_000:
        return f"{ns / 1000:.1f} µs"
    if abs(ns) < 10_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000:.1f} ms"


def show_bytes(raw: bytes, limit: int | None = RAW_LIMIT) -> str:
    """Raw bytes as text with the framing visible: CRLF as ``\\r\\n`` then a line break."""
    shown = raw if limit is None else raw[:limit]
    out = []
    for line in shown.split(b"\n"):
        text = "".join(chr(b) if 32 <= b < 127 or b == 9 else ("\\r" if b == 13 else f"\\x{b:02x}") for b in line)
        out.append(text)
    text = "\\n\n".join(out)
    if limit is not None and len(raw) > limit:
        text += f"\n… {len(raw) - limit} more bytes"
    return text


def _esc(text: str, limit: int) -> str:
    """A latin-1 preview quoted with bytes outside printable ASCII escaped, as show_bytes does."""
    shown = "".join(
        c if 32 <= ord(c) < 127 else {"\r": "\\r", "\n": "\\n", "\t": "\\t"}.get(c, f"\\x{ord(c):02x}")
        for c in text[:limit]
    )
    return f"'{shown}'" + ("…" if len(text) > limit else "")


def _event_detail(event: dict[str, Any]) -> str:
    """One line for a parser or conversation event: what it carried."""
    parts = []
    message = event.get("message")
    if isinstance(message, dict):
        for key, value in message.items():
            if key == "type":
                continue
            if isinstance(value, dict) and "size" in value:
                parts.append(f"{key}={value['size']} B {_esc(value['preview'], 60)}")
            elif key == "headers":
                parts.append(f"headers={len(value)}")
            else:
                parts.append(f"{key}={json.dumps(value)[:60]}")
    for key in (
        "method",
        "target",
        "url",
        "header",
        "status_code",
        "status",
        "reason",
        "rule",
        "http_version",
        "requestline",
        "body",
        "framing",
        "last",
    ):
        if event.get(key) not in (None, ""):
            parts.append(f"{key}={event[key]}")
    if "headers" in event and event.get("call") != "start_response":
        parts.append(f"{len(event['headers'])} headers")
    elif event.get("call") == "start_response":
        parts.append("headers=" + ", ".join(f"{k}: {v}" for k, v in event["headers"]))
    value = event.get("data")
    if isinstance(value, dict) and value.get("size"):
        parts.append(f"data={value['size']} B {_esc(value['preview'], 48)}")
    value = event.get("produced")
    if isinstance(value, dict) and value.get("size"):
        parts.append(f"→ {value['size']} B on the wire")
    if event.get("error"):
        parts.append(f"error={event['error']}")
    return "  ".join(parts)


def _event_name(event: dict[str, Any]) -> str:
    name = event.get("call") or event.get("op") or event.get("kind", "")
    message = event.get("message")
    if isinstance(message, dict) and "type" in message:
        name += f" {message['type']}"
    if (
        event.get("event")
        and not (event.get("op") or "").endswith(event["event"])
        and event.get("op") != "parse_request"
    ):
        name += f" → {event['event']}" if event.get("op") == "next_event" else f" {event['event']}"
    return name


def _where(event: dict[str, Any]) -> str:
    return event.get("thread") or "" if not event.get("task") else f"{event.get('thread')} / {event['task']}"


def _visible_children(node: dict[str, Any], thread_ns: int) -> tuple[list[dict[str, Any]], int]:
    """The children worth showing (see module doc) and how many were left out."""
    kids = [
        c
        for c in node["children"]
        if c["kind"] != "c" or c["package"] != node["package"] or c["total_ns"] >= thread_ns * C_CALL_MIN_SHARE
    ]
    hidden = len(node["children"]) - len(kids)
    if len(kids) > MAX_CHILDREN:
        keep = sorted(kids, key=lambda c: -c["total_ns"])[:MAX_CHILDREN]
        kept = {id(c) for c in keep}
        hidden += len(kids) - MAX_CHILDREN
        kids = [c for c in kids if id(c) in kept]
    return kids, hidden


def _fold_outer(node: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Follow a run of outer frames with one child each; their labels and the node it ends on."""
    chain: list[str] = []
    while node.get("outer") and len(node["children"]) == 1:
        chain.append(node["label"])
        node = node["children"][0]
    return chain, node


def _node_text(node: dict[str, Any]) -> tuple[str, str]:
    """(package, description) of one call-tree node."""
    counts = []
    if node["calls"]:
        counts.append(f"×{node['calls']}")
    if node["resumes"]:
        counts.append(f"resumed {node['resumes']}")
    where = f"{node['file']}:{node['line']}" if node["file"] else "C"
    timing = "" if node["outer"] else f"{fmt_ns(node['total_ns'])} (self {fmt_ns(node['self_ns'])})"
    return node["package"], f"{node['label']}  {' '.join(counts)}  {timing}  {where}".replace("    ", "  ")


# ---------------------------------------------------------------------------------------
# Terminal (rich)
# ---------------------------------------------------------------------------------------


def _styled(package: str, text: str, task: str | None = None, outer: bool = False) -> Text:
    colour = COLOURS.get(package, "white")
    out = Text()
    out.append(f"{package:<9} ", style=f"bold {colour}")
    out.append(text, style="dim" if outer else colour)
    if task:
        out.append(f"  [task {task}]", style="italic dim")
    return out


def _to_layer(tree: dict[str, Any]) -> set[int]:
    """ids of the nodes on a path to the layer's own code (those are always expanded)."""
    found: set[int] = set()

    def walk(node: dict[str, Any]) -> bool:
        hit = node.get("package") == "layer" and node.get("kind") == "py"
        for child in node["children"]:
            hit = walk(child) or hit
        if hit:
            found.add(id(node))
        return hit

    walk(tree)
    return found


def _add_tree(
    branch: Tree, node: dict[str, Any], depth: int, thread_ns: int, parent_task: str | None, path: set[int]
) -> None:
    chain, node = _fold_outer(node)
    if chain:
        label = " → ".join(chain[-6:])
        more = f"{len(chain) - 6} more → " if len(chain) > 6 else ""
        branch = branch.add(Text(f"(already running when the request began) {more}{label}", style="dim"))
    package, text = _node_text(node)
    task = node["task"] if node["task"] != parent_task else None
    sub = branch.add(_styled(package, text, task, node["outer"]))
    kids, hidden = _visible_children(node, thread_ns)
    if depth <= 1:
        onward = [c for c in kids if id(c) in path]
        cut = _count(node) - 1 - sum(_count(c) for c in onward)
        for child in onward:
            _add_tree(sub, child, 1, thread_ns, node["task"], path)
        if cut > 0:
            sub.add(Text(f"… {cut} calls below (raise --depth)", style="dim"))
        return
    for child in kids:
        _add_tree(sub, child, depth - 1, thread_ns, node["task"], path)
    if hidden:
        sub.add(Text(f"… {hidden} builtin or minor calls not shown", style="dim"))


def _count(node: dict[str, Any]) -> int:
    return 1 + sum(_count(c) for c in node["children"])


def call_tree(trace: Trace, depth: int = DEFAULT_DEPTH) -> RenderableType:
    root = Tree(Text("call tree (per thread; times include profiler overhead)", style="bold"))
    for thread in trace.profile.get("threads", []):
        info = thread["thread"]
        kind = "event loop" if info.get("event_loop") else "thread"
        branch = root.add(
            Text(
                f"{kind} {info['name']}  {fmt_ns(thread['total_ns'])} profiled, "
                f"t={fmt_ns(info['first_ns'])} … {fmt_ns(info['last_ns'])}",
                style="bold reverse",
            )
        )
        path = _to_layer(thread)
        for child in thread["children"]:
            _add_tree(branch, child, depth, max(thread["total_ns"], 1), None, path)
    return root


def legend() -> Text:
    out = Text("packages: ")
    for package in PACKAGES:
        out.append(f" {package.name} ", style=f"bold {package.colour}")
    return out


def package_table(trace: Trace) -> Table:
    packages = trace.packages()
    total = sum(p["self_ns"] for p in packages.values()) or 1
    table = Table(title="work per package (self time: time in the package's own frames)", title_justify="left")
    for col in ("package", "calls", "distinct lines seen", "self time", "share"):
        table.add_column(col, justify="left" if col == "package" else "right", overflow="fold")
    order = [p.name for p in PACKAGES]
    for name in sorted(packages, key=lambda n: order.index(n) if n in order else len(order)):
        p = packages[name]
        table.add_row(
            Text(name, style=f"bold {COLOURS.get(name, 'white')}"),
            str(p["calls"]),
            str(p["lines"]),
            fmt_ns(p["self_ns"]),
            f"{100 * p['self_ns'] / total:.1f}%",
        )
    return table


def thread_table(trace: Trace) -> Table:
    table = Table(
        title=f"threads and tasks ({trace.profile.get('switch_count', 0)} hand-overs between them)",
        title_justify="left",
    )
    for col in ("thread", "runs", "first event", "last event", "profiled time"):
        table.add_column(col, overflow="fold")
    for thread in trace.profile.get("threads", []):
        info = thread["thread"]
        table.add_row(
            info["name"],
            "an asyncio event loop" if info.get("event_loop") else "plain thread",
            fmt_ns(info["first_ns"]),
            fmt_ns(info["last_ns"]),
            fmt_ns(thread["total_ns"]),
        )
    return table


def _hops(trace: Trace) -> list[str]:
    """Hand-overs between threads (not between tasks of one loop), for the summary line."""
    out, last = [], None
    for switch in trace.profile.get("switches", []):
        if switch["thread"] != last:
            out.append(f"{fmt_ns(switch['t_ns'])} → {switch['thread']}")
            last = switch["thread"]
    return out


def hop_lines(trace: Trace) -> list[str]:
    """Every thread hop of the request, one line each: when, to which thread, handed by what, doing what."""
    out = []
    for hop in trace.profile.get("hops", []):
        source = f"{hop['from']} → " if hop.get("from") else ""
        handed = f" via {hop['via']}" if hop.get("via") else ""
        if hop.get("handed_by"):
            handed += " from " + " ← ".join(hop["handed_by"])
        out.append(f"{fmt_ns(hop['t_ns'])}  {source}{hop['to']}{handed}: runs {', '.join(hop['work'])}")
    return out


def _timeline_rows(trace: Trace) -> list[list[str]]:
    rows = []
    for row in trace.timeline():
        if row["source"] == "parser" and row.get("event") in ("NEED_DATA", "need more bytes"):
            continue  # the parser asking for more is in step 2; the timeline keeps what moved the request on
        what = _event_name(row) if row["source"] in ("parser", "interface") else row["call"]
        detail = row.get("label", "") if row["source"] == "call tree" else ""
        rows.append([fmt_ns(row["t_ns"]), row["source"], what, _where(row), detail])
    return rows


def timeline_table(trace: Trace) -> Table:
    """The request's path in one clock: parser → interface → packages → interface → parser."""
    table = Table(
        title="0. the request's path, in time (t relative to the app call, in the server process)", title_justify="left"
    )
    for col in ("t", "seen by", "what", "thread / task", "first function"):
        table.add_column(col, overflow="fold")
    for row in _timeline_rows(trace):
        style = COLOURS.get(row[2].removeprefix("first call into "), None) if row[1] == "call tree" else None
        table.add_row(*row, style=style)
    return table


def render_trace(trace: Trace, depth: int = DEFAULT_DEPTH) -> RenderableType:
    """The whole trace as one rich renderable, the six steps in order."""
    status = trace.response.get("status")
    head = Table.grid(padding=(0, 2))
    head.add_row("request", f"{trace.method} {trace.path}")
    head.add_row("app" if ":" in trace.layer else "layer", f"{trace.layer} ({trace.interface.upper()})")
    head.add_row("server", f"{trace.server} ({trace.server_interface.upper()}, parser: {trace.parser.get('name')})")
    if trace.bridge:
        head.add_row("bridge", f"{trace.bridge}: a2wsgi (servers/bridges.py); recorded on both sides")
    head.add_row("untraced", trace.native_command)
    head.add_row(
        "answer",
        f"{status} {trace.response.get('reason', '')}, {len(trace.response.get('body', ''))} B body, "
        f"{trace.response.get('framing')}",
    )
    if not trace.server_process.get("app_called", True):
        head.add_row("app", "NEVER CALLED: the server answered by itself (see the parser's events)")
    head.add_row(
        "warm-up",
        f"{trace.warmup} request(s) before this one"
        + (" (this is the very first request)" if not trace.warmup else ""),
    )
    parts: list[RenderableType] = [Panel(head, title=f"layercake trace: {trace.layer} on {trace.server}")]
    parts.append(timeline_table(trace))

    parts.append(Panel(Text(show_bytes(trace.request_bytes)), title="1. request bytes, as sent"))

    parser_events = trace.parser.get("events") or []
    if parser_events:
        table = Table(title=f"2. parser events: {trace.parser.get('note')}", title_justify="left")
        for col in ("t (vs app call)", "call", "states (ours/theirs)", "detail"):
            table.add_column(col, overflow="fold")  # folded, never cut with "…", at 80 columns
        for event in parser_events:
            states = "/".join(event[k] for k in ("our_state", "their_state") if k in event)
            table.add_row(fmt_ns(event["t_ns"]), _event_name(event), states, _event_detail(event))
        parts.append(table)
    else:
        parts.append(Panel(Text(trace.parser.get("note", "")), title=f"2. parser: {trace.parser.get('name')}"))

    if not trace.server_process.get("app_called", True):
        parts.append(
            Panel(
                Text(
                    "The server answered without calling the application: no environ or scope was "
                    "built, no interface call was made, no framework code ran.  The parser's events "
                    "above say why; the answer is below."
                ),
                title="3-5. the application: never called",
            )
        )
        parts.append(Panel(Text(show_bytes(trace.response_bytes)), title="6. response bytes, as received"))
        return Group(*parts)

    for interface, view in (("scope", trace.scope), ("environ", trace.environ)):
        if view is None:
            continue
        to = "the layer" if (interface == "scope") == (trace.interface == "asgi") else "the bridge, by the server"
        table = Table(title=f"3. the {interface} handed to {to}", title_justify="left", show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in view.items():
            table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
        parts.append(table)

    table = Table(title="4. the interface conversation", title_justify="left")
    for col in ("t", "returned", "interface", "call", "thread / task", "detail"):
        table.add_column(col, overflow="fold")
    for event in trace.conversation:
        table.add_row(
            fmt_ns(event["t_ns"]),
            fmt_ns(event.get("returned_ns")),
            event["interface"],
            _event_name(event),
            _where(event),
            _event_detail(event),
        )
    parts.append(table)

    if trace.profile.get("threads"):
        parts += [
            Text("5. ", style="bold") + legend(),
            call_tree(trace, depth),
            package_table(trace),
            thread_table(trace),
        ]
    else:
        parts.append(Text("5. call tree: not recorded (--no-profile); the timestamps above are undisturbed"))
    hops = _hops(trace)
    if len(hops) > 1:
        parts.append(Text("thread hand-overs: " + ";  ".join(hops[:12]) + (" …" if len(hops) > 12 else "")))
    if "hop_count" in trace.profile:
        parts.append(Text(f"thread hops (work handed to another thread): {trace.profile['hop_count']}", style="bold"))
        parts += [Text("  " + line) for line in hop_lines(trace)]
    parts.append(Panel(Text(show_bytes(trace.response_bytes)), title="6. response bytes, as received"))
    if trace.response.get("websocket") is not None:
        parts.append(Text("WebSocket, as the client saw it: " + ", ".join(_ws_summary(trace.response["websocket"]))))
    return Group(*parts)


def _ws_summary(frames: list[dict[str, Any]]) -> list[str]:
    out = []
    for frame in frames:
        detail = next((frame[k] for k in ("data", "code", "status_code") if k in frame), None)
        out.append(frame["event"] if detail is None else f"{frame['event']} {detail!r}")
    return out


def render_scope_diff(diff: ScopeDiff, only_differences: bool = False) -> RenderableType:
    table = Table(
        title=f"{diff.method} {diff.path} on {diff.layer}: what each server handed the "
        f"{'app' if ':' in diff.layer else 'layer'} (differences in bold)",
        title_justify="left",
    )
    # The key is what a reader looks up: whole, on one line, whatever the width.
    table.add_column(
        "key",
        style="bold",
        no_wrap=True,
        overflow="ignore",
        min_width=max(len(r["key"]) for r in diff.rows or [{"key": "key"}]),
    )
    for server in diff.servers:
        table.add_column(f"{server} ({diff.interfaces[server]})", overflow="fold")
    for row in diff.rows:
        if only_differences and not row["differs"]:
            continue
        style = "bold yellow" if row["differs"] else "dim"
        cells = [Text(v if isinstance(v, str) else json.dumps(v), style=style) for v in row["values"].values()]
        table.add_row(Text(row["key"], style=style), *cells)
    order = Table(title="header order as the app saw it", title_justify="left")
    order.add_column("server", no_wrap=True)
    order.add_column("headers", overflow="fold")
    for server, names in diff.header_order.items():
        order.add_row(server, ", ".join(names))
    summary = Text(
        f"{len(diff.differing)} of {len(diff.rows)} keys differ: {', '.join(diff.differing[:20])}"
        + (" …" if len(diff.differing) > 20 else "")
    )
    return Group(table, order, summary)


def render_lifespan(record: LifespanRecord) -> RenderableType:
    head = Table.grid(padding=(0, 2))
    head.add_row("layer", f"{record.layer} ({record.interface.upper()})")
    head.add_row("server", record.server + (f" via the {record.bridge} bridge" if record.bridge else ""))
    own = (
        "the layer's own lifespan handling"
        if record.interface == "asgi" or record.bridge is None
        # A WSGI layer has no lifespan: on an ASGI server the bridge answers the lifespan scope for it.
        else f"none of the layer's: WSGI has no lifespan, the {record.bridge} bridge acknowledges it"
    )
    head.add_row(
        "app behaviour",
        {
            "pass": own,
            "unsupported": "simulated: raises on the lifespan scope",
            "fail-startup": "simulated: answers lifespan.startup.failed",
        }[record.mode],
    )
    head.add_row("started", "yes" if record.started else "no: the server refused to start")
    status = record.exit_status
    if status is not None and status < 0:
        import signal

        shown = f"{status} (ended by {signal.Signals(-status).name}: the server re-raised the signal after its graceful stop)"
    elif status is None:  # never "None" at a reader: say what it means
        shown = "not recorded (the process had not exited when the record was taken)"
    else:
        shown = str(status)
    head.add_row("exit status", shown)
    table = Table(title="what happened, in order", title_justify="left")
    for col in ("t", "process / thread", "event", "detail"):
        table.add_column(col, overflow="fold")
    for event in record.events:
        detail = _event_detail(event)
        if event.get("state") not in (None, {}):
            detail += f"  state={json.dumps(event['state'])[:80]}"
        if event.get("kind") == "app(scope) called":
            detail = f"scope={json.dumps(event.get('scope'))[:100]}"
        table.add_row(
            fmt_ns(event["t_ns"]), f"{event.get('pid', '')} {event.get('thread') or ''}", _event_name(event), detail
        )
    parts: list[RenderableType] = [Panel(head, title=f"layercake lifespan: {record.layer} on {record.server}"), table]
    for line in lifespan_findings(record):
        parts.append(Text("• " + line))
    tail = "\n".join(record.server_output.strip().splitlines()[-12:])
    if tail:
        parts.append(Panel(Text(tail), title="server output (last lines)"))
    return Group(*parts)


def lifespan_findings(record: LifespanRecord) -> list[str]:
    """Plain sentences about the record: what the spec predicts and what happened."""
    kinds = record.kinds()
    out = []
    if record.interface == "wsgi" and not record.bridge:
        out.append(
            "WSGI has no lifespan protocol (PEP 3333 defines only the per-request call): setup happens "
            "at import ('app loaded'), and the only shutdown hook is the process exiting."
        )
    if not any(k.startswith("app(scope) called") for k in kinds) and record.interface == "asgi":
        out.append("no lifespan scope reached the app: this server (or bridge) does not run the lifespan protocol.")
    startup = next((i for i, k in enumerate(kinds) if "lifespan.startup.complete" in k), None)
    request = next((i for i, k in enumerate(kinds) if k.startswith("request ")), None)
    shutdown = next((i for i, k in enumerate(kinds) if "lifespan.shutdown.complete" in k), None)
    if startup is not None and request is not None:
        out.append(f"startup completed {'before' if startup < request else 'AFTER'} the first request.")
    if shutdown is not None:
        out.append("shutdown ran at exit (lifespan.shutdown → lifespan.shutdown.complete).")
    elif startup is not None and record.started:
        out.append(
            "startup ran but no lifespan.shutdown was ever sent: the process ended"
            + (f" (exit status {record.exit_status})" if record.exit_status is not None else "")
            + " without telling the app -- a store closed at shutdown is never closed."
        )
    if "app raised" in kinds and record.started:
        out.append(
            "the app raised on the lifespan scope; per the ASGI lifespan spec the server carried on "
            "without lifespan events."
        )
    if any("lifespan.startup.failed" in k for k in kinds):
        out.append(
            "the app reported lifespan.startup.failed; the spec says the server should log it and exit"
            + (" -- and it did not start." if not record.started else " -- but it started anyway.")
        )
    return out


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------
# One body, two frames: :func:`trace_body` is the page's content, classes only; the site
# puts it in its own layout (navigation, stylesheet), :func:`trace_html` in a standalone
# page with :data:`TRACE_CSS` inlined.  Pictures first -- the timeline and the flame
# chart -- then the tables they summarise, folded or below.

#: The trace's own styles, scoped under ``.trace`` so they sit inside the site's stylesheet.
TRACE_CSS = """
.trace pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font:12px/1.4 ui-monospace,monospace}
.trace table.t{border-collapse:collapse;font-size:12.5px;margin:.4em 0 1em}
.trace table.t td,.trace table.t th{border:1px solid #d8dee4;padding:2px 6px;vertical-align:top;text-align:left}
.trace td.v{font-family:ui-monospace,monospace;word-break:break-all}
.trace td.k{font-family:ui-monospace,monospace;white-space:nowrap}
.trace .tree details{margin-left:1.1em}
.trace .tree summary{font-family:ui-monospace,monospace;font-size:12.5px;cursor:pointer;white-space:nowrap}
.trace .tree summary.leaf{list-style:none}.trace .outer{opacity:.7}.trace .task{font-style:italic;color:#59636e}
.trace .pkg{display:inline-block;min-width:6.5em;font-weight:bold}
.trace .legend span{display:inline-block;margin:0 .3em .3em 0;padding:0 .45em;border-radius:3px;color:#fff;
font-size:12px;font-weight:600}
.trace .dim{color:#59636e}.trace .diff{background:#fff3c4;font-weight:bold}
.trace .summary td:first-child{color:#59636e;white-space:nowrap}
.trace .wf{font-size:12px;margin:.5em 0 1em;max-width:100%}
.trace .wf-row{display:grid;grid-template-columns:24rem 1fr;align-items:center;min-height:18px;
border-bottom:1px solid #eef1f4}
.trace .wf-row.head{border-bottom:1px solid #8c959f;color:#59636e}
.trace .wf-label{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding-right:.6em;
font-family:ui-monospace,monospace}
.trace .wf-label .src{display:inline-block;min-width:5.5em;color:#59636e;font-family:system-ui,sans-serif}
.trace .wf-track{position:relative;height:16px;background:repeating-linear-gradient(90deg,transparent 0,
transparent calc(25% - 1px),#eef1f4 calc(25% - 1px),#eef1f4 25%)}
.trace .wf-bar{position:absolute;top:3px;height:10px;min-width:3px;border-radius:2px}
.trace .wf-tick{position:absolute;top:0;height:16px;width:2px}
.trace .wf-t{position:absolute;top:0;font-size:11px;color:#1f2328;white-space:nowrap;padding-left:5px}
.trace .wf-t.left{padding:0 5px 0 0}
.trace .wf-t.in{margin-left:6px;padding:0 4px;background:rgba(31,35,40,.8);color:#fff;border-radius:2px;top:1px;
line-height:14px}
.trace .wf-axis{position:relative;height:16px}
.trace .wf-axis span{position:absolute;top:0;font-size:11px;color:#59636e;transform:translateX(-50%);white-space:nowrap}
.trace .wf-axis span:first-child{transform:none}.trace .wf-axis span:last-child{transform:translateX(-100%)}
.trace figure.flame{margin:.4em 0 1.2em}.trace figure.flame svg{display:block;width:100%;height:auto}
.trace figure.flame figcaption,.trace .caption{color:#59636e;font-size:13px;margin:.2em 0 .6em}
.trace svg text{font:11px ui-monospace,"DejaVu Sans Mono",monospace;fill:#fff;pointer-events:none}
.trace svg text.axis{fill:#59636e;font-family:system-ui,sans-serif}
.trace svg rect.box{stroke:#fff;stroke-width:.6}
.trace svg rect.outer{opacity:.55}
"""

_STANDALONE_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1240px;padding:0 1em;color:#1f2328}
h1{font-size:1.4em}.trace h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #d8dee4}
"""


def package_css() -> str:
    """One text class (``.p-NAME``) and one fill class (``.f-NAME``) per package, from WEB_COLOURS."""
    names = [p.name for p in PACKAGES] + [n for n in WEB_COLOURS if n not in {p.name for p in PACKAGES}]
    text = "".join(f".p-{n}{{color:{web_colour(n)}}}" for n in names)
    fill = "".join(f".f-{n}{{background:{web_colour(n)};fill:{web_colour(n)}}}" for n in names)
    return text + fill + "\n"


def _page(title: str, body: Iterable[str]) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STANDALONE_CSS}{TRACE_CSS}{package_css()}</style></head><body><h1>{html.escape(title)}</h1>"
        + "".join(body)
        + "</body></html>\n"
    )


def _table(headers: list[str], rows: Iterable[list[str]], raw: bool = False, cls: str = "t") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers) if any(headers) else ""
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='{'k' if i == 0 else 'v'}'>{c if raw else html.escape(c)}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table class='{cls}'>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _html_node(
    node: dict[str, Any], depth: int, open_depth: int, thread_ns: int, parent_task: str | None, path: set[int]
) -> str:
    chain, node = _fold_outer(node)
    prefix = ""
    if chain:
        prefix = f"<div class='dim'>(already running when the request began) {html.escape(' → '.join(chain))}</div>"
    package, text = _node_text(node)
    task = node["task"] if node["task"] != parent_task else None
    label = (
        f"<span class='pkg p-{package}'>{package}</span><span class='p-{package}"
        f"{' outer' if node['outer'] else ''}'>{html.escape(text)}</span>"
        + (f" <span class='task'>[task {html.escape(task)}]</span>" if task else "")
    )
    kids, hidden = _visible_children(node, thread_ns)
    if not kids:
        return f"{prefix}<details><summary class='leaf'>{label}</summary></details>"
    inner = "".join(_html_node(c, depth + 1, open_depth, thread_ns, node["task"], path) for c in kids)
    if hidden:
        inner += f"<div class='dim' style='margin-left:1.1em'>… {hidden} builtin or minor calls not shown</div>"
    opened = depth < open_depth or id(node) in path
    return f"{prefix}<details{' open' if opened else ''}><summary>{label}</summary>{inner}</details>"


def legend_html() -> str:
    return (
        "<p class='legend'>"
        + "".join(
            f"<span class='f-{p.name}' title='{html.escape(p.description)}'>{html.escape(p.name)}</span>"
            for p in PACKAGES
        )
        + "</p>"
    )


# -- the timeline: the request's path as a waterfall ----------------------------------

_SOURCE_PACKAGE = {"parser": "server", "interface": "trace", "threads": "stdlib"}


def _pct(t: int, lo: int, span: int) -> float:
    return round(100 * (t - lo) / span, 3)


def _stamp(text: str, after: float, before: float) -> str:
    """The time beside a mark: right of it, or left of it when it is near the right edge."""
    if after > 70 and before < 25:  # a bar across the track: the time goes on it, as a label
        return f"<span class='wf-t in' style='left:{before}%'>{html.escape(text)}</span>"
    if after > 70:
        return f"<span class='wf-t left' style='right:{round(100 - before, 3)}%'>{html.escape(text)}</span>"
    return f"<span class='wf-t' style='left:{after}%'>{html.escape(text)}</span>"


def timeline_html(trace: Trace) -> str:
    """The request's path in one clock, drawn: one row per milestone, a bar where it took time.

    Rows are the timeline's (parser events, interface calls, the first call into each
    package, the first work in each thread) plus each thread's span of activity; a bar's
    left edge is when it happened, its width how long it lasted (an interface call until
    it returned, a thread from its first to its last profiled event).
    """
    rows: list[tuple[str, str, str, int, int | None, str]] = []  # source, what, package, t, end, title
    for tree in trace.profile.get("threads", []):
        info = tree["thread"]
        kind = "event loop" if info.get("event_loop") else "thread"
        rows.append(
            (
                "thread",
                f"{kind} {info['name']}",
                "stdlib",
                int(info["first_ns"]),
                int(info["last_ns"]),
                f"{kind} {info['name']}: first event {fmt_ns(info['first_ns'])}, last {fmt_ns(info['last_ns'])}",
            )
        )
    for row in trace.timeline():
        if row["source"] == "parser" and row.get("event") in ("NEED_DATA", "need more bytes"):
            continue
        if row["source"] == "call tree":
            package = row.get("package", "other")
            what = f"{row['call']}: {row.get('label', '')}"
        else:
            package = _SOURCE_PACKAGE.get(row["source"], "other")
            what = _event_name(row) if row["source"] in ("parser", "interface") else row["call"]
        end = row.get("returned_ns") if row["source"] == "interface" else None
        detail = _event_detail(row) if row["source"] in ("parser", "interface") else ""
        title = f"t={fmt_ns(row['t_ns'])}  {row['source']}: {what}  {_where(row)}  {detail}".strip()
        rows.append((row["source"], what, package, int(row["t_ns"]), int(end) if end is not None else None, title))
    if not rows:
        return "<p class='dim'>Nothing was timed.</p>"
    lo = min(r[3] for r in rows)
    hi = max(max(r[3], r[4] or r[3]) for r in rows)
    span = max(hi - lo, 1)
    axis = "".join(f"<span style='left:{q}%'>{fmt_ns(lo + span * q // 100)}</span>" for q in (0, 25, 50, 75, 100))
    out = [
        "<div class='wf' role='img' aria-label='the request in time'>",
        f"<div class='wf-row head'><div class='wf-label'>t = 0 is the app call</div><div class='wf-axis'>{axis}"
        "</div></div>",
    ]
    for source, what, package, t, end, title in rows:
        left = _pct(t, lo, span)
        if end is not None and end > t:
            mark = f"<span class='wf-bar f-{package}' style='left:{left}%;width:{max(_pct(end, lo, span) - left, 0.3)}%'></span>"
            stamp_at = _pct(end, lo, span)
            stamp = f"{fmt_ns(t)} (+{fmt_ns(end - t)})"
        else:
            mark = f"<span class='wf-tick f-{package}' style='left:{left}%'></span>"
            stamp_at, stamp = left, fmt_ns(t)
        out.append(
            f"<div class='wf-row' title='{html.escape(title)}'><div class='wf-label'><span class='src'>"
            f"{html.escape(source)}</span><span class='p-{package}'>{html.escape(what)}</span></div>"
            f"<div class='wf-track'>{mark}{_stamp(stamp, stamp_at, left)}"
            "</div></div>"
        )
    out.append("</div>")
    return "".join(out)


# -- the flame chart: the call tree laid out in time --------------------------------------

FLAME_WIDTH = 1200  # SVG user units; the chart is scaled to the page's width
FLAME_ROW = 17
FLAME_MAX_DEPTH = 60
_CHAR_W = 6.7  # a monospace character at 11px


def flame_html(trace: Trace) -> str:
    """One SVG per thread: a box per call, x = time (shared by all threads), y = depth."""
    from layercake.trace.flame import spans

    everything = spans(trace, skip_outer=True)
    if not everything:
        return "<p class='dim'>No call tree was recorded (--no-profile).</p>"
    lo = min(s.start_ns for s in everything)
    hi = max(s.end_ns for s in everything)
    span = max(hi - lo, 1)
    scale = FLAME_WIDTH / span
    min_ns = span / FLAME_WIDTH / 2  # half a unit: narrower boxes would not show
    out = []
    for thread in dict.fromkeys(s.thread for s in everything):
        boxes = [s for s in everything if s.thread == thread and s.dur_ns >= min_ns and s.depth < FLAME_MAX_DEPTH]
        if not boxes:
            continue
        depth = max(s.depth for s in boxes) + 1
        height = 18 + depth * FLAME_ROW
        parts = [
            f"<svg viewBox='0 0 {FLAME_WIDTH} {height}' xmlns='http://www.w3.org/2000/svg' role='img' "
            f"aria-label='flame chart of thread {html.escape(thread)}'>"
        ]
        for q in (0, 25, 50, 75, 100):
            x = FLAME_WIDTH * q / 100
            anchor = "start" if q == 0 else "end" if q == 100 else "middle"
            parts.append(f"<line x1='{x}' y1='14' x2='{x}' y2='{height}' stroke='#eef1f4'/>")
            parts.append(
                f"<text class='axis' x='{x}' y='11' text-anchor='{anchor}'>{fmt_ns(int(lo + span * q / 100))}</text>"
            )
        for s in boxes:
            x = (s.start_ns - lo) * scale
            w = max(s.dur_ns * scale, 0.5)
            y = 18 + s.depth * FLAME_ROW
            counts = f" ×{s.calls}" if s.calls > 1 else ""
            tip = f"{s.label}{counts} — {s.package}, {fmt_ns(s.dur_ns)} from t={fmt_ns(s.start_ns)}; {s.where()}" + (
                f"; task {s.task}" if s.task else ""
            )
            parts.append(
                f"<g><title>{html.escape(tip)}</title><rect class='box f-{s.package}' x='{x:.2f}' y='{y}' "
                f"width='{w:.2f}' height='{FLAME_ROW - 1}'/>"
            )
            room = int((w - 6) / _CHAR_W)
            if room >= 3:
                text = s.label + counts
                text = text if len(text) <= room else text[: room - 1] + "…"
                parts.append(f"<text x='{x + 3:.2f}' y='{y + 12}'>{html.escape(text)}</text>")
            parts.append("</g>")
        parts.append("</svg>")
        info = next(t["thread"] for t in trace.profile["threads"] if t["thread"]["name"] == thread)
        kind = "event loop" if info.get("event_loop") else "thread"
        out.append(
            f"<figure class='flame'><figcaption><b>{kind} {html.escape(thread)}</b> — {len(boxes)} calls drawn, "
            f"{depth} deep</figcaption>{''.join(parts)}</figure>"
        )
    return "".join(out)


def trace_body(trace: Trace, depth: int = DEFAULT_DEPTH) -> str:
    """The trace page's content (no frame): summary, pictures, then each step's detail."""
    r = trace.response
    body = [
        "<div class='trace'>",
        _table(
            ["", ""],
            [
                ["request", f"{trace.method} {trace.path}"],
                ["app" if ":" in trace.layer else "layer", f"{trace.layer} ({trace.interface.upper()})"],
                ["server", f"{trace.server} ({trace.server_interface.upper()}, parser: {trace.parser.get('name')})"],
                ["bridge", trace.bridge or "none"],
                ["untraced command", trace.native_command],
                ["answer", f"{r.get('status')} {r.get('reason', '')}, {len(r.get('body', ''))} B, {r.get('framing')}"],
                ["warm-up requests", str(trace.warmup)],
                [
                    "recorded",
                    f"{trace.meta.get('created', '')} on {trace.meta.get('host', '')}, "
                    f"Python {trace.meta.get('python', '')}",
                ],
            ],
            cls="t summary",
        ),
        "<h2>0. The request's path, in time</h2>",
        "<p class='caption'>Each row is one milestone on the server process's clock, with the app call at "
        "t = 0: the parser's events, the interface calls (a bar lasts until the call returned), the first call "
        "into each package and each thread's span of work. Hover a row for its detail.</p>",
        timeline_html(trace),
        "<details><summary>the same, as a table</summary>",
        _table(["t (vs app call)", "seen by", "what", "thread / task", "first function"], _timeline_rows(trace)),
        "</details>",
    ]
    if trace.profile.get("threads"):
        body += [
            "<h2>The call tree as a flame chart</h2>",
            legend_html(),
            "<p class='caption'>Time runs left to right on the same clock as above, in every thread; each box is a "
            "call, the boxes under it the calls it made, coloured by package. A call path taken more than once "
            "(×N) is one box: its total time, from its first call. Frames already running when the request began "
            "(the server's loop) are left out; the tree in step 5 has them. Times include the profiler's overhead. "
            "Hover a box for its file and line.</p>",
            flame_html(trace),
        ]
    body += [
        "<h2>1. Request bytes, as sent</h2>",
        f"<pre>{html.escape(show_bytes(trace.request_bytes, None))}</pre>",
        f"<h2>2. Parser ({html.escape(str(trace.parser.get('name')))})</h2>",
        f"<p>{html.escape(trace.parser.get('note', ''))}</p>",
    ]
    if trace.parser.get("events"):
        body.append(
            _table(
                ["t vs app call", "call", "states", "detail"],
                [
                    [
                        fmt_ns(e["t_ns"]),
                        _event_name(e),
                        "/".join(e[k] for k in ("our_state", "their_state") if k in e),
                        _event_detail(e),
                    ]
                    for e in trace.parser["events"]
                ],
            )
        )
    if not trace.server_process.get("app_called", True):
        body.append(
            "<h2>3-5. The application: never called</h2><p>The server answered without calling the "
            "application; the parser's events above say why.</p><h2>6. Response bytes, as received</h2>"
            f"<pre>{html.escape(show_bytes(trace.response_bytes, None))}</pre></div>"
        )
        return "".join(body)
    for name, view in (("scope", trace.scope), ("environ", trace.environ)):
        if view is not None:
            body.append(f"<h2>3. The {name}</h2>")
            body.append(
                _table(["key", "value"], [[k, v if isinstance(v, str) else json.dumps(v)] for k, v in view.items()])
            )
    body.append("<h2>4. The interface conversation</h2>")
    body.append(
        _table(
            ["t", "returned", "interface", "call", "thread / task", "detail"],
            [
                [
                    fmt_ns(e["t_ns"]),
                    fmt_ns(e.get("returned_ns")),
                    e["interface"],
                    _event_name(e),
                    _where(e),
                    _event_detail(e),
                ]
                for e in trace.conversation
            ],
        )
    )
    body.append("<h2>5. Call tree, by thread (times include profiler overhead)</h2>" + legend_html())
    if not trace.profile.get("threads"):
        body.append("<p>Not recorded (--no-profile): the timestamps above are undisturbed.</p>")
    body.append("<div class='tree'>")
    for thread in trace.profile.get("threads", []):
        info = thread["thread"]
        kind = "event loop" if info.get("event_loop") else "thread"
        path = _to_layer(thread)
        inner = "".join(_html_node(c, 0, depth, max(thread["total_ns"], 1), None, path) for c in thread["children"])
        body.append(
            f"<details open><summary><b>{kind} {html.escape(info['name'])}</b> "
            f"{fmt_ns(thread['total_ns'])} profiled</summary>{inner}</details>"
        )
    body.append("</div>")
    packages = trace.packages()
    total = sum(p["self_ns"] for p in packages.values()) or 1
    body.append(
        "<h3>Work per package</h3>"
        + _table(
            ["package", "calls", "distinct lines seen", "self time", "share"],
            [
                [
                    f"<span class='pkg p-{html.escape(n)}'>{html.escape(n)}</span>",
                    str(p["calls"]),
                    str(p["lines"]),
                    fmt_ns(p["self_ns"]),
                    f"{100 * p['self_ns'] / total:.1f}%",
                ]
                for n, p in packages.items()
            ],
            raw=True,
        )
    )
    body.append("<h3>Thread hand-overs</h3><p>" + html.escape(";  ".join(_hops(trace)) or "none") + "</p>")
    if "hop_count" in trace.profile:
        body.append(f"<h3>Thread hops: {trace.profile['hop_count']}</h3>")
        body.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in hop_lines(trace)) + "</ul>")
    body.append("<h2>6. Response bytes, as received</h2>")
    body.append(f"<pre>{html.escape(show_bytes(trace.response_bytes, None))}</pre>")
    if trace.response.get("websocket") is not None:
        body.append(
            "<p>WebSocket, as the client saw it: "
            + html.escape(", ".join(_ws_summary(trace.response["websocket"])))
            + "</p>"
        )
    body.append("</div>")
    return "".join(body)


def trace_title(trace: Trace) -> str:
    return f"layercake trace: {trace.method} {trace.path} — {trace.layer} on {trace.server}"


def trace_html(trace: Trace, depth: int = DEFAULT_DEPTH) -> str:
    """The whole trace as one standalone HTML page (no JavaScript, no external files)."""
    return _page(trace_title(trace), [trace_body(trace, depth)])


def scope_diff_html(diff: ScopeDiff) -> str:
    rows = []
    for row in diff.rows:
        cls = " class='diff'" if row["differs"] else ""
        cells = "".join(
            f"<td class='v'>{html.escape(v if isinstance(v, str) else json.dumps(v))}</td>"
            for v in row["values"].values()
        )
        rows.append(f"<tr{cls}><td>{html.escape(row['key'])}</td>{cells}</tr>")
    head = "".join(f"<th>{html.escape(s)} ({diff.interfaces[s]})</th>" for s in diff.servers)
    return _page(
        f"layercake scope-diff: {diff.method} {diff.path} on {diff.layer}",
        [f"<div class='trace'><table class='t'><tr><th>key</th>{head}</tr>{''.join(rows)}</table></div>"],
    )
