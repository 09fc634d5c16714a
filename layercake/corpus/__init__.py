"""The raw-request corpus: hostile and edge-case HTTP/1.x requests as data files.

Each ``*.http`` file in this directory is one case, named ``CATEGORY.NAME.http``
(gunicorn's parser is tested the same way, with a directory of raw requests and their
expected results).  The tests feed every case to both scratch servers whole, byte by
byte and in random pieces; ``layercake probe`` sends the same cases to any server.  The
files ship inside the package so that the installed probe finds them.

A file is a block of ``key: value`` lines, a blank line, then the raw bytes::

    description: Content-Length and Transfer-Encoding together (CL.TE smuggling)
    rule: RFC 9112 §6.1
    expect: 400
    close: yes

    POST /echo HTTP/1.1\\r\\n
    Host: probe\\r\\n
    ...

Keys:

==============  ====================================================================
``description``  what the request is and why it matters (one line)
``rule``         the RFC rule that decides the answer
``expect``       the status of each response, in order (pipelined requests get one
                 each); ``200|404`` accepts either
``close``        ``yes``: the server must close the connection after those responses;
                 ``no``: it must keep it open (checked by sending one more request on
                 it); ``any``: either is correct
``methods``      optional, the method of each request when one is ``HEAD`` (a
                 response to HEAD has no body, which the reader must know)
==============  ====================================================================

The raw section is text in which **line breaks in the file mean nothing**: every byte is
written explicitly, so ``\\r\\n`` is CRLF and a file without it has bare LFs only where
it says ``\\n``.  Escapes: ``\\r \\n \\t \\0 \\s`` (a space, for trailing spaces editors
would strip), ``\\\\``, ``\\xHH``, and ``\\*N{TEXT}`` for TEXT repeated N times (TEXT may
use the other escapes and nest; its braces must balance) -- the limit cases need 9,000-byte
lines.  Anything else is a literal byte; the file is UTF-8 but raw sections use ASCII.

The requests ask for the contract's ``GET /plaintext`` and ``POST /echo``, so the
same case means the same thing whichever layer a server is serving.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent

_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\x00", "s": b" ", "\\": b"\\"}
_TOKEN = re.compile(r"\\\*(\d+)\{|\\x([0-9A-Fa-f]{2})|\\(.)|([^\\]+)", re.DOTALL)


class CorpusError(ValueError):
    """A malformed corpus file (names the file and the problem)."""


@dataclass(frozen=True)
class Case:
    id: str  # "smuggling/cl-and-te"
    category: str
    name: str
    description: str
    rule: str
    expect: tuple[frozenset[int], ...]  # acceptable statuses of each response, in order
    close: bool | None  # None: either is correct
    methods: tuple[str, ...]  # of each request, when it matters (HEAD); else ()
    raw: bytes

    def expect_text(self) -> str:
        return " ".join("|".join(str(s) for s in sorted(alts)) for alts in self.expect)

    def is_head(self, index: int) -> bool:
        return index < len(self.methods) and self.methods[index].upper() == "HEAD"


def decode_raw(text: str) -> bytes:
    """Turn a raw section into bytes (see the module docstring for the escapes)."""
    return _decode(text.replace("\r", "").replace("\n", ""))


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the repetition whose body starts at ``start``."""
    depth = 1
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return index
    raise CorpusError(f"unclosed repetition starting at offset {start}")


def _decode(text: str) -> bytes:
    out = bytearray()
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # a lone backslash at the very end
            raise CorpusError(f"dangling backslash at offset {position}")
        count, hex_byte, escape, literal = match.groups()
        position = match.end()
        if count is not None:
            close = _closing_brace(text, position)
            out += _decode(text[position:close]) * int(count)
            position = close + 1
        elif hex_byte is not None:
            out.append(int(hex_byte, 16))
        elif escape is not None:
            if escape not in _ESCAPES:
                raise CorpusError(f"unknown escape \\{escape} at offset {position - 2}")
            out += _ESCAPES[escape]
        else:
            out += literal.encode("latin-1")
    return bytes(out)


def parse_case(text: str, filename: str) -> Case:
    """Parse one ``.http`` file's text; ``filename`` gives the category and name."""
    stem = filename.removesuffix(".http")
    category, dot, name = stem.partition(".")
    if not dot or not name:
        raise CorpusError(f"{filename}: name it CATEGORY.NAME.http")
    meta_text, blank, raw_text = text.partition("\n\n")
    if not blank:
        raise CorpusError(f"{filename}: no blank line between the header block and the raw request")
    meta: dict[str, str] = {}
    for line in meta_text.splitlines():
        if line.startswith("#"):
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise CorpusError(f"{filename}: header block line without a colon: {line!r}")
        meta[key.strip().lower()] = value.strip()
    for key in ("description", "rule", "expect", "close"):
        if key not in meta:
            raise CorpusError(f"{filename}: missing {key!r}")
    try:
        expect = tuple(frozenset(int(s) for s in item.split("|")) for item in meta["expect"].split())
    except ValueError:
        raise CorpusError(f"{filename}: expect must be statuses like '200 400|505'") from None
    closes = {"yes": True, "no": False, "any": None}
    if meta["close"] not in closes:
        raise CorpusError(f"{filename}: close must be yes, no or any")
    try:
        raw = decode_raw(raw_text)
    except CorpusError as error:
        raise CorpusError(f"{filename}: {error}") from None
    if not raw or not expect:
        raise CorpusError(f"{filename}: empty request or expectation")
    return Case(
        id=f"{category}/{name}",
        category=category,
        name=name,
        description=meta["description"],
        rule=meta["rule"],
        expect=expect,
        close=closes[meta["close"]],
        methods=tuple(meta.get("methods", "").split()),
        raw=raw,
    )


def load_corpus(directory: Path | None = None) -> list[Case]:
    """Every case in ``directory`` (default: the shipped corpus), sorted by id."""
    directory = directory or CORPUS_DIR
    cases = [parse_case(path.read_text(encoding="utf-8"), path.name) for path in directory.glob("*.http")]
    return sorted(cases, key=lambda case: case.id)


def select(cases: list[Case], patterns: list[str]) -> list[Case]:
    """Cases whose id or category contains any of ``patterns`` (all when empty)."""
    if not patterns:
        return cases
    return [case for case in cases if any(p in case.id for p in patterns)]
