"""The static site: ``layercake site [--out DIR] [--serve]``.

:func:`build_site` (in :mod:`layercake.site.build`) writes the pages; :func:`serve_site`
serves them with our own ``scratch-wsgi`` server running the static-file app in
:mod:`layercake.site.serve` -- the site about the servers is served by one of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from layercake.errors import LayercakeError
from layercake.site.build import BuildReport, annotated_files, build_site, source_page

if TYPE_CHECKING:
    from servers.supervise import RunningServer

__all__ = ["BuildReport", "annotated_files", "build_site", "serve_site", "source_page", "start_site_server"]

SERVE_WITH = "scratch-wsgi"
APP_TARGET = "layercake.site.serve:app"


def start_site_server(
    out: Path | str, port: int = 0, host: str = "127.0.0.1", capture_output: bool = True
) -> RunningServer:
    """Start scratch-wsgi serving the built site in ``out``; a ``RunningServer`` (a context manager).

    The server is started through the registry like any layer, with ``app_target``
    pointing at the static-file app and ``LAYERCAKE_SITE`` telling it which directory.
    """
    from servers.registry import ServerOptions
    from servers.supervise import start_server

    root = Path(out).resolve()
    if not (root / "index.html").is_file():
        raise LayercakeError(f"no site in {out}: build it first with `layercake site --out {out}`")
    # The registry starts a layer; bare_wsgi is named only for its interface (WSGI):
    # app_target replaces the application it would serve.
    opts = ServerOptions(
        host=host, port=port, app_target=APP_TARGET, env={"LAYERCAKE_SITE": str(root)}, capture_output=capture_output
    )
    return start_server(SERVE_WITH, "bare_wsgi", opts)


def serve_site(out: Path | str, port: int = 8000, host: str = "127.0.0.1", log: Callable[[str], None] = print) -> None:
    """Serve the site on scratch-wsgi until Ctrl-C, SIGTERM or SIGHUP (the terminal closing).

    The server runs in its own process group (the registry starts it so, to reach every
    worker); a signal to us must therefore stop it explicitly, or it would outlive us.
    The same stop as ``layercake serve`` (:mod:`layercake.serving`): graceful, and a
    second signal kills the group at once.
    """
    from layercake.serving import signals_interrupt, stop_server

    def say(line: str) -> None:
        try:
            log(line)
        except OSError:  # the terminal is gone: stopping the server matters more
            pass

    with signals_interrupt():
        server = None
        try:
            server = start_site_server(out, port, host, capture_output=False)
            # scratch-wsgi has printed its own "serving on URL" line: this one says what and how.
            say(
                f"the site in {out} is at {server.url}/ (pid {server.pid}): "
                f"LAYERCAKE_SITE={Path(out).resolve()} {server.native_command}; Ctrl-C stops it"
            )
            while server.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            say("stopping")
        finally:
            if server is not None:
                say(stop_server(server))
