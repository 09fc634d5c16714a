"""What a result was measured on: recorded with every result, because a number without it is a rumour.

Theory of operation
-------------------
:func:`describe` gathers, once per run: the machine (hostname, kernel, CPU model,
how many CPUs the OS has and how many this process may use), Python (version,
implementation, build), the versions of every package that can change a result
(the frameworks, servers, parsers and event loops), the load generator (wrk's
version, or the built-in generator and its measured ceiling, filled in by the
runner), the CPU pinning used, and the load average when the run started -- a busy
machine is recorded as busy.

What it deliberately doesn't do: anything that needs root (CPU frequency governors,
turbo state) or the network.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

#: Packages whose version can move a benchmark figure.
PACKAGES = (
    "layercake",
    "starlette",
    "fastapi",
    "pydantic",
    "pydantic-core",
    "werkzeug",
    "flask",
    "a2wsgi",
    "h11",
    "httptools",
    "uvloop",
    "uvicorn",
    "gunicorn",
    "hypercorn",
    "granian",
    "waitress",
    "anyio",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def wrk_version() -> str | None:
    path = shutil.which("wrk")
    if not path:
        return None
    done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    first = (done.stdout or done.stderr).strip().splitlines()
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer" -> "wrk debian/4.1.0-3+b2 [epoll]"
    return first[0].split(" Copyright")[0].strip() if first else "wrk (unknown version)"


def node_version() -> str | None:
    path = shutil.which("node")
    if not path:
        return None
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    return done.stdout.strip() or None


def go_version() -> str | None:
    """``go version``'s output (the Go peer's toolchain), None when go is not installed."""
    from layercake.bench.go_build import go_version as version

    return version()


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def describe() -> dict[str, Any]:
    """The environment of this run, JSON-ready."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "loadavg_at_start": load,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": " ".join(platform.python_build()),
        "executable": sys.executable,
        "packages": package_versions(),
        "wrk": wrk_version(),
        "node": node_version(),
        "go": go_version(),
    }
