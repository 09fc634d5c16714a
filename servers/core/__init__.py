"""The sans-I/O core of the scratch servers: bytes and h11 events in, bytes and WSGI/ASGI objects out.

Nothing in this package imports ``socket``, ``selectors``, ``threading`` or ``asyncio`` (a test checks it): every
rule about HTTP framing, the environ and scope, and what an application may send lives here, where it can be
tested with plain bytes, while ``servers/scratch_wsgi.py`` and ``servers/scratch_asgi.py`` only move bytes between
sockets and these objects.

=================  ===========================================================================================
``limits``         every limit and timeout, with its precedent
``head``           finding the end of a request head and running the strict checks before h11 sees it
``strict``         the request-head rules h11 leaves to the server
``http``           one h11 connection per cycle, the Date header, request targets, rejections, the access log
``writer``         responses written by hand: status line, fields, framing, persistence (RFC 9112)
``wsgi``           environ (PEP 3333), ``wsgi.input``, ``start_response``/``write()``
``asgi``           HTTP and WebSocket scopes, the HTTP ``send()`` state machine
``websocket``      RFC 6455 handshake checks and a wsproto session speaking ASGI messages
=================  ===========================================================================================
"""

from servers.core.limits import Limits

__all__ = ["Limits"]
