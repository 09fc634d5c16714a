"""The Go peer's binary: built from ``go_peer.go`` on first use, cached, rebuilt when the source changes.

Theory of operation
-------------------
``go_peer.go`` ships as source (a binary in a Python package would be one platform's).  The first
``layercake bench --peers`` on a machine with ``go`` (Debian's ``golang-go``) runs ``go build`` once
into ``$XDG_CACHE_HOME/layercake/go-peer/`` (default ``~/.cache/layercake/go-peer/``); the binary's
name carries a hash of the source and of ``go version``, so an edited source or a new toolchain
builds anew and an unchanged one never does.  The build uses only the standard library, so it runs
offline: ``GOFLAGS=-mod=mod`` is not needed, ``GOPROXY=off`` makes sure nothing is fetched, and
``GOCACHE`` lives beside the binary so nothing is written elsewhere.

Without ``go`` on the PATH the peer is skipped with the reason (:func:`unavailable`), never an error:
``--peers`` still runs the Node.js peer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from layercake.errors import LayercakeError

SOURCE = Path(__file__).resolve().parent / "go_peer.go"
#: A build on a busy two-core machine takes 10-30 s the first time (the standard library compiles
#: into GOCACHE); a hung toolchain is a bug, so it is bounded.
BUILD_TIMEOUT = 300


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "layercake" / "go-peer"


def go_version() -> str | None:
    go = shutil.which("go")
    if not go:
        return None
    done = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or None


def unavailable() -> str | None:
    """Why the Go peer cannot run here (None: it can)."""
    if not shutil.which("go"):
        return "go is not on the PATH: the Go net/http peer is skipped (install it: apt install golang-go)"
    return None


def binary_path(version: str) -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + version.encode()).hexdigest()[:12]
    return cache_dir() / f"go-peer-{digest}"


def build() -> Path:
    """The peer's binary, built now if it is not in the cache; raises :class:`LayercakeError` on failure."""
    reason = unavailable()
    if reason:
        raise LayercakeError(reason)
    version = go_version() or "go"
    out = binary_path(version)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GOCACHE": str(cache_dir() / "gocache"),
        "GOPATH": str(cache_dir() / "gopath"),
        "GOPROXY": "off",
        "GO111MODULE": "off",  # one file, standard library only: no module, nothing to resolve
        "CGO_ENABLED": "0",
    }
    tmp = out.with_suffix(".tmp")
    try:
        done = subprocess.run(
            ["go", "build", "-o", str(tmp), str(SOURCE)],
            capture_output=True,
            text=True,
            env=env,
            timeout=BUILD_TIMEOUT,
            cwd=out.parent,
        )
    except subprocess.TimeoutExpired:
        raise LayercakeError(f"go build of the Go peer took over {BUILD_TIMEOUT} s") from None
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise LayercakeError(f"go build of {SOURCE.name} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    tmp.replace(out)  # atomic: a concurrent run sees either no binary or a whole one
    return out
