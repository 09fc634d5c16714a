"""The strict request-head checks with plain bytes: no sockets, no servers.

Every rule in ``strict.RULES`` is produced by at least one head here; every corpus case
gets the same answer whole, byte by byte and in random pieces (the server calls
``check_partial_head`` on each read, then ``check_head`` on the complete head); and
hypothesis checks that arbitrary bytes only ever give ``None`` or one of the table's
rejections, with the same segmentation independence.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layercake.corpus import load_corpus
from servers.core import strict
from servers.core.head import TOO_MANY_EMPTY_LINES
from servers.core.limits import Limits
from servers.core.strict import RULES, Rejection, check_head, check_partial_head

LIMITS = Limits()
CORPUS = load_corpus()


def head(*lines: bytes) -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


GET = b"GET / HTTP/1.1"
HOST = b"Host: example.com"

# (rule name, head): the head must be refused by exactly that rule.
REJECTED = [
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
    ("bare-lf", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"),
    ("bare-lf", b"\r\n\n" + head(GET, HOST)),
    ("bare-lf", b"GET / HTTP/1.1\r\nHost: a\n\n"),  # any spelling of the empty line is a head end
    ("bare-lf", b"GET / HTTP/1.1\r\nHost: a\n\r\n"),
    ("request-line-too-long", head(b"GET /" + b"a" * 9000 + b" HTTP/1.1", HOST)),
    ("field-line-too-long", head(GET, HOST, b"X: " + b"a" * 9000)),
    ("too-many-fields", head(GET, HOST, *[b"X: y"] * 100)),
    ("head-too-large", head(GET, HOST, *[b"X: " + b"a" * 8000] * 9)),
    ("request-line-syntax", head(b"GET  / HTTP/1.1", HOST)),
    ("request-line-syntax", head(b"GET /", HOST)),
    ("request-line-syntax", head(b"GET / HTTP/1.1 ", HOST)),
    ("request-line-syntax", head(b"GET\t/ HTTP/1.1", HOST)),
    ("method-syntax", head(b"G(T / HTTP/1.1", HOST)),
    ("version-syntax", head(b"GET / HTTP/1.10", HOST)),
    ("version-syntax", head(b"GET / http/1.1", HOST)),
    ("version-syntax", head(b"GET / HTTP/1.1\rX", HOST)),
    ("version-unsupported", head(b"GET / HTTP/2.0", HOST)),
    ("version-unsupported", head(b"GET / HTTP/0.9", HOST)),
    ("version-unsupported", head(b"PRI * HTTP/2.0")),
    ("target-bytes", head(b"GET /a#b HTTP/1.1", HOST)),
    ("target-bytes", head(b"GET /\x00 HTTP/1.1", HOST)),
    ("target-bytes", head(b"GET /caf\xe9 HTTP/1.1", HOST)),
    ("target-bytes", head(b"GET /\x7f HTTP/1.1", HOST)),
    ("target-form", head(b"GET index.html HTTP/1.1", HOST)),
    ("target-form", head(b"GET example.com:80 HTTP/1.1", HOST)),
    ("asterisk-not-options", head(b"GET * HTTP/1.1", HOST)),
    ("connect-not-authority", head(b"CONNECT / HTTP/1.1", HOST)),
    ("connect-not-authority", head(b"CONNECT example.com HTTP/1.1", HOST)),
    ("connect-not-authority", head(b"CONNECT :443 HTTP/1.1", HOST)),
    ("connect-not-authority", head(b"CONNECT http://example.com/ HTTP/1.1", HOST)),
    ("absolute-form-invalid", head(b"GET ftp://example.com/ HTTP/1.1", HOST)),
    ("absolute-form-invalid", head(b"GET http:///x HTTP/1.1", HOST)),
    ("absolute-form-invalid", head(b"GET http://u@example.com/ HTTP/1.1", HOST)),
    ("absolute-form-invalid", head(b"GET http://:80/ HTTP/1.1", HOST)),
    ("whitespace-after-request-line", head(GET, b" X: y", HOST)),
    ("obs-fold", head(GET, HOST, b"X: y", b"\tz")),
    ("field-no-colon", head(GET, HOST, b"X")),
    ("whitespace-before-colon", head(GET, b"Host : a")),
    ("whitespace-before-colon", head(GET, HOST, b"X\t: y")),
    ("field-name-syntax", head(GET, HOST, b": y")),
    ("field-name-syntax", head(GET, HOST, b"X@Y: z")),
    ("field-value-crlf-nul", head(GET, HOST, b"X: a\x00b")),
    ("field-value-crlf-nul", head(GET, HOST, b"X: a\rb")),
    ("field-value-ctl", head(GET, HOST, b"X: a\x1bb")),
    ("field-value-ctl", head(GET, HOST, b"X: a\x7f")),
    ("host-missing", head(GET)),
    ("host-repeated", head(GET, HOST, HOST)),
    ("host-repeated", head(b"GET / HTTP/1.0", HOST, HOST)),
    ("host-invalid", head(GET, b"Host: a b")),
    ("host-invalid", head(GET, b"Host: a/b")),
    ("host-invalid", head(GET, b"Host: a:b")),
    ("host-invalid", head(GET, b"Host: a, b")),
    ("te-in-http10", head(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked")),
    ("cl-and-te", head(b"POST / HTTP/1.1", HOST, b"Content-Length: 1", b"Transfer-Encoding: chunked")),
    ("cl-and-te", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked", b"Content-Length: 1")),
    ("cl-repeated", head(b"POST / HTTP/1.1", HOST, b"Content-Length: 1", b"Content-Length: 1")),
    ("cl-repeated", head(b"POST / HTTP/1.1", HOST, b"Content-Length: 1,1")),
    ("cl-invalid", head(b"POST / HTTP/1.1", HOST, b"Content-Length: +1")),
    ("cl-invalid", head(b"POST / HTTP/1.1", HOST, b"Content-Length: 1 1")),
    ("cl-invalid", head(b"POST / HTTP/1.1", HOST, b"Content-Length:")),
    ("te-empty", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: , ,")),
    ("te-syntax", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chun ked")),
    ("te-syntax", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: ,chunked")),
    ("chunked-not-last", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked, gzip")),
    ("chunked-twice", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked")),
    ("te-unsupported", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: gzip, chunked")),
    ("te-unsupported", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: identity")),
    ("te-unsupported", head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked;q=1")),
    ("body-too-large", head(b"POST / HTTP/1.1", HOST, b"Content-Length: 67108865")),
    ("expect-unsupported", head(b"POST / HTTP/1.1", HOST, b"Expect: 100-continue, x")),
]

ACCEPTED = [
    head(GET, HOST),
    b"\r\n\r\n" + head(GET, HOST),  # RFC 9112 §2.2: CRLFs before the request line are ignored
    head(b"GET / HTTP/1.0"),
    head(GET, b"Host:"),
    head(GET, b"host:example.com:8080"),
    head(GET, b"Host: [::1]:80"),
    head(GET, b"Host: xn--caf-dma.example"),
    head(b"GET /?a=|{}^&b=%zz HTTP/1.1", HOST),
    head(b"GET http://example.com HTTP/1.1", HOST),
    head(b"GET HTTPS://example.com:443/a?b HTTP/1.1", HOST),
    head(b"OPTIONS * HTTP/1.1", HOST),
    head(b"CONNECT example.com:443 HTTP/1.1", b"Host: example.com:443"),
    head(b"M-SEARCH / HTTP/1.1", HOST),
    head(GET, HOST, b"X: \t a\tb \t", b"Y: caf\xe9", b"Z:"),
    head(b"POST / HTTP/1.1", HOST, b"Content-Length: 0"),
    head(b"POST / HTTP/1.1", HOST, b"Content-Length: 67108864"),
    head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: Chunked"),
    head(b"POST / HTTP/1.1", HOST, b"Expect: 100-Continue"),
    head(b"GET /" + b"a" * 8176 + b" HTTP/1.1", HOST),  # exactly 8190 bytes
    head(GET, HOST, *[b"X: y"] * 99),  # exactly 100 fields
]


@pytest.mark.parametrize(("rule", "data"), REJECTED, ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(REJECTED)])
def test_rejected(rule: str, data: bytes) -> None:
    assert check_head(data, LIMITS) == RULES[rule]


@pytest.mark.parametrize("data", ACCEPTED, ids=[repr(d[:40]) for d in ACCEPTED])
def test_accepted(data: bytes) -> None:
    assert check_head(data, LIMITS) is None


def test_every_rule_is_exercised() -> None:
    assert {rule for rule, _ in REJECTED} == set(RULES)


def test_rule_statuses_and_citations() -> None:
    for name, rejection in RULES.items():
        assert isinstance(rejection, Rejection)
        assert rejection.status in {400, 413, 414, 417, 431, 501, 505}, name
        assert rejection.rule.startswith("RFC "), name


def test_misuse_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        check_head(b"GET / HTTP/1.1\r\nHost: a\r\n", LIMITS)  # not complete
    with pytest.raises(ValueError):
        check_head(b"GET / HTTP/1.1\r\n\r\nHost: a\r\n\r\n", LIMITS)  # two heads
    with pytest.raises(ValueError):
        check_head(b"\r\n\r\n", LIMITS)  # no request line at all
    with pytest.raises(ValueError):
        check_partial_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", LIMITS)


def test_limits_come_from_the_limits_object() -> None:
    small = replace(Limits(), max_request_line=20, max_header_line=10, max_header_count=2, max_head_bytes=60)
    assert check_head(head(b"GET /" + b"a" * 6 + b" HTTP/1.1", b"Host: a"), small) is None  # 20 bytes
    assert check_head(head(b"GET /" + b"a" * 7 + b" HTTP/1.1", b"Host: a"), small) == RULES["request-line-too-long"]
    assert check_head(head(GET, b"Host: abcd"), small) is None  # 10 bytes
    assert check_head(head(GET, b"Host: abcde"), small) == RULES["field-line-too-long"]
    assert check_head(head(GET, b"Host: a", b"X: 1", b"Y: 2"), small) == RULES["too-many-fields"]
    body_limit = replace(Limits(), max_body_bytes=10)
    assert check_head(head(b"POST / HTTP/1.1", HOST, b"Content-Length: 11"), body_limit) == RULES["body-too-large"]
    unlimited = replace(Limits(), max_body_bytes=0)
    assert check_head(head(b"POST / HTTP/1.1", HOST, b"Content-Length: 11"), unlimited) is None


def test_partial_head_rejects_as_soon_as_certain() -> None:
    # A request line is over the limit once byte limit+1 arrives, not when it ends...
    assert check_partial_head(b"GET /" + b"a" * 8185, LIMITS) is None  # 8190 bytes
    assert check_partial_head(b"GET /" + b"a" * 8186, LIMITS) == RULES["request-line-too-long"]
    # ...unless that byte is a CR, which may be the start of the line's CRLF.
    assert check_partial_head(b"GET /" + b"a" * 8185 + b"\r", LIMITS) is None
    assert check_partial_head(b"GET /" + b"a" * 8185 + b"\r\n", LIMITS) is None
    assert check_partial_head(b"GET /" + b"a" * 8185 + b"\rX", LIMITS) == RULES["request-line-too-long"]
    # A bare LF is refused at once: the head would otherwise never "end".
    assert check_partial_head(b"GET / HTTP/1.1\n", LIMITS) == RULES["bare-lf"]
    assert check_partial_head(b"\r\n\r\nGET", LIMITS) is None
    assert check_partial_head(b"\r\n\n", LIMITS) == RULES["bare-lf"]
    assert check_partial_head(b"G", LIMITS) is None
    assert check_partial_head(b"", LIMITS) is None


# --- segmentation independence -------------------------------------------------------


def server_answer(data: bytes, cuts: list[int], limits: Limits = LIMITS) -> Rejection | None:
    """What a scratch server decides for the first request in ``data`` received in
    pieces ending at ``cuts``: the head reader's bound on leading empty lines, then
    check_partial_head on each incomplete buffer and check_head on the head cut at its
    first CRLF CRLF.  (The reader calls check_partial_head less often, for the same
    answer a little later; here every prefix is checked.)"""
    for cut in [*sorted(set(cuts)), len(data)]:
        buf = strict._skip_empty_lines(data[:cut])
        if (cut - len(buf)) // 2 > limits.max_empty_lines:
            return TOO_MANY_EMPTY_LINES
        end = strict._EMPTY_LINE.search(buf)
        if end is not None:
            return check_head(buf[: end.end()], limits)
        rejection = check_partial_head(buf, limits)
        if rejection is not None:
            return rejection
    return None


def every_byte(data: bytes) -> list[int]:
    return list(range(1, len(data) + 1))


def random_cuts(data: bytes, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12)))) if len(data) > 1 else []


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_corpus_case_is_segmentation_independent(case) -> None:
    whole = server_answer(case.raw, [])
    assert server_answer(case.raw, every_byte(case.raw)) == whole
    for seed in range(5):
        assert server_answer(case.raw, random_cuts(case.raw, seed)) == whole


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_corpus_case_matches_expected_status(case) -> None:
    # The head checks decide every rejection the corpus expects of the first request,
    # except the chunked-body ones, which h11 decides once the body arrives.
    answer = server_answer(case.raw, [])
    if answer is not None:
        assert answer.status in case.expect[0]
    else:
        assert case.category == "chunked" or case.expect[0] & {200, 204, 404, 405}


# --- hypothesis: random bytes only ever give None or a Rejection from the table ----------

# Bytes biased towards the interesting ones, so random heads get past the first line.
interesting = st.sampled_from(
    [
        b"\r\n",
        b"\r",
        b"\n",
        b" ",
        b"\t",
        b":",
        b",",
        b"\x00",
        b"\x7f",
        b"\xe9",
        b"GET / HTTP/1.1\r\n",
        b"HTTP/1.0",
        b"Host: a\r\n",
        b"Content-Length: 5\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"*",
        b"/",
        b"a",
        b"0",
        b"\r\n\r\n",
    ]
)
chunks = st.lists(st.one_of(interesting, st.binary(max_size=8)), max_size=30).map(b"".join)
small_limits = st.builds(
    Limits,
    max_request_line=st.integers(1, 40),
    max_header_line=st.integers(1, 40),
    max_header_count=st.integers(0, 5),
    max_head_bytes=st.integers(1, 120),
    max_body_bytes=st.integers(0, 10),
)
DEFINED = set(RULES.values())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=chunks, limits=st.one_of(st.just(LIMITS), small_limits))
def test_random_bytes_give_only_defined_rejections(data: bytes, limits: Limits) -> None:
    data = strict._skip_empty_lines(data)
    end = strict._EMPTY_LINE.search(data)
    if end is None:
        result = check_partial_head(data, limits)
    else:
        result = check_head(data[: end.end()], limits)
    assert result is None or result in DEFINED


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=chunks, limits=st.one_of(st.just(LIMITS), small_limits), seed=st.integers(0, 2**32))
def test_random_bytes_are_segmentation_independent(data: bytes, limits: Limits, seed: int) -> None:
    whole = server_answer(data, [], limits)
    assert server_answer(data, every_byte(data), limits) == whole
    assert server_answer(data, random_cuts(data, seed), limits) == whole


@settings(max_examples=300, deadline=None)
@given(data=chunks, limits=small_limits)
def test_fast_path_never_hides_a_violation(data: bytes, limits: Limits) -> None:
    data = strict._EMPTY_LINE.split(strict._skip_empty_lines(data))[0]
    if not strict._may_violate(data, limits):
        assert strict._framing(data, limits) is None


# Heads built from plausible pieces, so that many of them are plain enough for the one-regex paths: a request line,
# then field lines.  (A field line first, or none, is a malformed head: some of those too.)
request_lines = st.sampled_from(
    [
        b"GET /plaintext HTTP/1.1\r\n",
        b"POST /echo HTTP/1.0\r\n",
        b"CONNECT /x HTTP/1.1\r\n",
        b"get /a?b=|{} HTTP/1.1\r\n",
    ]
)
field_lines = st.sampled_from(
    [
        b"Host: a\r\n",
        b"Host: a:80\r\n",
        b"Host: \t a.b:80 \t\r\n",
        b"Host: a:b\r\n",
        b"host:%41\r\n",
        b"Host:\r\n",
        b"HOST: [::1]:8\r\n",
        b"host: a b\r\n",
        b"X-Host: a\r\n",
        b"Hosts: a\r\n",
        b"Content-Lengthy: 1\r\n",
        b"X: \t v \xe9\r\n",
        b"X:\x01\r\n",
        b" folded\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: 5, 5\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Expect: 100-continue\r\n",
        b"Expect: nope\r\n",
    ]
)
plain_heads = st.one_of(
    st.tuples(request_lines, st.lists(field_lines, max_size=5)).map(lambda t: t[0] + b"".join(t[1]) + b"\r\n"),
    st.lists(st.one_of(request_lines, field_lines), min_size=1, max_size=6).map(lambda p: b"".join(p) + b"\r\n"),
)


@settings(max_examples=400, deadline=None)
@given(data=plain_heads, limits=st.one_of(st.just(LIMITS), small_limits))
def test_the_one_regex_path_gives_the_line_by_line_answer(data: bytes, limits: Limits) -> None:
    fast = check_head(data, limits)
    originals = strict._PLAIN_HEAD, strict._PLAIN_REQUEST
    # Both match nothing: every head takes the line-by-line path.
    strict._PLAIN_HEAD = strict._PLAIN_REQUEST = re.compile(rb"(?!)")
    try:
        assert check_head(data, limits) == fast
    finally:
        strict._PLAIN_HEAD, strict._PLAIN_REQUEST = originals


@settings(max_examples=400, deadline=None)
@given(data=plain_heads, limits=st.one_of(st.just(LIMITS), small_limits))
def test_a_head_proved_plain_passes_every_rule(data: bytes, limits: Limits) -> None:
    if strict._plainly_fine(data, limits):
        assert strict._check_head_fully(data, limits) is None


@pytest.mark.parametrize(
    "fields",
    [
        b"Host: a\r\nExpect: nope\r\n",
        b"Expect: 100-continue\r\nHost: a\r\n",
        b"Host: a\r\nhost: a\r\n",
        b"Host: a\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: chunked\r\nHost: a\r\n",
        b"Host: a b\r\n",
        b"Host: [::1]\r\n",
        b"X-Host: a\r\n",
        b"",
    ],
)
def test_the_plain_path_leaves_the_message_rules_to_the_full_check(fields: bytes) -> None:
    """Heads one message rule reads (a second Host, a body, an Expect, an unusual Host) are not proved plain."""
    assert not strict._plainly_fine(b"GET / HTTP/1.1\r\n" + fields + b"\r\n", LIMITS)


def test_the_usual_requests_take_the_plain_path() -> None:
    # Without this the test above could pass with a fast path that clears nothing.
    assert strict._plainly_fine(b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n", LIMITS)
    assert strict._plainly_fine(b"GET / HTTP/1.1\r\nhost: a\r\nAccept: */*\r\nUser-Agent: curl/8\r\n\r\n", LIMITS)
    assert not strict._plainly_fine(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n", LIMITS)


def test_core_imports_no_io() -> None:
    tree = ast.parse(Path(strict.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"socket", "selectors", "threading", "asyncio", "ssl"}


# --- what passes the gate, h11 parses ---------------------------------------------------


def h11_parses(head: bytes) -> bool:
    import h11

    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=LIMITS.max_head_bytes)
    conn.receive_data(head)
    try:
        return isinstance(conn.next_event(), h11.Request)
    except h11.RemoteProtocolError:
        return False


@pytest.mark.parametrize("data", ACCEPTED, ids=[repr(d[:40]) for d in ACCEPTED])
def test_accepted_heads_parse_in_h11(data: bytes) -> None:
    # The servers hand h11 only heads that passed check_head (leading CRLFs dropped): h11
    # must never be the one to refuse a head, or the answer would lack our rule.
    assert h11_parses(strict._skip_empty_lines(data))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=chunks)
def test_random_heads_that_pass_also_parse_in_h11(data: bytes) -> None:
    data = strict._skip_empty_lines(data)
    end = strict._EMPTY_LINE.search(data)
    if end is None:
        return
    head = data[: end.end()]
    if check_head(head, LIMITS) is None:
        assert h11_parses(head), head


# Structured heads: a plausible request line and fields with random names and values, so
# that many of them pass check_head and the comparison with h11 means something.
methods = st.sampled_from([b"GET", b"POST", b"OPTIONS", b"CONNECT", b"M-SEARCH", b"get", b"G@T"])
targets = st.sampled_from(
    [
        b"/",
        b"/a?b=|",
        b"*",
        b"example.com:443",
        b"http://example.com/x",
        b"https://a:1",
        b"/%zz",
        b"//x",
        b"/a#b",
        b"ftp://x/",
    ]
)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/1.1 "])
names = st.one_of(
    st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Expect", b"Connection", b"X-A", b"host"]),
    st.binary(min_size=0, max_size=6),
)
values = st.one_of(
    st.sampled_from(
        [
            b"chunked",
            b"gzip, chunked",
            b"5",
            b"5, 5",
            b"100-continue",
            b"example.com",
            b"[::1]:80",
            b"",
            b" a ",
            b"close",
        ]
    ),
    st.binary(max_size=8),
)
fields = st.lists(st.tuples(names, values), max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=methods, target=targets, version=versions, field_list=fields)
def test_structured_heads_that_pass_also_parse_in_h11(method, target, version, field_list) -> None:
    lines = [method + b" " + target + b" " + version] + [n + b": " + v for n, v in field_list]
    data = b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    end = strict._EMPTY_LINE.search(data)
    head = data[: end.end()]
    result = check_head(head, LIMITS)
    assert result is None or result in DEFINED
    if result is None:
        assert h11_parses(head), head
