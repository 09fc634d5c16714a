"""Output files a command was asked to write, checked before the work starts.

A benchmark that runs for ten minutes and then cannot write its ``--json`` has wasted ten
minutes; ``soak --json`` into a missing directory used to print "soak passed" and then
exit 1.  So every command that writes files (``verify``, ``grid``, ``trace``,
``scope-diff``, ``probe``, ``soak``, ``bench``) calls :func:`prepare` on them first, the
same way: a missing parent directory is created (what ``bench`` always did, and what
``mkdir -p`` in front of the command would do), and a path that cannot be written -- a
directory in its place, a parent that is a file, no permission -- is refused now, in one
line, with exit status 2.  Nothing is created at the path itself, so an interrupted or
failed run leaves no empty file behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from layercake.errors import LayercakeError


class BadOutput(LayercakeError):
    """An output path that cannot be written; exit 2, like any other bad argument."""

    exit_code = 2


def prepare(*paths: str | Path | None, directories: tuple[str | Path | None, ...] = ()) -> None:
    """Check each output file (and each output directory) can be written; create missing parents."""
    for given in paths:
        if given is None:
            continue
        path = Path(given)
        if path.is_dir():
            raise BadOutput(f"{path}: is a directory; give a file name")
        _writable_directory(path.parent if str(path.parent) else Path("."), for_what=path)
        if path.exists() and not os.access(path, os.W_OK):
            raise BadOutput(f"{path}: not writable")
    for given in directories:
        if given is not None:
            _writable_directory(Path(given), for_what=Path(given))


def _writable_directory(directory: Path, for_what: Path) -> None:
    existing = directory
    while not existing.exists():  # the nearest ancestor that exists must be a writable directory
        existing = existing.parent
    if not existing.is_dir():
        raise BadOutput(f"{for_what}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadOutput(f"{for_what}: cannot create files in {existing} (permission denied)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadOutput(f"{for_what}: cannot create {directory}: {exc.strerror or exc}") from None
