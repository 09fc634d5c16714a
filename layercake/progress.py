"""Progress for long runs, and what Ctrl-C leaves of them.

Theory of operation
-------------------
``grid``, ``probe``, ``soak`` and ``bench`` run for minutes.  They all do it the same
way, through :class:`Steps`:

* **Progress.** On a terminal, one live line on stderr -- what is running now, a bar,
  ``n/total``, the time elapsed and an estimate of what is left (elapsed / done x
  remaining: the steps of one run cost about the same).  Off a terminal (a pipe, a CI
  log), one plain line per finished step (and one every few seconds while a long step
  says what it is doing), so ``layercake grid | tee log`` shows life and
  a log says where a run stopped.  Progress goes to stderr: stdout keeps the result.
* **Ctrl-C.** A KeyboardInterrupt inside ``with Steps(...)`` ends the block (it is
  swallowed there) and sets :attr:`Steps.interrupted`.  The command then writes what it
  has -- its JSON gets ``"partial": {...}`` (:meth:`Steps.mark`), its Markdown a first
  line saying so (:meth:`Steps.markdown_note`) -- and calls :meth:`Steps.finish`, which
  raises :class:`Interrupted` (exit status 130: 128 + SIGINT, the shell's convention,
  which is what ``python -c`` and uvicorn exit with too).

The work itself must notice Ctrl-C quickly: a loop in the main thread does by itself
(Python raises KeyboardInterrupt there); work in a thread pool must be told
(``layercake.grid`` cancels the pairs not started and stops the servers of the ones
running, so the pool drains in a moment instead of finishing the pairs).

How to adopt it in a new command (``bench --experiment X`` included)::

    steps = Steps(total=len(plan), what="my experiment")
    with steps:
        for item in plan:
            results.append(measure(item))
            steps.advance(f"{item} done")
    doc = {"results": results}
    steps.mark(doc)                    # {"partial": {...}} when interrupted
    write(doc, markdown=steps.markdown_note() + text)
    steps.finish()                     # exit 130 when interrupted, after the writes

A callback of the shape ``progress(what, done, total)`` (the bench runner's) is
:meth:`Steps.update`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from layercake.errors import LayercakeError


class Interrupted(LayercakeError):
    """Ctrl-C: whatever was measured has been written; exit status 130 (128 + SIGINT)."""

    exit_code = 130


#: Off a terminal, a line at least this often (seconds) even when no step finished: a
#: benchmark starting and verifying its servers can take half a minute before its first run.
HEARTBEAT = 5.0


def clock(seconds: float) -> str:
    """``0:07``, ``1:02:03``: elapsed and remaining times, as a person reads them."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Steps:
    """Count, elapsed time and ETA of a run of ``total`` steps; records a Ctrl-C.

    ``live=None`` decides by whether stderr is a terminal; ``log_steps`` prints each
    finished step's label above the live line too (the grid's pairs: few, each worth a line).  ``what`` names the run in the
    partial marker ("interrupted after 12 of 78 pairs").
    """

    def __init__(
        self,
        total: int | None,
        what: str = "steps",
        console: Console | None = None,
        live: bool | None = None,
        log_steps: bool = False,
        keeps: bool = True,
    ) -> None:
        self.total = total
        self.what = what
        self.done = 0
        self.label = ""
        self.interrupted = False
        self.console = console or Console(stderr=True)
        self.live = sys.stderr.isatty() if live is None else live
        self.log_steps = log_steps  # on a terminal too, print each finished step above the live line
        self.keeps = keeps  # whether the command keeps partial results (the Ctrl-C line says so only then)
        self.started = time.monotonic()
        self._bar: Progress | None = None
        self._task: Any = None
        self._printed = self.started

    # -- the display ------------------------------------------------------------------

    def __enter__(self) -> Steps:
        self.started = time.monotonic()
        if self.live:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=12),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupted = True
            self.console.print(
                f"[yellow]interrupted[/] after {self.done} of {self.total or '?'} {self.what} "
                f"({clock(self.elapsed)})" + ("; keeping what was measured" if self.keeps else ""),
                highlight=False,
            )
            return True
        return False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float | None:
        """Seconds left at the pace so far (None before the first step or without a total)."""
        if not self.total or not self.done:
            return None
        return self.elapsed / self.done * max(0, self.total - self.done)

    def status(self, label: str) -> None:
        """What is running now (the live line only; a pipe gets a line per finished step)."""
        self.label = label
        if self._bar is not None:
            self._bar.update(self._task, description=_short(label))

    def advance(self, label: str = "", count: int = 1) -> None:
        """``count`` more steps finished; ``label`` says what the last one was."""
        self.update(label, self.done + count, self.total)

    def update(self, label: str, done: int, total: int | None) -> None:
        """The bench runner's callback shape: what is happening, steps done, steps in all."""
        finished = done > self.done
        self.done, self.total, self.label = done, total or self.total, label
        if self._bar is not None:
            self._bar.update(self._task, description=_short(label), completed=done, total=self.total)
            if finished and label and self.log_steps:
                self._bar.console.print(label, highlight=False, soft_wrap=True)
        elif label and (finished or time.monotonic() - self._printed >= HEARTBEAT):
            left = self.remaining()
            eta = f", about {clock(left)} left" if left is not None and done < (self.total or 0) else ""
            self.console.print(
                f"[{done}/{self.total or '?'}] {clock(self.elapsed)} elapsed{eta}  {label}",
                highlight=False,
                soft_wrap=True,
            )
            self._printed = time.monotonic()

    # -- what Ctrl-C leaves -------------------------------------------------------------

    def partial(self) -> dict[str, Any] | None:
        """The JSON marker of an interrupted run, or None when it ran to the end."""
        if not self.interrupted:
            return None
        return {
            "interrupted": "Ctrl-C",
            "done": self.done,
            "total": self.total,
            "what": self.what,
            "elapsed_s": round(self.elapsed, 1),
        }

    def mark(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Add ``"partial"`` to a results document when the run was interrupted; returns ``doc``."""
        marker = self.partial()
        if marker is not None:
            doc["partial"] = marker
        return doc

    def markdown_note(self) -> str:
        """A first paragraph for a Markdown report of an interrupted run ('' otherwise)."""
        if not self.interrupted:
            return ""
        return (
            f"> **Partial results**: interrupted (Ctrl-C) after {self.done} of {self.total or '?'} {self.what}, "
            f"{clock(self.elapsed)} into the run.\n\n"
        )

    def finish(self, kept: str = "") -> None:
        """Raise :class:`Interrupted` (exit 130) if the run was interrupted; after the writes."""
        if self.interrupted:
            raise Interrupted(
                f"interrupted after {self.done} of {self.total or '?'} {self.what}"
                + (f"; {kept}" if kept else "; nothing was written (no --json or --markdown given)")
            )


def _short(label: str, limit: int = 40) -> str:
    # The live line shares 80 columns with the bar, the count and two clocks.
    return label if len(label) <= limit else label[: limit - 1] + "…"
