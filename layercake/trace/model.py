"""The trace record: one request, from the bytes sent to the bytes received.

Theory of operation
-------------------
A :class:`Trace` is plain data, JSON-serialisable both ways (``to_dict``/``from_dict``),
so ``--json`` writes exactly what the renderers read and a saved trace can be rendered
again later.  It holds the six steps of issue 6 in the order a request meets them:

1. ``request_bytes`` -- the raw request as sent on the socket;
2. ``parser`` -- the server's parser events, when the parser can be observed from
   Python (h11, http.server), each with ``t_ns`` relative to the app call (negative:
   before it), else an explanation of why it is opaque;
3. ``environ`` or ``scope`` -- what the server handed the application (both, across a
   bridge: the outer interface's and the inner one's);
4. ``conversation`` -- the interface calls with timestamps (``start_response``,
   ``write()``, iterable chunks, ``close()``; or ``receive()``/``send()``), each with the
   thread and asyncio task that made it;
5. ``profile`` -- the call tree per thread, per-package totals, thread/task switches
   (see :mod:`layercake.trace.profiler` for the node fields);
6. ``response_bytes`` -- the raw response as received, and ``response`` parsed.

Bytes are stored as latin-1 strings (every byte one character, PEP 3333's own trick),
so a trace file round-trips exactly.  Times are integers in nanoseconds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

STEPS = ("request bytes", "parser events", "environ/scope", "conversation", "call tree", "response bytes")


@dataclass
class Trace:
    layer: str
    interface: str  # the layer's: "wsgi" | "asgi"
    server: str
    server_interface: str
    bridge: str | None  # None | "wsgi->asgi" | "asgi->wsgi"
    native_command: str  # the command a user would type for the untraced server
    method: str
    path: str
    request_bytes: bytes
    response_bytes: bytes
    response: dict[str, Any]  # status, reason, http_version, headers, body (latin-1), chunked
    parser: dict[str, Any]  # name, observed ("h11" | "http.server" | None), note, events
    environ: dict[str, Any] | None
    scope: dict[str, Any] | None
    conversation: list[dict[str, Any]]
    profile: dict[str, Any]
    server_process: dict[str, Any] = field(default_factory=dict)  # pid, duration_ns, errors, interfaces
    warmup: int = 0
    meta: dict[str, Any] = field(default_factory=dict)  # python, created, tool version

    # -- reading ------------------------------------------------------------------------

    @property
    def steps(self) -> list[str]:
        """The steps this trace holds, in request order (a subset of :data:`STEPS`)."""
        present = {
            "request bytes": bool(self.request_bytes),
            "parser events": bool(self.parser.get("events")),
            "environ/scope": self.environ is not None or self.scope is not None,
            "conversation": bool(self.conversation),
            "call tree": bool(self.profile.get("threads")),
            "response bytes": bool(self.response_bytes),
        }
        return [step for step in STEPS if present[step]]

    def calls(self, interface: str | None = None) -> list[str]:
        """The conversation as a list of call names (``send()`` shows its message type)."""
        out = []
        for event in self.conversation:
            if interface and event["interface"] != interface:
                continue
            name = event["call"]
            message = event.get("message")
            if isinstance(message, dict) and "type" in message:
                name = f"{name} {message['type']}"
            out.append(name)
        return out

    def timeline(self) -> list[dict[str, Any]]:
        """Everything with a time, in order: parser events, interface calls, the first call into
        each package, the first work in each thread.  ``t_ns`` is relative to the app call (one
        clock: the server process's), ``source`` says which record each line came from.

        Only *first* calls and *first* work per thread: threads sharing the GIL hand over
        dozens of times per request, and the stdlib is everywhere -- neither says where the
        request went."""
        rows: list[dict[str, Any]] = []
        for event in self.parser.get("events", []):
            rows.append({"source": "parser", **event})
        for event in self.conversation:
            rows.append({"source": "interface", **event})
        for package, first in self.profile.get("first_calls", {}).items():
            if package not in ("trace", "stdlib", "other"):
                rows.append({"source": "call tree", "call": f"first call into {package}", "package": package, **first})
        seen: set[str] = set()
        for switch in sorted(self.profile.get("switches", []), key=lambda s: s["t_ns"]):
            if switch["thread"] not in seen:
                if seen:
                    rows.append({"source": "threads", "call": f"first work in thread {switch['thread']}", **switch})
                seen.add(switch["thread"])
        return sorted(rows, key=lambda r: r["t_ns"])

    def packages(self) -> dict[str, dict[str, int]]:
        return self.profile.get("packages", {})

    def threads(self) -> list[str]:
        return [tree["thread"]["name"] for tree in self.profile.get("threads", [])]

    # -- JSON ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["request_bytes"] = self.request_bytes.decode("latin-1")
        data["response_bytes"] = self.response_bytes.decode("latin-1")
        data["steps"] = self.steps
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["request_bytes"] = data["request_bytes"].encode("latin-1")
        values["response_bytes"] = data["response_bytes"].encode("latin-1")
        return cls(**values)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps())

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class LifespanRecord:
    """What ``layercake lifespan`` saw: the lifespan events in order, with the requests between."""

    layer: str
    interface: str
    server: str
    bridge: str | None
    native_command: str
    mode: str  # the --simulate mode
    events: list[dict[str, Any]]  # kind, t_ns (relative to the app being loaded), thread, message...
    started: bool  # did the server start accepting connections
    exit_status: int | None
    server_output: str
    probe: dict[str, Any] | None = None  # the request sent while it ran: path, status, body

    def kinds(self) -> list[str]:
        """The events as short names: "receive() lifespan.startup", "request GET /health", ..."""
        out = []
        for event in self.events:
            message = event.get("message")
            if isinstance(message, dict) and "type" in message:
                out.append(f"{event['kind']} {message['type']}")
            else:
                out.append(event["kind"])
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScopeDiff:
    """The same request on several servers: every environ/scope key, its value per server."""

    layer: str
    method: str
    path: str
    servers: list[str]
    interfaces: dict[str, str]  # server -> how the layer was reached ("wsgi", "wsgi via the wsgi->asgi bridge")
    rows: list[dict[str, Any]]  # {"key": ..., "values": {server: value | MISSING}, "differs": bool}
    header_order: dict[str, list[str]]  # server -> header names in the order the app saw them

    MISSING = "(absent)"

    @property
    def differing(self) -> list[str]:
        return [row["key"] for row in self.rows if row["differs"]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
