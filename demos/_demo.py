"""What every demo shares: a ``--seconds`` option, a ``--port``, and serving one layer.

Demos are plain scripts (``python demos/01_bare_wsgi.py``); this module puts the project
root on ``sys.path`` so they run from a fresh clone without installing anything, then
hands the real work to the same library calls the ``layercake`` command uses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from layercake.errors import LayercakeError  # noqa: E402


def arguments(doc: str, port: int | None = 8000) -> argparse.Namespace:
    """``--seconds N`` (stop by itself; default: run until Ctrl-C) and ``--port``."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    if port is not None:
        parser.add_argument("--port", type=int, default=port, help="port to serve on (0: a free one)")
    return parser.parse_args()


def fail(exc: LayercakeError) -> None:
    print(f"demo: {exc.message}", file=sys.stderr)
    raise SystemExit(exc.exit_code)


def serve_layer(doc: str, layer: str, server: str) -> None:
    """Serve ``layer`` on ``server`` the way ``layercake serve`` does, after a quick look at it."""
    from layercake.serving import serve
    from servers.registry import ServerOptions

    args = arguments(doc)
    print(doc.strip(), end="\n\n")
    try:
        serve(layer, server, ServerOptions(port=args.port, access_log=True, capture_output=False), seconds=args.seconds)
    except LayercakeError as exc:
        fail(exc)
