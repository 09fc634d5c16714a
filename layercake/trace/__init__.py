"""Trace one request through the stack: bytes, parser, environ/scope, framework, handler, bytes.

``run.trace()`` starts a layer on a server with recorders inside the server process
(``recorder.py`` for the interface, ``observers.py`` for the parser, ``profiler.py`` for
the call tree, ``packages.py`` for the colours, assembled by ``instrumented.py`` and loaded as
``target.py``), sends one real request over loopback and returns a
:class:`~layercake.trace.model.Trace`; ``render.py`` shows it in the terminal or as one
HTML page.  ``scope_diff()`` and ``lifespan()`` use the same
machinery to compare servers and to watch the lifespan protocol.
"""

from layercake.trace.model import STEPS, LifespanRecord, ScopeDiff, Trace
from layercake.trace.packages import PACKAGES, classify_file
from layercake.trace.run import lifespan, scope_diff, trace

__all__ = [
    "PACKAGES",
    "STEPS",
    "LifespanRecord",
    "ScopeDiff",
    "Trace",
    "classify_file",
    "lifespan",
    "scope_diff",
    "trace",
]
