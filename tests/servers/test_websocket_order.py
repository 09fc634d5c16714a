"""The WebSocket session fails the connection in stream order (servers/core/websocket.py, "Failing the connection,
in order"): messages that arrived before a protocol error are delivered and may be answered, then the close frame.

Byte level: the frames Autobahn sends in cases 3.2 (RSV bit), 4.1.3 (reserved opcode) and 5.15 (a continuation
with nothing to continue), fed whole, one byte per call and with bytes after the bad frame.
"""

from __future__ import annotations

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Ping, TextMessage

from servers.core.http import ClientDisconnected
from servers.core.websocket import Outcome, WebSocketSession

MASK = b"\x01\x02\x03\x04"


def masked(first_byte: int, payload: bytes) -> bytes:
    """A client frame by hand (RFC 6455 §5.2), so it can break the rules wsproto's client would not let us break."""
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([first_byte, 0x80 | len(payload)]) + MASK + body


def client(*events: object) -> bytes:
    conn = Connection(ConnectionType.CLIENT)
    return b"".join(conn.send(event) for event in events)  # type: ignore[arg-type]


HELLO = client(TextMessage("Hello"))
BAD_FRAMES = {
    "rsv2-set": masked(0x81 | 0x20, b"Hello"),  # RSV2 without an extension (§5.2): Autobahn 3.2
    "opcode-5": masked(0x85, b""),  # reserved non-control opcode (§5.2): Autobahn 4.1.3
    "stray-continuation": masked(0x80, b"frag"),  # continuation with no message started (§5.4): Autobahn 5.15
}
PING = client(Ping(b"p"))


def feed(session: WebSocketSession, data: bytes, how: str) -> Outcome:
    total = Outcome()
    pieces = [data] if how == "whole" else [data[i : i + 1] for i in range(len(data))]
    for piece in pieces:
        outcome = session.receive_data(piece)
        total.messages += outcome.messages
        total.output += outcome.output
        total.close = total.close or outcome.close
    return total


@pytest.mark.parametrize("how", ["whole", "bytewise"])
@pytest.mark.parametrize("bad", sorted(BAD_FRAMES))
def test_message_before_protocol_error_is_delivered_and_answered_then_failed(bad: str, how: str) -> None:
    session = WebSocketSession(1024)
    outcome = feed(session, HELLO + BAD_FRAMES[bad] + PING, how)
    if how == "bytewise":
        # One byte per call: the message completes in an earlier call than the bad frame, which then fails at once
        # (nothing of its own batch to deliver); the message is already with the server, answered before that.
        assert outcome.messages[0] == {"type": "websocket.receive", "text": "Hello"}
        assert outcome.close and outcome.messages[-1]["code"] == 1002
        return
    # The batch: the message is delivered, nothing is written yet, the connection stays up.
    assert outcome.messages == [{"type": "websocket.receive", "text": "Hello"}]
    assert outcome.output == b"" and not outcome.close
    assert session.failure_pending
    # The ping after the bad frame is never answered (RFC 6455 §7.1.7: no processing after the error), and more
    # bytes from the client change nothing.
    assert session.receive_data(PING) == Outcome()
    # The app answers the message it received: the echo goes out before any close frame.
    assert session.send({"type": "websocket.send", "text": "Hello"}) == b"\x81\x05Hello"
    # The app asks for its next message: now the connection is failed, close code 1002 (protocol error).
    failed = session.fail_pending()
    assert failed.output[:1] == b"\x88" and failed.output[2:4] == (1002).to_bytes(2, "big")
    assert failed.close and failed.messages == [
        {"type": "websocket.disconnect", "code": 1002, "reason": failed.messages[0]["reason"]}
    ]
    assert not session.failure_pending
    with pytest.raises(ClientDisconnected):
        session.send({"type": "websocket.send", "text": "late"})


def test_protocol_error_alone_fails_at_once() -> None:
    outcome = WebSocketSession(1024).receive_data(BAD_FRAMES["opcode-5"] + PING)
    assert outcome.close and outcome.output[2:4] == (1002).to_bytes(2, "big")
    assert outcome.messages == [{"type": "websocket.disconnect", "code": 1002, "reason": outcome.messages[0]["reason"]}]
    assert b"\x8a" not in outcome.output  # no Pong: the ping came after the error


def test_invalid_utf8_after_a_message_is_1007_in_order() -> None:
    bad_text = masked(0x81, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")  # a surrogate: not UTF-8
    session = WebSocketSession(1024)
    outcome = session.receive_data(HELLO + bad_text)
    assert outcome.messages == [{"type": "websocket.receive", "text": "Hello"}] and not outcome.close
    assert session.fail_pending().output[2:4] == (1007).to_bytes(2, "big")


def test_connection_lost_while_failure_pending_is_1006() -> None:
    session = WebSocketSession(1024)
    session.receive_data(HELLO + BAD_FRAMES["rsv2-set"])
    outcome = session.receive_data(None)
    assert outcome.close and outcome.messages == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    assert session.fail_pending() == Outcome()


def test_shutdown_while_failure_pending_sends_the_protocol_error() -> None:
    session = WebSocketSession(1024)
    session.receive_data(HELLO + BAD_FRAMES["rsv2-set"])
    assert session.shutdown(1001)[2:4] == (1002).to_bytes(2, "big")


def test_pending_failure_never_fires_without_an_error() -> None:
    session = WebSocketSession(1024)
    outcome = session.receive_data(HELLO + PING)
    assert outcome.messages == [{"type": "websocket.receive", "text": "Hello"}] and outcome.output == b"\x8a\x01p"
    assert not session.failure_pending and session.fail_pending() == Outcome()
