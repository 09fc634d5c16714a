"""Servers: our two annotated servers on a sans-I/O core, and the registry of real ones.

* ``servers/core/`` -- HTTP framing, strict request checks, environ and scope building,
  the ASGI send state machine and WebSocket sessions, with no I/O at all;
* ``scratch_wsgi.py`` and ``scratch_asgi.py`` -- the thin I/O shells around that core;
* ``registry.py`` -- every server layercake can start, as data; ``supervise.py`` -- starting
  one as a subprocess, waiting until it listens, stopping its whole process group;
* ``bridges.py`` -- a2wsgi in both directions, so any layer runs on any server.

Start with ``servers/README.md``.
"""
