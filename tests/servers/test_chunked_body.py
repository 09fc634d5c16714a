"""The chunked-body grammar as written (servers/core/strict.py, ChunkedBody): every corpus case with a chunked body,
and the four places h11 reads it differently, fed whole, one byte at a time and in random pieces."""

from __future__ import annotations

import random

import pytest

from layercake.corpus import load_corpus
from servers.core.limits import Limits
from servers.core.strict import CHUNK_RULES, RULES, ChunkedBody, Rejection, check_head

LIMITS = Limits()


def feed(
    body: bytes, pieces: list[bytes] | None = None, limits: Limits = LIMITS
) -> tuple[Rejection | None, bool, bytes]:
    checker = ChunkedBody(limits)
    answer = None
    for piece in pieces if pieces is not None else [body]:
        answer = checker.feed(piece)
        if answer is not None:
            break
    return answer, checker.done, checker.rest


def splittings(body: bytes) -> list[list[bytes]]:
    ways = [[body], [body[i : i + 1] for i in range(len(body))]]
    for seed in range(5):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 8)))) if len(body) > 1 else []
        ways.append([body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)])
    return ways


def answer_in_every_splitting(body: bytes) -> tuple[Rejection | None, bool, bytes]:
    answers = {feed(body, pieces) for pieces in splittings(body)}
    assert len(answers) == 1, answers  # segmentation independence
    return answers.pop()


ACCEPTED = {
    "one chunk": b"5\r\nhello\r\n0\r\n\r\n",
    "uppercase hex": b"A\r\n0123456789\r\n0\r\n\r\n",
    "leading zeros": b"0005\r\nhello\r\n000\r\n\r\n",
    "extension": b"5;name=value\r\nhello\r\n0\r\n\r\n",
    "extension without value": b"5;flag\r\nhello\r\n0;x\r\n\r\n",
    "several extensions": b"5;a=1;b;c=two\r\nhello\r\n0\r\n\r\n",
    "quoted extension": b'5;name="a \\"b\\" c"\r\nhello\r\n0\r\n\r\n',
    # RFC 9110 §5.6.3: "a recipient MUST parse for such bad whitespace and remove it" -- h11 refuses this one.
    "BWS in extension": b"5 ; name = value\r\nhello\r\n0\r\n\r\n",
    "trailer": b"5\r\nhello\r\n0\r\nX-Trailer: v\r\nX-Other:\tw \r\n\r\n",
    "empty body": b"0\r\n\r\n",
}

REJECTED = {
    "size not hex": (b"5g\r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-size-syntax"]),
    "size empty": (b"\r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-size-syntax"]),
    "size 0x": (b"0x5\r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-size-syntax"]),
    "size negative": (b"-5\r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-size-syntax"]),
    # h11 accepts these three (OWS before CRLF; ";.*"; bare LF lines in its trailer reader).
    "space after size": (b"5 \r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-size-syntax"]),
    "control byte in extension": (b"5;na\x01me\r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-ext-syntax"]),
    "trailer bare LF": (b"5\r\nhello\r\n0\r\nX-Trailer: v\n\r\n", CHUNK_RULES["chunk-bare-lf"]),
    "unterminated quoted value": (b'5;a="b\r\nhello\r\n0\r\n\r\n', CHUNK_RULES["chunk-ext-syntax"]),
    "extension value missing": (b"5;a=\r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-ext-syntax"]),
    "size line bare LF": (b"5\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-bare-lf"]),
    "data then bare LF": (b"5\r\nhello\n0\r\n\r\n", CHUNK_RULES["chunk-data-crlf"]),
    "data longer than size": (b"3\r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-data-crlf"]),
    "trailer no colon": (b"0\r\nnot a field\r\n\r\n", RULES["field-no-colon"]),
    "trailer space before colon": (b"0\r\nX-T : v\r\n\r\n", RULES["whitespace-before-colon"]),
    "trailer obs-fold": (b"0\r\nX-T: a\r\n b\r\n\r\n", RULES["obs-fold"]),
    "trailer ctl in value": (b"0\r\nX-T: a\x01b\r\n\r\n", RULES["field-value-ctl"]),
    "chunk over the body limit": (b"fffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", CHUNK_RULES["chunk-too-large"]),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted(name: str) -> None:
    body = ACCEPTED[name]
    assert answer_in_every_splitting(body + b"GET / HTTP/1.1\r\n") == (None, True, b"GET / HTTP/1.1\r\n")


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected(name: str) -> None:
    body, rule = REJECTED[name]
    answer, done, _ = answer_in_every_splitting(body)
    assert answer == rule and not done


def test_incomplete_body_is_neither_done_nor_rejected() -> None:
    for prefix in (b"5", b"5\r", b"5\r\nhel", b"5\r\nhello\r", b"5\r\nhello\r\n0\r\n", b"5\r\nhello\r\n0\r\nX: v\r\n"):
        assert feed(prefix)[:2] == (None, False)


def test_long_lines_and_large_trailers_are_refused() -> None:
    small = Limits(max_header_line=10, max_head_bytes=30, max_header_count=2)
    assert feed(b"5;" + b"a" * 20 + b"\r\n", limits=small)[0] == CHUNK_RULES["chunk-line-too-long"]
    # The CR of the CRLF is not part of the line: a line of exactly the limit passes.
    assert feed(b"5;aaaaaaa\r\nhello\r\n0\r\n\r\n", limits=small)[:2] == (None, True)
    assert feed(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits=small)[0] == CHUNK_RULES["trailer-too-large"]
    assert feed(b"0\r\n" + b"X: 1234\r\n" * 4, limits=small)[0] == CHUNK_RULES["trailer-too-large"]
    # A chunk bigger than max_body_bytes is refused at its size line; 0 disables the limit.
    assert feed(b"65\r\n", limits=Limits(max_body_bytes=100))[0] == CHUNK_RULES["chunk-too-large"]
    assert feed(b"65\r\n", limits=Limits(max_body_bytes=0))[0] is None


MARKER = b"transfer-encoding: chunked\r\n\r\n"  # the body follows the head's last field
# The cases whose head passes the gate (the others never get to their body).
CHUNKED_CASES = [
    case
    for case in load_corpus()
    if MARKER in case.raw.lower() and check_head(case.raw[: case.raw.index(b"\r\n\r\n") + 4], LIMITS) is None
]


@pytest.mark.parametrize("case", CHUNKED_CASES, ids=[case.id for case in CHUNKED_CASES])
def test_corpus_chunked_bodies_agree_with_the_case_files(case) -> None:  # type: ignore[no-untyped-def]
    body = case.raw[case.raw.lower().index(MARKER) + len(MARKER) :]
    answer, done, _ = answer_in_every_splitting(body)
    if answer is None:
        assert done and case.expect[0] & {200}, case.id
    else:
        assert answer.status in case.expect[0], (case.id, answer)


def test_every_chunk_rule_has_a_status_and_a_citation() -> None:
    for rejection in CHUNK_RULES.values():
        assert 400 <= rejection.status < 500 and rejection.rule.startswith("RFC ")
