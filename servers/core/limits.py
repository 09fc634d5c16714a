"""The limits and timeouts our servers enforce, each with the precedent that makes the
default defensible.  One frozen dataclass, shared by both scratch servers and by the
strict request checks, so a limit is defined in exactly one place and every one of them
is configurable from the command line.

What it deliberately does not do: enforce anything (``strict.py`` and the servers do),
or hold the contract's own per-route limits (1 MiB items, 16 MiB echo), which belong to
the applications (``layers/shared/validation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # Request line (method SP target SP version).  RFC 9112 section 3 recommends
    # supporting at least 8000 octets; Apache's LimitRequestLine is 8190, gunicorn's
    # limit_request_line 4094, nginx's large_client_header_buffers 8 KiB, node 16 KiB
    # for the whole head.  Over: 414.
    max_request_line: int = 8190
    # One header field line.  gunicorn limit_request_field_size 8190, Apache
    # LimitRequestFieldSize 8190.  Over: 431 (RFC 6585 section 5).
    max_header_line: int = 8190
    # Number of header fields.  gunicorn limit_request_fields 100, Apache 100.  Over: 431.
    max_header_count: int = 100
    # The whole head, request line included.  node's --max-http-header-size 16 KiB,
    # h11's default max_incomplete_event_size and hypercorn's h11_max_incomplete_size
    # 16 KiB, nginx 4 x 8 KiB large_client_header_buffers, waitress's
    # max_request_header_size 256 KiB; we allow 64 KiB, between them.  Over: 431.
    max_head_bytes: int = 65536
    # Empty lines (CRLF) ignored before a request line.  RFC 9112 section 2.2 asks a
    # server to ignore "at least one"; Apache httpd ignores up to 10
    # (DEFAULT_LIMIT_BLANK_LINES) and answers 400 past that.  Unbounded, a client could
    # send CRLF forever and never start a head.  Over: 400.
    max_empty_lines: int = 10
    # Request body, enforced by the server before the app sees it.  The contract's own
    # limits are smaller (1 MiB items, 16 MiB echo), so this is a backstop, like nginx's
    # client_max_body_size (1 MiB by default there, too small for the echo); 0 disables.
    # Over: 413.
    max_body_bytes: int = 64 * 1024 * 1024
    # Seconds to receive a complete request head once its first byte has arrived
    # (Apache mod_reqtimeout header=20-40, nginx client_header_timeout 60s).  Slowloris
    # defence: a client that trickles its headers is cut off.
    header_timeout: float = 20.0
    # Seconds to wait for the next piece of a request body the application asked for
    # (Apache mod_reqtimeout body=20, nginx client_body_timeout 60s, waitress
    # channel_timeout 120s).  Over: 408, or the connection closes while draining.
    body_timeout: float = 20.0
    # Unread request body discarded after a complete response so the connection can
    # carry the next request (Go's net/http discards up to 256 KiB --
    # maxPostHandlerReadBytes -- then closes; nginx discards without a limit, under
    # lingering_timeout).  More than this left unread: the response says
    # "Connection: close" and the connection ends with a lingering close.
    max_drain_bytes: int = 256 * 1024
    # Seconds a refused or closing connection keeps discarding input before it closes
    # (Apache's lingering close reads for up to 2 s between reads, 30 s in all; nginx
    # lingering_time 30 s, lingering_timeout 5 s).  Short: it is a courtesy.
    linger_timeout: float = 2.0
    # Seconds an idle keep-alive connection is kept (uvicorn 5, gunicorn keepalive 2,
    # nginx keepalive_timeout 75).
    keepalive_timeout: float = 5.0
    # Requests served at once before new ones are answered 503 (overload shedding,
    # like uvicorn's --limit-concurrency; 0 disables).
    max_concurrency: int = 0
    # listen() backlog (gunicorn --backlog 2048, uvicorn 2048; the kernel caps it at
    # net.core.somaxconn).
    backlog: int = 2048
    # WebSocket message size (the contract's 16 MiB echo; websockets' default is 1 MiB,
    # uvicorn --ws-max-size 16 MiB).  Over: close 1009 (RFC 6455 section 7.4.1).
    max_ws_message: int = 16 * 1024 * 1024
    # Seconds to let in-flight requests finish after SIGTERM (gunicorn graceful_timeout 30).
    graceful_timeout: float = 30.0
