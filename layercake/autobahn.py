"""The Autobahn WebSocket testsuite against a layer's ``/ws``: someone else's conformance suite, run for real.

Theory of operation
-------------------
Our probe corpus is our own; the strongest evidence that a WebSocket server is right is a suite someone else
wrote.  Autobahn's ``wstest -m fuzzingclient`` connects to a WebSocket URL once per case (about 300 of them:
framing, pings, reserved bits and opcodes, fragmentation, UTF-8 validation, limits, the close handshake) and
grades what comes back.  ``/ws`` in every ASGI layer is the contract's echo (CONTRACT.md), which is exactly the
"testee" Autobahn expects: it sends a message and wants it back.

Each case gets one verdict (Autobahn's ``behavior``; its ``behaviorClose`` grades the closing handshake):

* **OK** -- what RFC 6455 asks, strictly;
* **NON-STRICT** -- acceptable but lax (e.g. an answer to a message that came before a protocol error dropped);
* **INFORMATIONAL** -- no verdict, only what happened (e.g. which close code came back);
* **UNIMPLEMENTED** -- an optional feature the server does not offer (compression, when not excluded);
* **FAILED** -- wrong.

The compression cases (12.* and 13.*, permessage-deflate, RFC 7692) are excluded: negotiating an extension is
optional (RFC 6455 §9.1) and our servers decline it, so those cases measure a feature, not conformance.

Autobahn needs **Python 2.7** (the suite was never ported).  :func:`wstest` finds an interpreter (the
``LAYERCAKE_PYTHON27`` variable, pyenv's 2.7.18, or ``python2.7`` on PATH) and, on first use, builds a virtualenv
for ``autobahntestsuite`` in a cache directory (``$XDG_CACHE_HOME/layercake/autobahn``, or the
``LAYERCAKE_AUTOBAHN_HOME`` variable); pyenv's 2.7 has pip but neither setuptools nor virtualenv, so those two are
bootstrapped first with ``pip install --target``.  That takes a few minutes once and nothing after.  Without a
Python 2.7, :class:`AutobahnUnavailable` says how to get one.

The run itself is bounded: wstest is a subprocess in its own process group, killed whole on a timeout or Ctrl-C.
Its HTML reports (an index plus one page per case, with the wire log) stay in the output directory and are what
the site links to.

What it deliberately does not do: the server-side modes (``fuzzingserver`` tests clients), TLS, or performance
cases (Autobahn's 9.* cases do send large messages, but their timing is not a verdict here).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from layercake.errors import LayercakeError

#: The verdicts, best first; the summary counts cases by these.
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
#: permessage-deflate (RFC 7692), which we decline (RFC 6455 §9.1 lets a server agree to no extension).
EXCLUDED = ("12.*", "13.*")
#: Pinned so every machine grades against the same suite (the last release; it still runs on Python 2.7).
AUTOBAHN_PACKAGE = "autobahntestsuite==25.10.1"
#: What pyenv's bare 2.7 lacks: the newest setuptools and virtualenv that still support Python 2.7.
BOOTSTRAP_PACKAGES = ("setuptools<45", "virtualenv<20.22")
PYENV_PYTHON27 = Path("/root/.pyenv/versions/2.7.18/bin/python2.7")
HOW_TO_GET = (
    "Autobahn's testsuite needs Python 2.7, and none was found.  Install one (e.g. `pyenv install 2.7.18`, or "
    "your distribution's python2.7) or point LAYERCAKE_PYTHON27 at it; layercake then builds a virtualenv for "
    "autobahntestsuite on first use (a few minutes, once)."
)


WSGI_NOTE = "WSGI: no WebSockets (a WSGI server cannot hand the connection over; a2wsgi bridges HTTP only)"


class AutobahnUnavailable(LayercakeError):
    """No Python 2.7, or the autobahntestsuite install failed; the message says how to fix it."""


# ---------------------------------------------------------------------------------------
# Finding (or building) wstest
# ---------------------------------------------------------------------------------------


def cache_dir() -> Path:
    if os.environ.get("LAYERCAKE_AUTOBAHN_HOME"):
        return Path(os.environ["LAYERCAKE_AUTOBAHN_HOME"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "layercake" / "autobahn"


def find_python27() -> Path | None:
    """A Python 2.7 interpreter: LAYERCAKE_PYTHON27, pyenv's 2.7.18, or ``python2.7`` on PATH."""
    candidates = [os.environ.get("LAYERCAKE_PYTHON27"), str(PYENV_PYTHON27), shutil.which("python2.7")]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        try:  # a pyenv shim exists even where no 2.7 is installed: ask it
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == "(2, 7)":
            return Path(candidate)
    return None


def installed_wstest() -> Path | None:
    """The cached ``wstest``, if it has been built."""
    path = cache_dir() / "venv" / "bin" / "wstest"
    return path if path.exists() else None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Two commands building the cache at once (a test run and a user) would corrupt it: one at a time.
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run_setup(argv: list[str], env: dict[str, str] | None = None, log: Callable[[str], None] | None = None) -> None:
    if log:
        log("$ " + " ".join(argv))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if done.returncode != 0:
        tail = "\n".join([line for line in done.stderr.splitlines() if "is ignored" not in line][-10:])
        raise AutobahnUnavailable(f"setting up autobahntestsuite failed: {' '.join(argv)}\n{tail}")


def wstest(install: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """The path of ``wstest``, building the cached virtualenv on first use (``install=False``: only find it)."""
    found = installed_wstest()
    if found is not None:
        return found
    if not install:
        raise AutobahnUnavailable(f"autobahntestsuite is not set up in {cache_dir()}; `layercake probe "
                                  "--websocket` builds it on first use (needs Python 2.7)")  # fmt: skip
    python = find_python27()
    if python is None:
        raise AutobahnUnavailable(HOW_TO_GET)
    home = cache_dir()
    with _locked(home):
        if installed_wstest() is not None:  # built by someone else while we waited for the lock
            return installed_wstest()  # type: ignore[return-value]  # not None: checked on the line above, under the lock
        boot, venv = home / "bootstrap", home / "venv"
        quiet = ["-q", "--disable-pip-version-check"]
        _run_setup([str(python), "-m", "pip", "install", *quiet, "--target", str(boot), *BOOTSTRAP_PACKAGES], log=log)
        env = {**os.environ, "PYTHONPATH": str(boot)}
        _run_setup([str(python), "-m", "virtualenv", "-q", str(venv)], env=env, log=log)
        _run_setup([str(venv / "bin" / "pip"), "install", *quiet, AUTOBAHN_PACKAGE], log=log)
    found = installed_wstest()
    if found is None:
        raise AutobahnUnavailable(f"autobahntestsuite installed, but no wstest in {venv / 'bin'}")
    return found


# ---------------------------------------------------------------------------------------
# Running the fuzzing client
# ---------------------------------------------------------------------------------------


@dataclass
class AutobahnCase:
    case_id: str
    behavior: str  # the verdict, one of VERDICTS
    behavior_close: str  # the closing handshake's verdict
    duration_ms: int = 0
    remote_close_code: int | None = None
    description: str = ""  # filled in for the cases that are not OK (it means reading their report)
    report: str = ""  # the case's HTML page, relative to the report directory


@dataclass
class AutobahnRun:
    server: str
    layer: str
    url: str = ""
    command: str = ""
    cases: list[AutobahnCase] = field(default_factory=list)
    report_dir: str = ""  # where index.html is
    skipped: str = ""  # why it did not run (no Python 2.7, a WSGI server, a failed start)
    seconds: float = 0.0
    interrupted: bool = False  # Ctrl-C during this run: the runs before it are kept, this one and the rest skipped

    def summary(self) -> dict[str, int]:
        counts = Counter(case.behavior for case in self.cases)
        return {verdict: counts.get(verdict, 0) for verdict in VERDICTS} | {
            other: n for other, n in counts.items() if other not in VERDICTS
        }

    def not_ok(self) -> list[AutobahnCase]:
        return [case for case in self.cases if case.behavior != "OK"]

    def strict(self) -> bool:
        """No FAILED and no NON-STRICT case (INFORMATIONAL carries no verdict)."""
        return bool(self.cases) and not any(case.behavior in ("FAILED", "NON-STRICT") for case in self.cases)

    def cell(self) -> str:
        """One line for a grid: '298 OK, 3 INFO' or 'skipped: why'."""
        if self.skipped:
            return "n/a (WSGI)" if self.skipped.startswith("WSGI") else f"skipped: {self.skipped}"
        short = {"INFORMATIONAL": "INFO", "UNIMPLEMENTED": "UNIMPL"}
        return ", ".join(f"{n} {short.get(v, v)}" for v, n in self.summary().items() if n)

    def to_json(self) -> dict[str, object]:
        return asdict(self) | {"summary": self.summary(), "strict": self.strict()}


def _case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in case_id.split("."))


def read_reports(outdir: Path, agent: str) -> list[AutobahnCase]:
    """The per-case verdicts from Autobahn's ``index.json`` (and the description of each case not OK)."""
    index_file = outdir / "index.json"
    if not index_file.exists():
        return []
    results = json.loads(index_file.read_text()).get(agent, {})
    cases = []
    for case_id in sorted(results, key=_case_key):
        item = results[case_id]
        case = AutobahnCase(
            case_id,
            item.get("behavior", "?"),
            item.get("behaviorClose", "?"),
            int(item.get("duration") or 0),
            item.get("remoteCloseCode"),
            report=str(item.get("reportfile", "")).removesuffix(".json") + ".html",
        )
        if case.behavior != "OK" or case.behavior_close not in ("OK", "INFORMATIONAL"):
            with contextlib.suppress(OSError, ValueError):
                detail = json.loads((outdir / item["reportfile"]).read_text())
                case.description = " ".join(_strip_tags(detail.get("description", "")).split())
        cases.append(case)
    return cases


def _strip_tags(text: str) -> str:
    import re  # noqa: PLC0415

    return re.sub(r"<[^>]+>", "", text)


def fuzz(
    ws_url: str,
    agent: str,
    outdir: Path,
    cases: Iterable[str] = ("*",),
    exclude: Iterable[str] = EXCLUDED,
    timeout: float = 600.0,
    wstest_path: Path | None = None,
) -> list[AutobahnCase]:
    """Run ``wstest -m fuzzingclient`` against ``ws_url`` and return every case's verdict.

    The reports (HTML and JSON) are written to ``outdir``.  ``timeout`` bounds the whole run; Ctrl-C stops wstest
    and re-raises, after its process group is gone."""
    program = wstest_path or wstest()
    outdir.mkdir(parents=True, exist_ok=True)
    for old in [*outdir.glob("*.html"), *outdir.glob("*.json")]:
        old.unlink()  # a report of an earlier run must never pass for this one
    spec = {
        "outdir": str(outdir.resolve()),
        "servers": [{"agent": agent, "url": ws_url}],
        "cases": list(cases),
        "exclude-cases": list(exclude),
        "exclude-agent-cases": {},
    }
    spec_file = outdir / "fuzzingclient.spec.json"
    spec_file.write_text(json.dumps(spec, indent=2))
    with (outdir / "wstest.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(program), "-m", "fuzzingclient", "-s", str(spec_file.resolve())],
            cwd=outdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: one killpg ends it and anything it started
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise LayercakeError(
                f"Autobahn did not finish within {timeout:g} s (log: {outdir / 'wstest.log'})"
            ) from None
        except BaseException:
            _kill(proc)
            raise
    spec_file.unlink(missing_ok=True)
    found = read_reports(outdir, agent)
    if not found:
        tail = "\n".join((outdir / "wstest.log").read_text(errors="replace").splitlines()[-10:])
        raise LayercakeError(f"Autobahn wrote no results (exit status {proc.returncode}); its log ends:\n{tail}")
    return found


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# ---------------------------------------------------------------------------------------
# Registered servers
# ---------------------------------------------------------------------------------------


def default_layer(server: str) -> str:
    """bare_asgi: the contract's ``/ws`` echo with nothing between it and the server."""
    return "bare_asgi"


def autobahn_servers(
    servers: Iterable[str],
    outdir: Path,
    layer: str | None = None,
    cases: Iterable[str] = ("*",),
    progress: Callable[[str], None] | None = None,
    timeout: float = 600.0,
) -> list[AutobahnRun]:
    """Start each server on ``layer`` and run Autobahn against its ``/ws``; reports under ``outdir/<server>/``.

    WSGI servers are reported, not run: WSGI has no way to hand a connection over to another protocol, and an
    ASGI->WSGI bridge (a2wsgi) carries HTTP only, so there is no ``/ws`` to test.  A missing Python 2.7 is
    reported once, on every server, without starting any.
    """
    from layers import get_layer  # noqa: PLC0415
    from servers.registry import ServerOptions, get_server  # noqa: PLC0415
    from servers.supervise import start_server  # noqa: PLC0415

    names = list(servers)
    for name in names:
        get_server(name)
    chosen = layer or "bare_asgi"
    if get_layer(chosen).interface != "asgi":
        raise LayercakeError(f"--websocket needs an ASGI layer (one with /ws), not {chosen!r}", exit_code=2)
    testable = [n for n in names if get_server(n).interface == "asgi" and get_server(n).capabilities.websockets]
    program: Path | None = None
    unavailable = ""
    if testable:
        try:
            program = wstest(log=progress)
        except AutobahnUnavailable as error:
            unavailable = error.message.splitlines()[0]
    runs = []
    for name in names:
        run = AutobahnRun(name, chosen)
        runs.append(run)
        if name not in testable:
            run.skipped = (
                "WSGI: no WebSockets (a WSGI server cannot hand the connection over; a2wsgi bridges HTTP only)"
            )
            continue
        if program is None:
            run.skipped = unavailable
            continue
        if progress:
            progress(f"Autobahn against {name}")
        started = time.monotonic()
        try:
            with start_server(name, chosen, ServerOptions(access_log=False)) as server:
                run.command, run.url = server.native_command, server.ws_url + "/ws"
                target = outdir / name
                run.cases = fuzz(run.url, name, target, cases, timeout=timeout, wstest_path=program)
                run.report_dir = str(target)
        except LayercakeError as error:
            run.skipped = error.message.splitlines()[0]
        except KeyboardInterrupt:  # keep what was measured: wstest and the server are already stopped
            run.skipped, run.interrupted, run.cases = "interrupted (Ctrl-C)", True, []
            runs += [AutobahnRun(rest, chosen, skipped="interrupted (Ctrl-C)") for rest in names[len(runs) :]]
            break
        run.seconds = round(time.monotonic() - started, 1)
    return runs


def prune_reports(run: AutobahnRun) -> int:
    """Keep only what a document needs of a run's reports: ``index.json`` and the pages (HTML and JSON) of the
    cases that are not OK; Autobahn's own ``index.html`` goes too, since its links to the other cases would
    dangle.  About 6 MiB per server becomes a few KiB.  Returns how many files were removed."""
    if not run.report_dir:
        return 0
    directory = Path(run.report_dir)
    keep = {"index.json"} | {name for case in run.not_ok() for name in (case.report, case.report[:-5] + ".json")}
    removed = 0
    for path in directory.iterdir():
        if path.suffix in (".html", ".json") and path.name not in keep:
            path.unlink()
            removed += 1
    return removed


def grid_markdown(runs: list[AutobahnRun], reports: str | None = None) -> str:
    """The Autobahn grid as Markdown: a row per server with the counts, then every case that is not OK.

    ``reports``: the report directory relative to the Markdown file; each case id then links to its page."""
    lines = ["| server | layer | " + " | ".join(VERDICTS) + " | strict | run |", "|---" * (len(VERDICTS) + 4) + "|"]
    for run in runs:
        if run.skipped:
            layer = "" if run.skipped == WSGI_NOTE else run.layer
            lines.append(f"| {run.server} | {layer} | " + " | ".join("" for _ in VERDICTS) + f" | {run.cell()} | |")
            continue
        summary = run.summary()
        link = f"[{run.seconds:g} s]({reports}/{run.server}/index.json)" if reports else f"{run.seconds:g} s"
        lines.append(f"| {run.server} | {run.layer} | " + " | ".join(str(summary[v]) for v in VERDICTS)
                     + f" | {'yes' if run.strict() else '**no**'} | {link} |")  # fmt: skip
    for run in runs:
        bad = run.not_ok()
        if run.skipped or not bad:
            continue
        lines += ["", f"**{run.server}**, every case not OK:", "", "| case | verdict | close | what it tests |",
                  "|---|---|---|---|"]  # fmt: skip
        for case in bad:
            label = (
                f"[{case.case_id}]({reports}/{run.server}/{case.report})" if reports and case.report else case.case_id
            )
            lines.append(f"| {label} | {case.behavior} | {case.behavior_close} | {case.description} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    """``python -m layercake.autobahn``: build the cached wstest now (CI does, before the suite), print its path."""
    try:
        print(wstest(log=print))
    except AutobahnUnavailable as error:
        print(error.message)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
