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
the collapsing, one ``<style>`` block does the colours.
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
from layercake.trace.packages import COLOURS, PACKAGES

DEFAULT_DEPTH = 6
MAX_CHILDREN = 30
C_CALL_MIN_SHARE = 0.01  # a builtin call is shown if it takes at least 1% of its thread's time
RAW_LIMIT = 4096  # bytes of a raw request/response shown in the terminal

# rich colour names -> CSS, for the HTML page (same names, same meaning)
CSS_COLOURS = {
    "bright_blue": "#4f8ff7",
    "blue": "#2b5fb8",
    "magenta": "#b03bb0",
    "bright_magenta": "#e066e0",
    "cyan": "#17a2b8",
    "green": "#2e9e44",
    "bright_green": "#66cc66",
    "yellow": "#b8a000",
    "bright_yellow": "#e0c000",
    "bright_red": "#e04848",
    "white": "#888888",
    "bright_black": "#aaaaaa",
    "grey50": "#7f7f7f",
    "dark_green": "#1e6b30",
    "orchid": "#c060c0",
}


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
        table.add_column(col, justify="left" if col == "package" else "right")
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
        table.add_column(col)
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
    head.add_row("layer", f"{trace.layer} ({trace.interface.upper()})")
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
            table.add_column(col)
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
        title=f"{diff.method} {diff.path} on {diff.layer}: what each server handed the layer (differences in bold)",
        title_justify="left",
    )
    table.add_column("key", style="bold")
    for server in diff.servers:
        table.add_column(f"{server} ({diff.interfaces[server]})", overflow="fold")
    for row in diff.rows:
        if only_differences and not row["differs"]:
            continue
        style = "bold yellow" if row["differs"] else "dim"
        cells = [Text(v if isinstance(v, str) else json.dumps(v), style=style) for v in row["values"].values()]
        table.add_row(Text(row["key"], style=style), *cells)
    order = Table(title="header order as the app saw it", title_justify="left")
    order.add_column("server")
    order.add_column("headers")
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
            f"startup ran but no lifespan.shutdown was ever sent: the process ended (exit status "
            f"{record.exit_status}) without telling the app -- a store closed at shutdown is never closed."
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

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font:12px/1.4 ui-monospace,monospace}
table{border-collapse:collapse;font-size:12.5px}td,th{border:1px solid #ddd;padding:2px 6px;vertical-align:top;
text-align:left}td.v{font-family:ui-monospace,monospace;word-break:break-all}
td.k{font-family:ui-monospace,monospace;white-space:nowrap}
details{margin-left:1.1em}summary{font-family:ui-monospace,monospace;font-size:12.5px;cursor:pointer;
white-space:nowrap}summary.leaf{list-style:none}.outer{opacity:.55}.task{font-style:italic;color:#777}
.pkg{display:inline-block;min-width:6.5em;font-weight:bold}.legend span{margin-right:1em;font-weight:bold}
.dim{color:#888}.diff{background:#fff3c4;font-weight:bold}
"""


def _pkg_css() -> str:
    return "".join(f".p-{p.name}{{color:{CSS_COLOURS.get(p.colour, '#444')}}}" for p in PACKAGES)


def _page(title: str, body: Iterable[str]) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}{_pkg_css()}</style></head><body><h1>{html.escape(title)}</h1>"
        + "".join(body)
        + "</body></html>\n"
    )


def _table(headers: list[str], rows: Iterable[list[str]], raw: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='{'k' if i == 0 else 'v'}'>{c if raw else html.escape(c)}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


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


def trace_html(trace: Trace, depth: int = DEFAULT_DEPTH) -> str:
    """The whole trace as one HTML page (no JavaScript, no external files)."""
    r = trace.response
    body = [
        _table(
            ["", ""],
            [
                ["request", f"{trace.method} {trace.path}"],
                ["layer", f"{trace.layer} ({trace.interface.upper()})"],
                ["server", f"{trace.server} ({trace.server_interface.upper()}, parser: {trace.parser.get('name')})"],
                ["bridge", trace.bridge or "none"],
                ["untraced command", trace.native_command],
                ["answer", f"{r.get('status')} {r.get('reason', '')}, {len(r.get('body', ''))} B, {r.get('framing')}"],
                ["warm-up requests", str(trace.warmup)],
            ],
        ),
        "<h2>0. The request's path, in time</h2>",
        _table(["t (vs app call)", "seen by", "what", "thread / task", "first function"], _timeline_rows(trace)),
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
            f"<pre>{html.escape(show_bytes(trace.response_bytes, None))}</pre>"
        )
        return _page(f"layercake trace: {trace.method} {trace.path} — {trace.layer} on {trace.server}", body)
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
    body.append(
        "<h2>5. Call tree, by thread (times include profiler overhead)</h2><p class='legend'>"
        + "".join(f"<span class='p-{p.name}' title='{html.escape(p.description)}'>{p.name}</span>" for p in PACKAGES)
        + "</p>"
    )
    if not trace.profile.get("threads"):
        body.append("<p>Not recorded (--no-profile): the timestamps above are undisturbed.</p>")
    for thread in trace.profile.get("threads", []):
        info = thread["thread"]
        kind = "event loop" if info.get("event_loop") else "thread"
        path = _to_layer(thread)
        inner = "".join(_html_node(c, 0, depth, max(thread["total_ns"], 1), None, path) for c in thread["children"])
        body.append(
            f"<details open><summary><b>{kind} {html.escape(info['name'])}</b> "
            f"{fmt_ns(thread['total_ns'])} profiled</summary>{inner}</details>"
        )
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
    return _page(f"layercake trace: {trace.method} {trace.path} — {trace.layer} on {trace.server}", body)


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
        [f"<table><tr><th>key</th>{head}</tr>{''.join(rows)}</table>"],
    )
