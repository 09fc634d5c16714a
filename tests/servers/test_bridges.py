"""The asgi->wsgi bridge where a2wsgi alone would hold a WSGI worker for ever.

Both found by Django's ASGI handler behind a sync WSGI server: it waits for the whole
body, and it returns without a response when the client goes away mid-body.
"""

from __future__ import annotations

import io
import threading
from typing import Any

from servers.bridges import asgi_to_wsgi


class _GoneMidBody(io.RawIOBase):
    """wsgi.input of a client that declared 10 bytes, sent 4 and went away: then only EOF."""

    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            return b""
        self.sent = True
        return b"abcd"


def _call(app: Any) -> tuple[list[str], bytes]:
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": "10",
        "wsgi.input": _GoneMidBody(),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    statuses: list[str] = []
    result: dict[str, bytes] = {}

    def run() -> None:
        result["body"] = b"".join(asgi_to_wsgi(app, lifespan=False)(environ, lambda s, h, e=None: statuses.append(s)))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the WSGI call never returned: the worker is held"
    return statuses, result["body"]


def test_a_client_gone_mid_body_is_a_disconnect_and_an_app_without_response_gets_500() -> None:
    seen: list[dict[str, Any]] = []

    async def whole_body_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:  # Django's ASGIHandler.read_body: until the last chunk or a disconnect
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                return  # gone: nothing to answer (Django returns without a response)

    statuses, body = _call(whole_body_app)
    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]
    assert seen[0]["body"] == b"abcd"
    assert statuses == ["500 Internal Server Error"] and body == b"Internal Server Error"
