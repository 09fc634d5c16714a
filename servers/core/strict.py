"""Strict request-head checks: the rules h11 leaves to the server, applied before h11 sees a byte.

h11 is a careful parser, but it is deliberately lenient in places a server facing the
open internet should not be: it accepts ``HTTP/2.0`` in a request line, control bytes
inside field values, a repeated ``Host``, ``Content-Length`` together with
``Transfer-Encoding`` (it picks the chunked framing and keeps the connection open, so a
request smuggled behind it gets served), and its size limit only applies to data it has
not finished parsing.  This module is the gate in front of it.  Both scratch servers
find the end of a request head themselves and call:

* :func:`check_partial_head` on every read while the head is incomplete -- it enforces
  the size limits (414 / 431) and the line-terminator rules that must be decided
  before the blank line ever arrives (a client using bare LF would otherwise never
  "finish" its head);
* :func:`check_head` once on the complete head, request line through its first empty
  line -- the same size rules, then every syntax, framing, ``Host`` and version rule.
  The head may end in ``CRLF CRLF`` or in any spelling with bare LFs (``LF LF``,
  ``CRLF LF``, ``LF CRLF``): a server that looks for all of them hands us the head
  either way, and we refuse the bare LF.

Each returns ``None`` (let h11 parse it) or a :class:`Rejection` carrying the status to
answer with, a reason a human can act on, and the RFC rule it applies.  **Every
rejection ends the connection**: the server answers it with ``Connection: close``,
reads nothing more as a request and closes (RFC 9112 §9.6 / §6.3 ¶3-5 -- once a head
is rejected the framing of whatever follows cannot be trusted).

Segmentation independence
-------------------------
The answer must not depend on how TCP happened to split the bytes: a client that sends
its head in one write, one byte at a time or in random pieces gets the same status and
reason.  The size and line-terminator rules are therefore found *in byte order*: every
violation has the offset of the byte that makes it certain (a request line is certainly
too long once byte ``max_request_line + 1`` of it has arrived and is not the ``CR`` of
its ``CRLF``), and both functions report the violation that became certain first.  A
prefix can only see violations that are certain within it, and whichever is first in
the whole head is certain in every prefix that contains any later one -- so
``check_partial_head`` on any prefix and ``check_head`` on the whole agree.  The tests
check this property on the corpus and on random bytes (hypothesis).

What this module deliberately does not do: parse into events (h11 does), look at the
body (chunked syntax is h11's; the body-size limit while reading is the server's), or
repair anything.  Every tolerance RFC 9112 allows a recipient ("MAY recognize a single
LF", "MAY replace with SP", "MAY treat 42, 42 as 42") is declined unless the table
below says otherwise: a strict server and a lenient proxy in front of it disagreeing
about where a message ends is how request smuggling works, and the cheapest defence is
to refuse everything ambiguous.

Decisions
---------
=====================================  ==========  ==============================================================
Input                                  Answer      Why (lenient alternative the RFC allows)
=====================================  ==========  ==============================================================
bare LF line terminator                400         RFC 9112 §2.2 lets a recipient accept LF; a front end that
                                                   splits on CRLF only would see other lines than we do.  h11
                                                   accepts it, so we must refuse it first.
bare CR inside a line                  400         RFC 9112 §2.2: "MUST consider that element to be invalid or
                                                   replace each bare CR with SP" -- we refuse.
CRLFs before the request line          ignored     RFC 9112 §2.2: SHOULD ignore at least one (old clients sent
                                                   one after a POST body).  h11 refuses them, so the head
                                                   reader drops them before h11: up to max_empty_lines (10,
                                                   Apache's limit); one more is a 400 (``head.py``).
whitespace line after request line     400         RFC 9112 §2.2: reject or consume -- we reject.
obs-fold (line starts with SP/HTAB)    400         RFC 9112 §5.2: reject or replace with SP -- we reject.
whitespace before the colon            400         RFC 9112 §5.1: MUST reject.
field name not a token                 400         RFC 9110 §5.1: field-name = token.
CR / LF / NUL in a field value         400         RFC 9110 §5.5: reject or replace with SP -- we reject.
other control bytes in a field value   400         RFC 9110 §5.5 grammar (field-vchar); HTAB is allowed.
obs-text (0x80-0xFF) in a field value  accepted    RFC 9110 §5.5 grammar allows it (latin-1 values exist).
request line not ``M SP T SP V``       400         RFC 9112 §3: single SPs; "MAY parse on whitespace-delimited
                                                   word boundaries" -- we don't.
``HTTP/x.y`` other than 1.0 / 1.1      505         RFC 9110 §15.6.6; malformed version text is a 400.
                                                   RFC 9110 §2.5 says a higher 1.x minor SHOULD be served as
                                                   1.1; no client sends one, so ``HTTP/1.2`` is refused too.
target with CTL, SP, DEL, 0x80+, ``#``  400         RFC 9112 §3.2 (no fragment in a request-target).  Other
                                                   visible ASCII (``|{}^`` in queries) is accepted: browsers
                                                   send it unencoded, and it cannot confuse framing.
``*`` target, method not OPTIONS       400         RFC 9112 §3.2.4.
authority-form, method not CONNECT     400         RFC 9112 §3.2.3; CONNECT needs ``host:port``.
absolute-form ``http(s)://host/...``   accepted    RFC 9112 §3.2.2: a server MUST accept it.  Other schemes,
                                                   an empty host or userinfo (RFC 9110 §4.2.1, §4.2.4): 400.
Host missing (HTTP/1.1)                400         RFC 9112 §3.2: MUST respond 400.  HTTP/1.0 may omit it.
Host repeated or invalid               400         RFC 9112 §3.2: MUST respond 400 (any version).
empty Host value                       accepted    RFC 9112 §3.2 defines it for targets without authority.
Transfer-Encoding in HTTP/1.0          400         RFC 9112 §6.1: MUST treat the framing as faulty.
Content-Length and Transfer-Encoding   400         RFC 9112 §6.1 MAY reject (or use TE alone); MUST close.
Content-Length repeated, even equal    400         RFC 9110 §8.6 lets a recipient collapse ``42, 42`` to 42; we
                                                   refuse, like gunicorn, so a front end that kept the first
                                                   and one that kept the last cannot both be "right".
Content-Length not 1*DIGIT             400         RFC 9112 §6.3 ¶5: invalid framing, MUST respond 400.
chunked not the final coding           400         RFC 9112 §6.3 ¶4: MUST respond 400 and close.
chunked applied twice                  400         RFC 9112 §6.1: a sender MUST NOT apply chunked more than once.
a coding other than chunked            501         RFC 9112 §6.1: SHOULD respond 501 to a coding it does not
                                                   understand (we implement chunked only, like h11).
Transfer-Encoding with no coding       400         an empty list gives no framing at all.
empty members in Transfer-Encoding     400         RFC 9110 §5.6.1 says ignore them; h11 refuses them (501),
                                                   and framing is no place for two readings.
Content-Length over max_body_bytes     413         RFC 9110 §15.5.14, decided before reading the body.
Expect other than 100-continue         417         RFC 9110 §10.1.1 MAY respond 417.
request line > max_request_line        414         RFC 9112 §3: a target too long to parse "MUST" get a 414;
                                                   RFC 9110 §15.5.15.
field line > max_header_line           431         RFC 6585 §5.
more than max_header_count fields      431         RFC 6585 §5.
head > max_head_bytes                  431         RFC 6585 §5 (the whole head, blank line included).
=====================================  ==========  ==============================================================

Lengths of lines are counted without their ``CRLF``.

The grammar, rule by rule
-------------------------
Where each ABNF rule of RFC 9112 and RFC 9110 §5 is enforced, and the corpus cases
(``layercake/corpus/``) that exercise it; "h11" means h11 enforces it after this gate.

==============================================  ============================  ==================================
Rule                                            Enforced in                   Corpus cases
==============================================  ============================  ==================================
request-line = method SP request-target SP      ``_check_request_line``       reqline.double-space, tab-separator,
HTTP-version (RFC 9112 §3)                                                    trailing-space, empty-method
method = token (RFC 9110 §9.1, §5.6.2)          ``_TOKEN``                    reqline.method-bad-char,
                                                                              valid.lowercase-method
HTTP-version = HTTP-name "/" DIGIT "." DIGIT,   ``_VERSION``                  reqline.version-lowercase,
HTTP-name = %s"HTTP" (RFC 9112 §2.3)                                          version-garbage, version-two-digit-minor
request-target forms (RFC 9112 §3.2.1-3.2.4)    ``_check_target``             target.*, valid.absolute-form,
                                                                              valid.options-asterisk
CRLF line ends, no bare CR (RFC 9112 §2.2)      ``_framing``                  fields.bare-lf, reqline.bare-cr,
                                                                              smuggling.bare-cr-in-value
field-line = field-name ":" OWS field-value     ``_check_field_line``         fields.no-colon, space-before-colon,
OWS (RFC 9112 §5, §5.1)                                                       tab-before-colon, valid.ows-around-value,
                                                                              valid.no-space-after-colon
field-name = token (RFC 9110 §5.1)              ``_TOKEN``                    fields.name-bad-char, empty-name,
                                                                              name-non-ascii, name-inner-space,
                                                                              valid.underscore-in-name
field-value = *field-content; field-content =   ``_VALUE_CRLF_NUL``,          fields.ctl-in-value, del-in-value,
field-vchar [ 1*( SP / HTAB / field-vchar )     ``_VALUE_CTL``                nul-in-value, valid.empty-value,
field-vchar ]; field-vchar = VCHAR / obs-text                                 value-inner-whitespace, tab-in-value,
(RFC 9110 §5.5)                                                               obs-text-value
obs-fold = OWS CRLF RWS (RFC 9112 §5.2)         ``_check_field_line``         fields.obs-fold, obs-fold-htab,
                                                                              smuggling.te-obs-fold
chunk-size = 1*HEXDIG (RFC 9112 §7.1)           ``ChunkedBody``; h11          chunked.size-not-hex, size-0x-prefix,
                                                                              size-negative, size-empty,
                                                                              size-leading-zeros, uppercase-hex
chunk-size overflow (RFC 9112 §7.1.3)           ``ChunkedBody`` (413 over     chunked.size-overflow
                                                max_body_bytes); h11
chunk-ext = *( BWS ";" BWS chunk-ext-name       ``ChunkedBody``               chunked.extension, extension-quoted,
[ BWS "=" BWS chunk-ext-val ] ), name = token,  (h11 accepts ``;.*``)         extension-no-value,
val = token / quoted-string (RFC 9112 §7.1.1,                                 last-chunk-extension
RFC 9110 §5.6.4)
chunk = chunk-size [ chunk-ext ] CRLF           ``ChunkedBody``; h11          chunked.bare-lf-size-line,
chunk-data CRLF (RFC 9112 §7.1)                                               data-longer-than-size,
                                                                              data-shorter-than-size, data-bare-lf
last-chunk = 1*("0") [ chunk-ext ] CRLF         ``ChunkedBody``; h11          chunked.last-chunk-zeros,
(RFC 9112 §7.1)                                                               last-chunk-extension
trailer-section = *( field-line CRLF )          ``ChunkedBody`` (with         chunked.trailer, trailer-no-colon,
(RFC 9112 §7.1.2)                               ``_check_field_line``); h11   trailer-space-before-colon
==============================================  ============================  ==================================

:class:`ChunkedBody` is the chunked-body grammar as written, fed the body's bytes as they
arrive.  h11 (which the servers use to read bodies) is lenient in four places it catches:
whitespace after a chunk size with no extension, any bytes at all after a ``;`` (control
bytes included), a bare LF ending a trailer line -- and, the other way, it *refuses* the
bad whitespace (``BWS``) that RFC 9110 §5.6.3 says a recipient MUST parse and remove
(``5 ; name = value``).  Its tests (tests/servers/test_chunked_body.py) hold those four
as bytes; they become corpus cases once the servers feed bodies through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from servers.core.limits import Limits

__all__ = ["CHUNK_RULES", "ChunkedBody", "Rejection", "RULES", "check_partial_head", "check_head"]


@dataclass(frozen=True)
class Rejection:
    """Why a request head is refused: the status to send, a reason for the client's
    developer (sent as the response body and logged), and the rule it applies."""

    status: int
    reason: str
    rule: str


# ---------------------------------------------------------------------------------------
# The rules, as a table.  Every Rejection this module returns is one of these values, so
# the docs, the probe and the property test can enumerate them.
# ---------------------------------------------------------------------------------------

RULES: dict[str, Rejection] = {
    # Line framing and limits: found byte by byte, also on an incomplete head.
    "bare-lf": Rejection(400, "a line ends in a bare LF; lines must end in CRLF", "RFC 9112 §2.2"),
    "request-line-too-long": Rejection(414, "request line too long", "RFC 9112 §3"),
    "field-line-too-long": Rejection(431, "a header field line is too long", "RFC 6585 §5"),
    "too-many-fields": Rejection(431, "too many header fields", "RFC 6585 §5"),
    "head-too-large": Rejection(431, "request head too large", "RFC 6585 §5"),
    # The request line.
    "request-line-syntax": Rejection(
        400, "request line must be METHOD SP TARGET SP HTTP/x.y, single spaces", "RFC 9112 §3"
    ),
    "method-syntax": Rejection(400, "method is not a token", "RFC 9110 §9.1"),
    "version-syntax": Rejection(400, "malformed HTTP version", "RFC 9112 §2.3"),
    "version-unsupported": Rejection(505, "only HTTP/1.0 and HTTP/1.1 are supported", "RFC 9110 §15.6.6"),
    "target-bytes": Rejection(
        400, "request target contains whitespace, control, non-ASCII bytes or a fragment", "RFC 9112 §3.2"
    ),
    "target-form": Rejection(400, "request target is not origin-form or absolute-form", "RFC 9112 §3.2"),
    "asterisk-not-options": Rejection(400, "the * request target is only for OPTIONS", "RFC 9112 §3.2.4"),
    "connect-not-authority": Rejection(400, "CONNECT needs an authority-form target host:port", "RFC 9112 §3.2.3"),
    "absolute-form-invalid": Rejection(
        400, "absolute-form target must be http(s)://host[:port]/... without userinfo", "RFC 9110 §4.2"
    ),
    # Field lines.
    "whitespace-after-request-line": Rejection(
        400, "whitespace-preceded line between the request line and the first field", "RFC 9112 §2.2"
    ),
    "obs-fold": Rejection(400, "obsolete line folding is not accepted", "RFC 9112 §5.2"),
    "field-no-colon": Rejection(400, "header field line without a colon", "RFC 9112 §5"),
    "whitespace-before-colon": Rejection(400, "whitespace between field name and colon", "RFC 9112 §5.1"),
    "field-name-syntax": Rejection(400, "header field name is not a token", "RFC 9110 §5.1"),
    "field-value-crlf-nul": Rejection(400, "CR, LF or NUL in a header field value", "RFC 9110 §5.5"),
    "field-value-ctl": Rejection(400, "control character in a header field value", "RFC 9110 §5.5"),
    # Host.
    "host-missing": Rejection(400, "HTTP/1.1 request without a Host header", "RFC 9112 §3.2"),
    "host-repeated": Rejection(400, "more than one Host header", "RFC 9112 §3.2"),
    "host-invalid": Rejection(400, "Host header is not host[:port]", "RFC 9112 §3.2"),
    # Message framing (RFC 9112 §6).
    "te-in-http10": Rejection(400, "Transfer-Encoding in an HTTP/1.0 request", "RFC 9112 §6.1"),
    "cl-and-te": Rejection(400, "both Content-Length and Transfer-Encoding", "RFC 9112 §6.1"),
    "cl-repeated": Rejection(400, "more than one Content-Length value", "RFC 9110 §8.6"),
    "cl-invalid": Rejection(400, "Content-Length is not a decimal number", "RFC 9112 §6.3 ¶5"),
    "te-empty": Rejection(400, "Transfer-Encoding names no coding", "RFC 9112 §6.1"),
    "te-syntax": Rejection(400, "malformed Transfer-Encoding", "RFC 9112 §6.1"),
    "chunked-not-last": Rejection(400, "chunked must be the final transfer coding", "RFC 9112 §6.3 ¶4"),
    "chunked-twice": Rejection(400, "chunked applied more than once", "RFC 9112 §6.1"),
    "te-unsupported": Rejection(501, "only Transfer-Encoding: chunked is implemented", "RFC 9112 §6.1"),
    "body-too-large": Rejection(413, "Content-Length over the server's body limit", "RFC 9110 §15.5.14"),
    "expect-unsupported": Rejection(417, "only Expect: 100-continue is supported", "RFC 9110 §10.1.1"),
}


# ---------------------------------------------------------------------------------------
# Grammar (RFC 9110 §5.6.2 tokens, RFC 3986 hosts), as compiled patterns.
# ---------------------------------------------------------------------------------------

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_CONTENT_LENGTH = re.compile(rb"[0-9]+")
# uri-host [":" port]: IP-literal (IPv6 only; IPvFuture is refused), IPv4 or reg-name
# (unreserved / pct-encoded / sub-delims).  The empty reg-name is valid (RFC 9112 §3.2).
_HOST = rb"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
_HOST_PORT = re.compile(_HOST + rb"(?::[0-9]*)?")
# The usual Host -- a reg-name without percent-encoding, or an IPv4 address, and a port: a subset of _HOST_PORT in
# half its time (one character class instead of an alternation per byte), for _plainly_fine's proof of innocence.
_PLAIN_HOST_PORT = rb"[A-Za-z0-9\-._~!$&'()*+,;=]*(?::[0-9]*)?"
_AUTHORITY_FORM = re.compile(rb"(?!:)" + _HOST + rb":[0-9]+")  # the host may not be empty here
# http(s)://authority[path-abempty]["?" query]: the authority is checked by _HOST_PORT.
_ABSOLUTE_FORM = re.compile(rb"(?i:https?)://([^/?]*)([/?].*)?", re.DOTALL)
# A request-target may hold any visible ASCII byte except "#" (see the decisions table).
_TARGET_BAD = re.compile(rb"[^\x21-\x22\x24-\x7e]")
# RFC 9110 §5.5: field-value bytes are VCHAR, obs-text, SP and HTAB.
_VALUE_CRLF_NUL = re.compile(rb"[\r\n\x00]")
_VALUE_CTL = re.compile(rb"[\x01-\x08\x0a-\x1f\x7f]")

_CR = 0x0D
# Speed (issue 12's profile): the usual head in one regex, run in C.  It matches only heads that every
# request-line and field-line rule below accepts -- token method, SP, an origin-form target of allowed bytes,
# SP, HTTP/1.0 or 1.1, then ``token ":" value`` lines whose values hold only HTAB, SP, VCHAR and obs-text -- so
# for those, check_head can go straight to the rules about the message as a whole.  Anything else (CONNECT,
# ``*``, absolute-form, a control byte, obs-fold, ...) takes the line-by-line path, which names the rule broken.
_PLAIN_HEAD = re.compile(
    rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+ /[\x21\x22\x24-\x7e]* HTTP/1\.[01]\r\n"
    rb"(?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*\r\n"
)
# The usual request in one regex (speed, issue 12): a plain head, as above, with exactly one Host field, holding a
# plain host[:port] between optional whitespace (RFC 9112 §3.2), and none of the other three fields the message
# rules read -- Content-Length, Transfer-Encoding (RFC 9112 §6), Expect (RFC 9110 §10.1.1).  Each field line
# either is the Host line or starts with a name that is none of the four (the lookahead ends at the colon, so
# ``Hosts`` and ``X-Host`` are other names).  With these, the message rules have nothing left to refuse.
_OTHER_FIELDS = (
    rb"(?:(?!(?i:host|content-length|transfer-encoding|expect):)"
    rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*"
)
_PLAIN_REQUEST = re.compile(
    rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+ /[\x21\x22\x24-\x7e]* HTTP/1\.[01]\r\n"
    + _OTHER_FIELDS
    + rb"(?i:host):[ \t]*"
    + _PLAIN_HOST_PORT
    + rb"[ \t]*\r\n"
    + _OTHER_FIELDS
    + rb"\r\n"
)
# The first empty line, however its line breaks are spelled: "\r\n\r\n", "\n\n", "\r\n\n", "\n\r\n".
_EMPTY_LINE = re.compile(rb"\n\r?\n")
_SP_HTAB = b" \t"


# ---------------------------------------------------------------------------------------
# Line framing and limits, in byte order.
# ---------------------------------------------------------------------------------------


def _framing(buf: bytes, limits: Limits) -> Rejection | None:
    """The line-terminator or size violation that becomes certain first in ``buf``.

    ``buf`` is a request head, complete or not.  Each candidate is paired with the
    length of the shortest prefix of ``buf`` in which it is already certain; the smallest
    wins (ties: the order found).  That is what makes the answer independent of how the
    head was split (see the module docstring).
    """
    found: tuple[int, Rejection] | None = None

    def certain_at(offset: int, rejection: Rejection) -> None:
        nonlocal found
        if found is None or offset < found[0]:
            found = (offset, rejection)

    if len(buf) > limits.max_head_bytes:
        certain_at(limits.max_head_bytes + 1, RULES["head-too-large"])

    start, index, fields = 0, 0, 0
    while start < len(buf):
        if found is not None and found[0] <= start:
            break  # nothing from here on can have become certain earlier
        lf = buf.find(b"\n", start)
        complete = lf >= 0
        end = lf if complete else len(buf)
        line = buf[start:end]
        # The CR of CRLF is not part of the line.  On an incomplete line a trailing CR
        # may be that CR, so it is not counted either until the next byte says.
        content = line[:-1] if line.endswith(b"\r") else line
        if complete and not line.endswith(b"\r"):
            certain_at(lf + 1, RULES["bare-lf"])
        if index == 0:
            limit, name = limits.max_request_line, "request-line-too-long"
        else:
            limit, name = limits.max_header_line, "field-line-too-long"
        if len(content) > limit:
            # Byte limit+1 of the line makes it certain, unless that byte is a CR that
            # could still be followed by LF: then the byte after it does.
            extra = 2 if buf[start + limit] == _CR else 1
            certain_at(start + limit + extra, RULES[name])
        if complete and not content and index > 0:
            break  # the blank line: end of the head
        if complete and index > 0:
            fields += 1
            if fields > limits.max_header_count:
                certain_at(lf + 1, RULES["too-many-fields"])
        if not complete:
            break
        start, index = lf + 1, index + 1

    return found[1] if found is not None else None


def _may_violate(buf: bytes, limits: Limits) -> bool:
    """A cheap over-approximation of :func:`_framing`: False means no violation for certain.

    The servers call :func:`check_partial_head` after every read, so a client that
    trickles a 64 KiB head would otherwise make the server rescan the buffer in Python on
    every byte.  This stays in C-speed bytes methods plus one short loop over at most
    ``max_header_count + 2`` lines; it is still linear in the buffer, which is why a
    caller may also call less often (see :func:`check_partial_head`).
    """
    if len(buf) > limits.max_head_bytes or buf.count(b"\n") > limits.max_header_count + 1:
        return True
    lines = buf.split(b"\n")
    if max(map(len, lines)) > min(limits.max_request_line, limits.max_header_line):
        return True
    # Every complete line must end in CR (no bare LF): every LF is the end of a CRLF.  (Counted in C rather than
    # tested line by line in a generator: this runs on every head -- speed, issue 12.)
    return buf.count(b"\n") != buf.count(b"\r\n")


def _skip_empty_lines(buf: bytes) -> bytes:
    """RFC 9112 §2.2: CRLFs before the request line are ignored (a bare LF is not).  One slice, whatever their
    number: slicing once per CRLF would cost quadratic time in a buffer full of them."""
    start = 0
    while buf.startswith(b"\r\n", start):
        start += 2
    return buf[start:] if start else buf


def check_partial_head(buf: bytes, limits: Limits) -> Rejection | None:
    """Check the bytes received so far of a request head whose empty line has not arrived.

    Returns the first size or line-terminator rule broken (414, 431, or 400 for a bare
    LF), or ``None`` to keep reading.  Given any prefix of a head, the answer is the one
    :func:`check_head` gives on the complete head, or ``None``.

    The cost is linear in ``buf``.  Because a violation, once certain, stays the answer
    for every longer prefix, a caller may call this as rarely as it likes -- say once per
    KiB received -- and get the same answer, only a few bytes later: that bounds the work
    a byte-by-byte trickler can cause.
    """
    buf = _skip_empty_lines(buf)
    if not _may_violate(buf, limits):
        # No bare LF, so the only empty line possible is CRLF CRLF (a C-speed search).
        if b"\r\n\r\n" in buf:
            raise ValueError("check_partial_head() is for heads without their empty line yet; use check_head()")
        return None
    if _EMPTY_LINE.search(buf):
        raise ValueError("check_partial_head() is for heads without their empty line yet; use check_head()")
    return _framing(buf, limits)


def check_head(head: bytes, limits: Limits) -> Rejection | None:
    """Check a complete request head: request line through the first empty line.

    Leading CRLFs are skipped.  ``head`` must end with its first empty line, in any
    spelling (a caller's bug otherwise: ValueError).  Returns the first rule broken, in
    the order: framing and sizes (as :func:`check_partial_head`, so a bare LF is refused
    here), the request line, each field line, then the rules about the message as a
    whole (Host, Content-Length / Transfer-Encoding, Expect).
    """
    if _plainly_fine(head, limits):
        return None
    return _check_head_fully(head, limits)


def _plainly_fine(head: bytes, limits: Limits) -> bool:
    """The usual head -- a plain request line, plain field lines, one Host and no body -- proved innocent in C
    (speed, issue 12).  No line can be too long if the whole head is shorter than every line limit; the field count
    is its LFs less two; ``_PLAIN_REQUEST`` excludes every request-line and field-line violation and leaves the
    message rules nothing to refuse.  A proof of innocence only: False means "look closer", and
    :func:`_check_head_fully` finds and names the rule broken.  (A test checks that every head this clears, the
    full check clears too.)"""
    size = len(head)
    return (
        size <= limits.max_request_line
        and size <= limits.max_header_line
        and size <= limits.max_head_bytes
        and head.count(b"\n") <= limits.max_header_count + 2
        and _PLAIN_REQUEST.fullmatch(head) is not None
        and not head.startswith(b"CONNECT ")
    )


def _check_head_fully(head: bytes, limits: Limits) -> Rejection | None:
    """:func:`check_head` rule by rule, in its order."""
    head = _skip_empty_lines(head)
    end = _EMPTY_LINE.search(head)
    if not head or end is None or end.end() != len(head):
        raise ValueError("check_head() needs a head that ends with its first empty line")
    # Speed (issue 12's profile): _may_violate's C-speed over-approximation clears the usual head, so the
    # line-by-line walk in _framing runs only for a head that may break a size or line-terminator rule.
    rejection = _framing(head, limits) if _may_violate(head, limits) else None
    if rejection is not None:
        return rejection
    # No bare LF survived _framing, so the head ends in CRLF CRLF and CRLF is the only
    # line terminator left.
    request_line, *field_lines = head[:-4].split(b"\r\n")
    if _PLAIN_HEAD.fullmatch(head) and not request_line.startswith(b"CONNECT "):
        plain = [line.partition(b":") for line in field_lines]
        version = (1, 1) if request_line.endswith(b"1") else (1, 0)
        return _check_message(version, [(name.lower(), value.strip(_SP_HTAB)) for name, _, value in plain], limits)
    method, version, rejection = _check_request_line(request_line)
    if rejection is not None:
        return rejection
    fields: list[tuple[bytes, bytes]] = []
    for number, line in enumerate(field_lines):
        name, value, rejection = _check_field_line(line, first=number == 0)
        if rejection is not None:
            return rejection
        fields.append((name.lower(), value))
    return _check_message(version, fields, limits)


# ---------------------------------------------------------------------------------------
# The request line (RFC 9112 §3).
# ---------------------------------------------------------------------------------------


def _check_request_line(line: bytes) -> tuple[bytes, tuple[int, int], Rejection | None]:
    parts = line.split(b" ")
    # request-line = method SP request-target SP HTTP-version, with exactly one SP each.
    if len(parts) != 3 or not all(parts):
        return b"", (0, 0), RULES["request-line-syntax"]
    method, target, version_text = parts
    if not _TOKEN.fullmatch(method):
        return method, (0, 0), RULES["method-syntax"]
    match = _VERSION.fullmatch(version_text)
    if match is None:
        return method, (0, 0), RULES["version-syntax"]
    version = (int(match[1]), int(match[2]))
    if version not in ((1, 0), (1, 1)):
        return method, version, RULES["version-unsupported"]
    return method, version, _check_target(method, target)


def _check_target(method: bytes, target: bytes) -> Rejection | None:
    """RFC 9112 §3.2: which request-target form fits which method."""
    if _TARGET_BAD.search(target):
        return RULES["target-bytes"]
    if method == b"CONNECT":
        # §3.2.3: "authority-form is only used for CONNECT requests", host ":" port.
        return None if _AUTHORITY_FORM.fullmatch(target) else RULES["connect-not-authority"]
    if target == b"*":
        # §3.2.4: "asterisk-form is only used for a server-wide OPTIONS request".
        return None if method == b"OPTIONS" else RULES["asterisk-not-options"]
    if target.startswith(b"/"):
        return None  # origin-form, the common case
    absolute = _ABSOLUTE_FORM.fullmatch(target)
    if absolute is not None:
        # §3.2.2: a server MUST accept absolute-form.  RFC 9110 §4.2.1: an http URI with
        # an empty host is invalid; §4.2.4: userinfo SHOULD be treated as an error.
        authority = absolute[1]
        if not authority or authority.startswith(b":") or not _HOST_PORT.fullmatch(authority):
            return RULES["absolute-form-invalid"]
        return None
    if b"://" in target:
        return RULES["absolute-form-invalid"]
    return RULES["target-form"]


# ---------------------------------------------------------------------------------------
# Field lines (RFC 9112 §5, RFC 9110 §5).
# ---------------------------------------------------------------------------------------


def _check_field_line(line: bytes, first: bool) -> tuple[bytes, bytes, Rejection | None]:
    if line[:1] in (b" ", b"\t"):
        # A line starting with whitespace continues the previous one (obs-fold); right
        # after the request line it is the older request-line-continuation attack.
        return b"", b"", RULES["whitespace-after-request-line" if first else "obs-fold"]
    name, colon, value = line.partition(b":")
    if not colon:
        return b"", b"", RULES["field-no-colon"]
    if name[-1:] in (b" ", b"\t"):
        return name, b"", RULES["whitespace-before-colon"]
    if not _TOKEN.fullmatch(name):
        return name, b"", RULES["field-name-syntax"]
    value = value.strip(_SP_HTAB)  # OWS around the value is not part of it
    if _VALUE_CRLF_NUL.search(value):
        return name, value, RULES["field-value-crlf-nul"]
    if _VALUE_CTL.search(value):
        return name, value, RULES["field-value-ctl"]
    return name, value, None


# ---------------------------------------------------------------------------------------
# The message as a whole: Host, framing, Expect.
# ---------------------------------------------------------------------------------------


def _values(fields: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for field, value in fields if field == name]


def _list_members(values: list[bytes]) -> list[bytes]:
    """RFC 9110 §5.6.1: a list header's members across all its lines; empty members
    (``a, , b``) are ignored, as the RFC requires of recipients."""
    return [member.strip(_SP_HTAB) for value in values for member in value.split(b",") if member.strip(_SP_HTAB)]


def _check_message(version: tuple[int, int], fields: list[tuple[bytes, bytes]], limits: Limits) -> Rejection | None:
    # One pass over the fields for the four this function reads (speed, issue 12: a scan per name was a
    # twentieth of a request's time in the profile).
    wanted: dict[bytes, list[bytes]] = {b"host": [], b"content-length": [], b"transfer-encoding": [], b"expect": []}
    for field, value in fields:
        bucket = wanted.get(field)
        if bucket is not None:
            bucket.append(value)
    hosts = wanted[b"host"]
    if len(hosts) > 1:
        return RULES["host-repeated"]
    if not hosts and version == (1, 1):
        return RULES["host-missing"]
    if hosts and not _HOST_PORT.fullmatch(hosts[0]):
        return RULES["host-invalid"]

    lengths = wanted[b"content-length"]
    encodings = wanted[b"transfer-encoding"]
    if encodings and version == (1, 0):
        return RULES["te-in-http10"]
    if encodings and lengths:
        return RULES["cl-and-te"]
    if lengths:
        if len(lengths) > 1 or b"," in lengths[0]:
            return RULES["cl-repeated"]
        if not _CONTENT_LENGTH.fullmatch(lengths[0]):
            return RULES["cl-invalid"]
        if limits.max_body_bytes and int(lengths[0]) > limits.max_body_bytes:
            return RULES["body-too-large"]
    if encodings:
        codings = [member.strip(_SP_HTAB) for value in encodings for member in value.split(b",")]
        if not any(codings):
            return RULES["te-empty"]
        if not all(codings):
            # RFC 9110 §5.6.1 says to ignore empty list members; h11 does not, and the
            # one header that decides framing is no place for two readings.
            return RULES["te-syntax"]
        names = []
        for coding in codings:
            # transfer-coding = token *( OWS ";" OWS transfer-parameter )
            name = coding.split(b";", 1)[0].strip(_SP_HTAB)
            if not _TOKEN.fullmatch(name):
                return RULES["te-syntax"]
            names.append(name.lower() if coding == name else b"")  # "chunked;x=y" is not chunked
        if names.count(b"chunked") > 1:
            return RULES["chunked-twice"]
        if b"chunked" in names[:-1]:
            return RULES["chunked-not-last"]
        if names != [b"chunked"]:
            return RULES["te-unsupported"]

    for expectation in _list_members(wanted[b"expect"]):
        if expectation.lower() != b"100-continue":
            return RULES["expect-unsupported"]
    return None


# ---------------------------------------------------------------------------------------
# The chunked body (RFC 9112 §7.1), as it arrives.
# ---------------------------------------------------------------------------------------

#: The chunked-body rules (apart from RULES, which are the head's: the property tests
#: enumerate those over heads).  Every Rejection ChunkedBody returns is one of these, or
#: a field-line rule of RULES for a trailer line.
CHUNK_RULES: dict[str, Rejection] = {
    "chunk-bare-lf": Rejection(400, "a chunk line ends in a bare LF; lines must end in CRLF", "RFC 9112 §7.1"),
    "chunk-size-syntax": Rejection(400, "chunk size is not hexadecimal digits (1*HEXDIG)", "RFC 9112 §7.1"),
    "chunk-ext-syntax": Rejection(
        400, 'malformed chunk extension (want ;name or ;name=token or ;name="quoted")', "RFC 9112 §7.1.1"
    ),
    "chunk-data-crlf": Rejection(400, "chunk data is not followed by CRLF", "RFC 9112 §7.1"),
    "chunk-line-too-long": Rejection(400, "a chunk-size or trailer line is too long", "RFC 9112 §7.1"),
    "chunk-too-large": Rejection(413, "a chunk larger than the server's body limit", "RFC 9112 §7.1.3"),
    "trailer-too-large": Rejection(431, "trailer section too large", "RFC 6585 §5"),
}

_OWS = rb"[ \t]*"  # BWS is OWS that a sender must not generate (RFC 9110 §5.6.3)
_TOKEN_TEXT = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 §5.6.4)
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_EXT = rb"(?:" + _OWS + rb";" + _OWS + _TOKEN_TEXT + rb"(?:" + _OWS + rb"=" + _OWS + rb"(?:" + _TOKEN_TEXT
_CHUNK_EXT += rb"|" + _QUOTED + rb"))?)*"
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]+)(" + _CHUNK_EXT + rb")")
_HEXDIGITS = re.compile(rb"[0-9A-Fa-f]+")


class ChunkedBody:
    """The chunked-body grammar of RFC 9112 §7.1, checked as the bytes arrive::

        chunked-body = *chunk last-chunk trailer-section CRLF
        chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
        last-chunk   = 1*("0") [ chunk-ext ] CRLF

    :meth:`feed` takes the body's bytes in any pieces and returns the first rule broken,
    or ``None``; the answer never depends on the pieces, because every decision is made
    at a byte offset (the LF that ends a line, the byte after the chunk data, the byte
    that makes a line too long).  Once :attr:`done`, :attr:`rest` holds the bytes that
    came after the body (a pipelined request).  Sizes: a chunk line or a trailer line
    longer than ``limits.max_header_line``, a chunk bigger than ``limits.max_body_bytes``
    and a trailer section over ``limits.max_head_bytes`` are refused; the running total
    of the body is the server's to bound, as it is for Content-Length bodies.

    How a server calls it: one per request whose head said ``Transfer-Encoding:
    chunked`` (after :func:`check_head` passed), ``feed(data)`` with every byte read
    while the body is being read, before (or instead of) handing it to h11; a
    Rejection is answered like a head rejection (status, ``Connection: close``, close).
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.state = "size"  # size -> data -> data-crlf -> size ... -> trailer -> done
        self.line = bytearray()
        self.remaining = 0  # chunk-data bytes still to come
        self.crlf_seen = 0  # bytes of the CRLF after chunk-data seen so far
        self.trailer_bytes = 0
        self.trailer_fields = 0
        self.rejection: Rejection | None = None
        self.rest = b""

    @property
    def done(self) -> bool:
        return self.state == "done"

    def feed(self, data: bytes) -> Rejection | None:
        if self.rejection is not None or self.done:
            if self.done:
                self.rest += data
            return self.rejection
        position = 0
        while position < len(data) and self.rejection is None and not self.done:
            position = self._step(data, position)
        if self.done:
            self.rest += data[position:]
        return self.rejection

    def _step(self, data: bytes, position: int) -> int:
        if self.state == "data":
            take = min(self.remaining, len(data) - position)
            self.remaining -= take
            if self.remaining == 0:
                self.state, self.crlf_seen = "data-crlf", 0
            return position + take
        if self.state == "data-crlf":
            # chunk = ... chunk-data CRLF: exactly CR then LF after the data.
            if data[position] != b"\r\n"[self.crlf_seen]:
                self.rejection = CHUNK_RULES["chunk-data-crlf"]
                return position
            self.crlf_seen += 1
            if self.crlf_seen == 2:
                self.state = "size"
            return position + 1
        # A line: a chunk-size line or a trailer line.
        lf = data.find(b"\n", position)
        end = lf if lf >= 0 else len(data)
        self.line += data[position:end]
        if self.state == "trailer":
            self.trailer_bytes += end - position + (1 if lf >= 0 else 0)
            if self.trailer_bytes > self.limits.max_head_bytes:
                self.rejection = CHUNK_RULES["trailer-too-large"]
                return end
        content_length = len(self.line) - (1 if self.line.endswith(b"\r") else 0)
        if content_length > self.limits.max_header_line and (lf >= 0 or not self.line.endswith(b"\r")):
            self.rejection = CHUNK_RULES["chunk-line-too-long"]
            return end
        if lf < 0:
            return end
        line = bytes(self.line)
        self.line.clear()
        if not line.endswith(b"\r"):
            self.rejection = CHUNK_RULES["chunk-bare-lf"]  # RFC 9112 §7.1: every line ends in CRLF
            return lf + 1
        line = line[:-1]
        if self.state == "size":
            self._size_line(line)
        else:
            self._trailer_line(line)
        return lf + 1

    def _size_line(self, line: bytes) -> None:
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            digits = _HEXDIGITS.match(line)
            # 1*HEXDIG first; after it only chunk-ext (which starts with BWS ";").
            ok_size = digits is not None and (
                digits.end() == len(line) or line[digits.end() :].lstrip(b" \t")[:1] == b";"
            )
            self.rejection = CHUNK_RULES["chunk-ext-syntax" if ok_size else "chunk-size-syntax"]
            return
        size = int(match[1], 16)
        if self.limits.max_body_bytes and size > self.limits.max_body_bytes:
            # RFC 9112 §7.1.3: "anticipate potentially large hexadecimal numerals and prevent
            # parsing errors due to integer conversion overflows" -- Python has none, but a
            # chunk over the body limit is refused before any of it is read.
            self.rejection = CHUNK_RULES["chunk-too-large"]
            return
        if size == 0:
            self.state = "trailer"  # last-chunk = 1*("0") [ chunk-ext ] CRLF
        else:
            self.state, self.remaining = "data", size

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self.state = "done"  # chunked-body ends with the trailer section's CRLF
            return
        # trailer-section = *( field-line CRLF ): the same field-line grammar as the head.
        _, _, rejection = _check_field_line(line, first=False)
        if rejection is not None:
            self.rejection = rejection
            return
        self.trailer_fields += 1
        if self.trailer_fields > self.limits.max_header_count:
            self.rejection = CHUNK_RULES["trailer-too-large"]
