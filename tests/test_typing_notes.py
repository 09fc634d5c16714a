"""Every ``type: ignore`` left in the code says why, on its own line (the types are checked in CI by mypy, with
``warn_unused_ignores``, so an ignore that is no longer needed fails there)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(?P<after>.*)$")


def test_every_type_ignore_says_why() -> None:
    bare = []
    for folder in ("servers", "layers", "layercake"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                match = IGNORE.search(line)
                if match and not match.group("after").strip().startswith("#"):
                    bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "a type: ignore without its reason:\n" + "\n".join(bare)
