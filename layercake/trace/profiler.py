"""A per-request call-tree profiler that knows threads and event-loop tasks.

Theory of operation
-------------------
``sys.setprofile`` calls a function on every Python ``call``/``return`` and every C
``c_call``/``c_return``/``c_exception`` -- no ``line`` events, which is what keeps it
cheap enough to leave on for one whole request.  :class:`Profiler` turns that stream
into a *call tree*: a node per distinct call path (same function, same caller chain,
same asyncio task), counting calls and inclusive time, so a request that calls
``json.dumps`` twice from the same place shows one node with ``calls: 2``.

Each thread gets its own stack and its own root, so the tree answers "which thread ran
this": a sync endpoint appears under anyio's worker thread, a WSGI app bridged onto
ASGI under a2wsgi's executor thread, while the event loop's thread keeps the server.
On an event-loop thread, every node also carries the asyncio task it ran in, taken
from ``asyncio.current_task()`` when a coroutine frame starts or resumes (other
frames inherit their caller's task).

Three things the raw event stream does not give, and how they are recovered:

* **Frames already running when profiling starts** (the server's accept loop, the
  event loop's ``_run_once``) never send a ``call``.  When a frame's caller is not on
  our stack, the caller chain is rebuilt from ``frame.f_back`` and pushed as *outer*
  nodes: shown for context (this is how the server's frames around the app appear),
  with no call count or time of their own.
* **Coroutine resumption** sends ``call`` again for the same frame.  A resumption is
  told from a first call by the instruction offset: a fresh coroutine starts at its
  first ``RESUME`` instruction.  Resumptions count as ``resumes``, not ``calls``.
* **The recorder's own bookkeeping** (snapshots, timestamps) is left out: functions
  marked with :func:`hidden` drop their whole subtree.  The recorders' wrappers around
  ``send``/``receive``/``start_response`` stay in, as package ``trace``: they are on the path.
* **Thread hops** -- work handed to another thread (``sync_to_async``, a thread pool,
  a bridge's executor).  A hop is a stretch of events on a thread other than the one
  that started the request, in which code outside the stdlib is called: a pool worker
  going back to sleep after its job runs stdlib code only, and is not one, nor is a
  worker thread starting up (its ``run()`` called by threading's bootstrap) before its
  first job.  Each hop records the thread it went to, the first functions it ran, and
  -- when the handing thread was seen calling a hand-off primitive (:data:`HANDOFFS`:
  ``run_in_executor``, ``ThreadPoolExecutor.submit``, ``Queue.put``...) -- which
  primitive, called from which non-stdlib functions.  ``layercake.bench.costs`` counts
  hops by the same rule, so ``bench --in-process`` and ``trace`` agree.
* **Distinct lines**: with no ``line`` events, the lines we see are the call sites
  (the caller's current line at each call) and the return points.  That is a lower
  bound on the lines executed -- honest, and ten times cheaper than ``sys.settrace``,
  which would also distort every timing.

Times include the profiler's own overhead (one Python call per event), which falls
hardest on code that makes many small calls: compare packages with each other, not
with an unprofiled benchmark.  Python 3.11 cannot install a profile function into a
thread that is already running, so threads started *before* :func:`install_for_new_threads`
are only seen when they call into a recorder themselves (the recorder installs the
profiler in whatever thread calls the app).
"""

from __future__ import annotations

import asyncio
import dis
import inspect
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from layercake.trace.packages import classify_file, classify_module, short_path

_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
MAX_OUTER_DEPTH = 80  # a server's stack under the app is ~10-30 frames; deeper is recursion
MAX_SWITCHES = 400  # thread/task hand-overs kept in order; beyond that only counted

#: Stdlib functions that hand work to another thread; a call to one is remembered as the
#: origin of the next thread hop (outermost call only: submit() inside run_in_executor()).
HANDOFFS = frozenset(
    {
        "BaseEventLoop.run_in_executor",
        "ThreadPoolExecutor.submit",
        "Thread.start",
        "Queue.put",
        "Queue.put_nowait",
        "BaseEventLoop.call_soon_threadsafe",
        "run_coroutine_threadsafe",
    }
)
MAX_HOP_WORK = 3  # functions named per hop: the first it ran outside the stdlib, then the job's own
HOP_MACHINERY = frozenset({"asgiref", "anyio", "bridge"})  # the hand-off's wrappers, named once per hop
_THREAD_START = threading.Thread._bootstrap_inner.__code__  # type: ignore[attr-defined]  # a private CPython method, not in typeshed: the frame every thread starts in

#: Code objects whose calls (and everything they call) the profiler leaves out: the
#: recorder's bookkeeping, which is not the request's work.  Added with :func:`hidden`.
HIDDEN: set[CodeType] = set()


def hidden(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: leave this function's calls, and all beneath them, out of every call tree."""
    HIDDEN.add(fn.__code__)
    return fn


class Node:
    """One distinct call path: a function (or C function) under a given parent, in a given task."""

    __slots__ = (
        "label",
        "package",
        "file",
        "line",
        "task",
        "kind",
        "children",
        "calls",
        "resumes",
        "total_ns",
        "lines",
        "outer",
        "first_ns",
    )

    def __init__(
        self, label: str, package: str, file: str, line: int, task: str | None, kind: str, outer: bool = False
    ) -> None:
        self.label, self.package, self.file, self.line = label, package, file, line
        self.task, self.kind, self.outer = task, kind, outer
        self.children: dict[Any, Node] = {}
        self.calls = self.resumes = self.total_ns = 0
        self.lines: set[int] = set()
        self.first_ns: int | None = None  # when this call path was first entered (vs the profiler's t0)

    def to_dict(self) -> dict[str, Any]:
        children = [c.to_dict() for c in self.children.values()]
        child_ns = sum(c["total_ns"] for c in children)
        total = child_ns if self.outer or self.kind == "thread" else max(self.total_ns, child_ns)
        starts = [c["first_ns"] for c in children if c["first_ns"] is not None]
        # An outer frame (or a thread) was never entered while we watched: it starts with its first child.
        first = self.first_ns if self.first_ns is not None and not self.outer else min(starts, default=None)
        return {
            "label": self.label,
            "package": self.package,
            "file": self.file,
            "line": self.line,
            "task": self.task,
            "kind": self.kind,
            "outer": self.outer,
            "calls": self.calls,
            "resumes": self.resumes,
            "total_ns": total,
            "self_ns": max(total - child_ns, 0),
            "lines": len(self.lines),
            "first_ns": first,
            "children": children,
        }


class _Code:
    """What we need to know about a code object, worked out once."""

    __slots__ = ("label", "package", "file", "line", "first_resume")

    def __init__(self, code: CodeType) -> None:
        self.label = code.co_qualname
        self.package = classify_file(code.co_filename)
        self.file = short_path(code.co_filename)
        self.line = code.co_firstlineno
        self.first_resume = -1
        if code.co_flags & _GENERATOR_FLAGS:
            self.first_resume = next((i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"), 0)


class Profiler:
    """Collects one call tree per thread between :meth:`start` and :meth:`stop`."""

    def __init__(self, t0_ns: int | None = None) -> None:
        self.t0_ns = t0_ns if t0_ns is not None else time.perf_counter_ns()
        self.roots: dict[int, Node] = {}
        self.threads: dict[int, dict[str, Any]] = {}
        self._stacks: dict[int, list[list[Any]]] = {}
        self._codes: dict[CodeType, _Code] = {}
        self._task_names: dict[int, str] = {}
        self.switches: list[dict[str, Any]] = []
        self.switch_count = 0
        self._last_lane: tuple[int, str | None] | None = None
        self.events = 0
        self.pkg_lines: dict[str, set[tuple[str, int]]] = {}
        self.pkg_calls: dict[str, int] = {}
        self.pkg_first: dict[str, dict[str, Any]] = {}  # package -> its first call: t_ns, label, thread, task
        self.active = False
        self._hiding: dict[int, FrameType] = {}  # thread -> the hidden frame it is inside
        # Thread hops (see the module docstring): the thread that started the request, the
        # thread of the current stretch of events, whether that stretch is accounted for,
        # the hop it is (to name its work), and the last hand-off call not yet matched.
        self.origin: int | None = None
        self.hops: list[dict[str, Any]] = []
        self.hop_count = 0
        # The stretch state is kept per thread: this function runs on every thread, and the
        # interpreter may switch threads in the middle of it, so a shared flag set by one thread
        # could be read back by another (a hop then went uncounted, one run in a few hundred).
        self._seg_tid: int | None = None  # the thread whose events came last
        self._segs: dict[int, list[Any]] = {}  # thread -> [its stretch is accounted for, its hop]
        self._handoff: dict[str, Any] | None = None
        self._jobs: dict[int, tuple[FrameType, dict[str, Any]]] = {}  # thread -> its current hop's first frame

    # -- the profile function -----------------------------------------------------------

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.active:
            return
        tid = threading.get_ident()
        hiding = self._hiding.get(tid)
        if hiding is not None:
            if frame is hiding and event == "return":
                del self._hiding[tid]
            return
        if event == "call" and frame.f_code in HIDDEN:
            self._hiding[tid] = frame
            return
        now = time.perf_counter_ns()
        self.events += 1
        stack = self._stacks.get(tid)
        if stack is None:
            stack = self._stacks[tid] = []
            self._new_thread(tid, now)
        if tid != self._seg_tid:
            self._new_segment(tid)
        if event == "call":
            parent = self._attach(stack, frame.f_back, tid)
            info = self._code(frame.f_code)
            self._hop(tid, frame, info, now)
            task = self._task() if info.first_resume >= 0 else parent.task
            node = self._child(parent, (frame.f_code, task), info, task)
            if info.first_resume >= 0 and frame.f_lasti > info.first_resume:
                node.resumes += 1
            else:
                node.calls += 1
                self._count(node, now)
            if frame.f_back is not None and parent.kind == "py":
                self._line(parent, frame.f_back.f_lineno)
            stack.append([frame, node, now])
        elif event == "return":
            self._pop(stack, frame, now)
        elif event == "c_call":
            parent = self._attach(stack, frame, tid)
            node = self._c_child(parent, arg)
            node.calls += 1
            self._count(node, now)
            self._line(parent, frame.f_lineno)
            stack.append([arg, node, now, frame])
        else:  # c_return, c_exception
            if stack and stack[-1][0] is arg and len(stack[-1]) == 4:
                entry = stack.pop()
                entry[1].total_ns += now - entry[2]
        self._switch(tid, stack, now)

    # -- thread hops ----------------------------------------------------------------------

    def _new_segment(self, tid: int) -> None:
        self._seg_tid = tid
        self._segs[tid] = [self.origin is None or tid == self.origin, None]
        if tid == self.origin and self._handoff is not None and self._handoff["ident"] != tid:
            self._handoff = None  # a worker handing its result back: consumed by the return

    def _hop(self, tid: int, frame: FrameType, info: _Code, now: int) -> None:
        if info.package == "stdlib":
            if frame.f_code.co_qualname in HANDOFFS and not self._inside_handoff(frame.f_back):
                self._handoff = {
                    "ident": tid,
                    "thread": threading.current_thread().name,
                    "via": frame.f_code.co_qualname,
                    "by": self._callers(frame.f_back),
                }
            return
        seg = self._segs[tid]
        hop = seg[1]
        if hop is not None and len(hop["work"]) < MAX_HOP_WORK and info.package not in HOP_MACHINERY:
            label = f"{info.label} ({info.package})"
            if label not in hop["work"]:
                hop["work"].append(label)  # past the hand-off's own wrappers: the job itself
        if seg[0] or tid == self.origin:  # (the second test: a profile call preempted mid-way)
            return
        label = f"{info.label} ({info.package})"
        seg[0] = True
        if frame.f_back is not None and frame.f_back.f_code is _THREAD_START:
            return  # a worker thread's own run() starting up: not a job yet
        job = self._jobs.get(tid)
        if job is not None and self._beneath(frame, job[0]):
            # The same job resumed: the interpreter switched threads in the middle of it
            # (its 5 ms switch interval, or the job waited on a lock).  Not a new hop.
            seg[1] = job[1]
            return
        handoff, self._handoff = self._handoff, None
        self.hop_count += 1
        hop = {
            "t_ns": now - self.t0_ns,
            "from": handoff["thread"] if handoff else None,
            "to": threading.current_thread().name,
            "ident": tid,
            "via": handoff["via"] if handoff else None,
            "handed_by": handoff["by"] if handoff else [],
            "work": [label],
        }
        seg[1] = hop
        self._jobs[tid] = (frame, hop)
        if len(self.hops) < MAX_SWITCHES:
            self.hops.append(hop)

    @staticmethod
    def _beneath(frame: FrameType | None, ancestor: FrameType) -> bool:
        """Is ``ancestor`` on ``frame``'s stack (the frame itself or one of its callers)?"""
        depth = 0
        while frame is not None and depth < MAX_OUTER_DEPTH:
            if frame is ancestor:
                return True
            frame, depth = frame.f_back, depth + 1
        return False

    @staticmethod
    def _inside_handoff(frame: FrameType | None) -> bool:
        depth = 0
        while frame is not None and depth < 8:
            if frame.f_code.co_qualname in HANDOFFS:
                return True
            frame, depth = frame.f_back, depth + 1
        return False

    def _callers(self, frame: FrameType | None) -> list[str]:
        """The nearest callers outside the stdlib, innermost first: who asked for the hand-off."""
        out: list[str] = []
        depth = 0
        while frame is not None and len(out) < MAX_HOP_WORK and depth < MAX_OUTER_DEPTH:
            info = self._code(frame.f_code)
            if info.package not in ("stdlib", "trace"):
                out.append(f"{info.label} ({info.package})")
            frame, depth = frame.f_back, depth + 1
        return out

    def _count(self, node: Node, now: int) -> None:
        if node.first_ns is None:
            node.first_ns = now - self.t0_ns
        calls = self.pkg_calls.get(node.package, 0)
        if not calls:  # the first time the request reaches this package: a milestone of the timeline
            self.pkg_first[node.package] = {
                "t_ns": now - self.t0_ns,
                "label": node.label,
                "thread": threading.current_thread().name,
                "task": node.task,
            }
        self.pkg_calls[node.package] = calls + 1

    def _new_thread(self, tid: int, now: int) -> None:
        thread = threading.current_thread()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self.threads[tid] = {
            "ident": tid,
            "name": thread.name,
            "event_loop": loop is not None,
            "first_ns": now - self.t0_ns,
            "last_ns": now - self.t0_ns,
        }
        self.roots[tid] = Node(f"thread {thread.name}", "thread", "", 0, None, "thread")

    def _code(self, code: CodeType) -> _Code:
        info = self._codes.get(code)
        if info is None:
            info = self._codes[code] = _Code(code)
        return info

    def _task(self) -> str | None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop in this thread
            return None
        if task is None:
            return None
        name = self._task_names.get(id(task))
        if name is None:
            coro = task.get_coro()
            qual = getattr(coro, "__qualname__", None) or type(coro).__name__
            name = self._task_names[id(task)] = f"{task.get_name()} ({qual})"
        return name

    def _child(self, parent: Node, key: Any, info: _Code, task: str | None, outer: bool = False) -> Node:
        node = parent.children.get(key)
        if node is None:
            node = parent.children[key] = Node(info.label, info.package, info.file, info.line, task, "py", outer)
        elif not outer:
            node.outer = False
        return node

    def _c_child(self, parent: Node, func: Any) -> Node:
        label = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
        module = getattr(func, "__module__", None)
        if module is None:
            owner = getattr(func, "__self__", None) or getattr(func, "__objclass__", None)
            if owner is not None and not inspect.ismodule(owner):
                owner_type = owner if isinstance(owner, type) else type(owner)
                module = owner_type.__module__
            elif inspect.ismodule(owner):
                module = owner.__name__
        module, label = module or "", str(label)
        key = ("c", module, label)
        node = parent.children.get(key)
        if node is None:
            package = classify_module(module) or (parent.package if parent.kind != "thread" else "stdlib")
            shown = f"{module}.{label}" if module and module != "builtins" and "." not in label else label
            node = parent.children[key] = Node(shown, package, "", 0, parent.task, "c")
        return node

    def _line(self, node: Node, line: int | None) -> None:
        if line is not None and node.kind == "py":
            node.lines.add(line)
            self.pkg_lines.setdefault(node.package, set()).add((node.file, line))

    def _attach(self, stack: list[list[Any]], frame: FrameType | None, tid: int) -> Node:
        """The node of ``frame``, making it the top of the stack (rebuilding outer frames if needed)."""
        if frame is None:
            stack.clear()
            return self.roots[tid]
        if stack and stack[-1][0] is frame:
            return stack[-1][1]
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is frame:
                del stack[i + 1 :]  # frames that left without a return event (they can't, but be safe)
                return stack[i][1]
        # Not ours: a frame that was running before we started, or a resumed caller.
        chain: list[FrameType] = []
        f: FrameType | None = frame
        while f is not None and len(chain) < MAX_OUTER_DEPTH:
            chain.append(f)
            f = f.f_back
        stack.clear()
        node = self.roots[tid]
        for f in reversed(chain):
            info = self._code(f.f_code)
            task = self._task() if info.first_resume >= 0 else node.task
            node = self._child(node, (f.f_code, task), info, task, outer=True)
            self._line(node, f.f_lineno)
            stack.append([f, node, 0])
        return node

    def _pop(self, stack: list[list[Any]], frame: FrameType, now: int) -> None:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is frame:
                entry = stack[i]
                del stack[i:]
                node: Node = entry[1]
                if not node.outer:
                    node.total_ns += now - entry[2]
                self._line(node, frame.f_lineno)
                return

    def _switch(self, tid: int, stack: list[list[Any]], now: int) -> None:
        lane = (tid, stack[-1][1].task if stack else None)
        self.threads[tid]["last_ns"] = now - self.t0_ns
        if lane != self._last_lane:
            self._last_lane = lane
            self.switch_count += 1
            if len(self.switches) < MAX_SWITCHES:
                self.switches.append({"t_ns": now - self.t0_ns, "thread": self.threads[tid]["name"], "task": lane[1]})

    # -- control --------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The record: one tree per thread, per-package totals, and the thread/task hand-overs."""
        trees = [self.roots[tid].to_dict() | {"thread": self.threads[tid]} for tid in self.roots]
        self_ns: dict[str, int] = {}

        def walk(node: dict[str, Any]) -> None:
            if node["kind"] != "thread":
                self_ns[node["package"]] = self_ns.get(node["package"], 0) + node["self_ns"]
            for child in node["children"]:
                walk(child)

        for tree in trees:
            walk(tree)
        packages = sorted(set(self_ns) | set(self.pkg_calls))
        return {
            "threads": trees,
            "packages": {
                p: {
                    "calls": self.pkg_calls.get(p, 0),
                    "lines": len(self.pkg_lines.get(p, ())),
                    "self_ns": self_ns.get(p, 0),
                }
                for p in packages
            },
            "first_calls": self.pkg_first,
            "switches": self.switches,
            "switch_count": self.switch_count,
            "hops": self.hops,
            "hop_count": self.hop_count,
            "origin_thread": self.threads.get(self.origin or 0, {}).get("name"),
            "origin_ident": self.origin,
            "events": self.events,
        }


# ---------------------------------------------------------------------------------------
# Installing the profile function
# ---------------------------------------------------------------------------------------
# One module-level dispatcher, so that a thread which got it at birth (threading.setprofile)
# picks up whichever profiler is current -- and costs one global read when none is.

_current: Profiler | None = None


def _dispatch(frame: FrameType, event: str, arg: Any) -> None:
    profiler = _current
    if profiler is not None:
        profiler(frame, event, arg)


def install_for_new_threads() -> None:
    """Give every thread started from now on the dispatcher (inert until a profiler starts)."""
    threading.setprofile(_dispatch)


def start(profiler: Profiler) -> None:
    """Make ``profiler`` current and profile the calling thread."""
    global _current
    _current = profiler
    profiler.origin = threading.get_ident()  # the thread whose request this is: hops leave it
    profiler.active = True
    sys.setprofile(_dispatch)


def join_thread() -> None:
    """Profile the calling thread too (a thread that predates install_for_new_threads)."""
    if sys.getprofile() is not _dispatch:
        sys.setprofile(_dispatch)


def stop(profiler: Profiler) -> None:
    """Stop ``profiler``; the calling thread stops profiling, other threads' dispatcher goes inert."""
    global _current
    profiler.active = False
    if _current is profiler:
        _current = None
    sys.setprofile(None)


def profile_call(fn: Callable[[], Any]) -> tuple[Any, Profiler]:
    """Run ``fn()`` under a fresh profiler (for tests and in-process traces)."""
    profiler = Profiler()
    start(profiler)
    try:
        result = fn()
    finally:
        stop(profiler)
    return result, profiler
