"""Annotated source as data: a Python file cut into pycco-style sections.

Theory of operation
-------------------
Literate-programming tools in the docco/pycco family read a file top to bottom and cut
it into *sections*: a run of comments is the section's prose, the code that follows it
(up to the next comment) is the section's code, and a page sets the two side by side.
:func:`parse` does the same for Python, with three refinements that suit our files:

* **Docstrings are prose.**  A module, class or function docstring joins the prose of
  the section that holds its ``def``/``class`` header, so a handler's docstring sits
  beside the handler rather than splitting it in two.  The docstring's lines are left
  out of that section's code (the code keeps its true line numbers, so the lines of a
  section need not be contiguous).
* **Section headings.**  A comment of the form ``# --- Handlers ---`` starts a new
  section and names every section after it until the next heading.  The six layers
  share the headings ``Resources``, ``Handlers``, ``Errors``, ``Application``; our two
  servers share ``accept loop``, ``connection``, ``event loop``, ``request cycle``.
* **Top-level definitions start sections.**  A top-level ``def``/``class`` that follows
  code without a comment in between still opens its own section, so every function is
  addressable by name -- which is what lets :func:`align` pair ``get_item`` in Flask
  with ``get_item`` in bare WSGI.

The classification of lines comes from the tokenizer and the AST, not from regular
expressions over text: a ``#`` inside a string is not a comment, and a triple-quoted
string that is not a docstring is code.

Counting follows cloc's convention: a line is a *code* line when it holds any code
token (so ``x = 1  # why`` is code), a *comment* line when it holds only a comment or
docstring text, and *blank* otherwise.

What this module deliberately does not do: render anything (see :mod:`layercake.reader`
for the terminal and :mod:`layercake.site` for HTML), or understand languages other
than Python -- every annotated file in layercake is Python.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# The handler names every layer shares (CONTRACT.md), in contract order.  Alignment keys
# a block by its handler's name, so the same handler lines up across two layers.
HANDLERS: tuple[str, ...] = (
    "index",
    "plaintext",
    "json_hello",
    "get_item",
    "list_items",
    "create_item",
    "stream",
    "echo",
    "headers",
    "inspect_request",
    "slow",
    "error",
    "health",
    "websocket_echo",
)

# ``# --- Title ---``: two or more dashes each side (the team's section-heading form).
_HEADING = re.compile(r"^#\s*-{2,}\s*(?P<title>[^-].*?)\s*-{2,}\s*$")


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, as an editor shows it
    text: str  # without the newline


@dataclass
class Section:
    """One pycco section: prose (markdown) beside the code it explains."""

    prose: str
    code: list[Line]
    heading: str | None  # the ``# --- X ---`` heading in force, if any
    names: list[str] = field(default_factory=list)  # functions/classes defined in the code
    starts_heading: bool = False  # this section is the one the heading opened
    start: int = 0  # first line of the section in the file, prose included

    @property
    def first_line(self) -> int:
        return self.code[0].number if self.code else 0

    @property
    def code_text(self) -> str:
        return "\n".join(line.text for line in self.code)


@dataclass
class SourceFile:
    """A parsed file: its sections and its line counts."""

    path: Path
    text: str
    sections: list[Section]
    code_lines: int
    comment_lines: int  # whole-line comments and docstring lines
    blank_lines: int

    @property
    def lines(self) -> int:
        return self.code_lines + self.comment_lines + self.blank_lines

    @property
    def headings(self) -> list[str]:
        return [s.heading for s in self.sections if s.starts_heading and s.heading]

    @property
    def docstring(self) -> str:
        """The module docstring (the file's theory of operation), or ''."""
        try:
            return ast.get_docstring(ast.parse(self.text)) or ""
        except SyntaxError:
            return ""


# --- Classifying lines ---


@dataclass
class _Docstring:
    first: int  # line of the opening quotes
    last: int  # line of the closing quotes
    text: str  # cleaned (inspect.cleandoc) text
    owner_first: int  # first line of the owner's header (decorators included); 0 for a module


def _docstrings(tree: ast.Module) -> dict[int, _Docstring]:
    """Docstrings keyed by the line their opening quotes are on."""
    found: dict[int, _Docstring] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if not (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            continue
        expr = body[0]
        if isinstance(node, ast.Module):
            owner = 0
        else:
            owner = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        found[expr.lineno] = _Docstring(
            expr.lineno, expr.end_lineno or expr.lineno, ast.get_docstring(node) or "", owner
        )
    return found


def _definitions(tree: ast.Module, split_at: Iterable[str]) -> tuple[dict[int, str], set[int]]:
    """Map each def/class header line to its name; and the lines where a section must
    start: the first line (decorators included) of every top-level definition and of
    every definition, at any depth, named in ``split_at``."""
    wanted = set(split_at)
    names: dict[int, str] = {}
    starts: set[int] = set()
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names[node.lineno] = node.name
            if id(node) in top or node.name in wanted:
                starts.add(min([node.lineno, *(d.lineno for d in node.decorator_list)]))
    return names, starts


def _comment_lines(text: str) -> dict[int, str]:
    """Whole-line comments, keyed by line number, with the ``#`` and one space removed.

    The tokenizer tells a comment from a ``#`` inside a string; a comment is whole-line
    when nothing but whitespace precedes it.  The shebang and encoding lines are left as
    code: they are instructions to the system, not prose.
    """
    lines = text.splitlines()
    found: dict[int, str] = {}
    tokens: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            tokens.append(tok)
    except (tokenize.TokenError, SyntaxError):
        pass  # a broken file: keep the comments found before the break
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        row, col = tok.start
        if lines[row - 1][:col].strip():
            continue
        if row == 1 and tok.string.startswith("#!"):
            continue
        if row <= 2 and re.match(r"^#.*coding[:=]", tok.string):
            continue
        body = tok.string[1:]
        found[row] = body[1:] if body.startswith(" ") else body
    return found


# --- Cutting into sections ---


# A decorative rule: a comment of nothing but ``=`` or ``-`` (a banner's top and bottom).
_RULE = re.compile(r"^(={5,}|-{5,})$")


def _banner_title(comments: dict[int, str], number: int) -> str | None:
    """The title of a banner heading whose first rule is on line ``number``, if it is one:

    # ==========
    # Accept loop
    # ==========
    """
    title, closing = comments.get(number + 1), comments.get(number + 2)
    if title is None or closing is None or not title.strip() or _RULE.match(title.strip()):
        return None
    return title.strip() if _RULE.match(closing.strip()) else None


def _heading_of(comment: str) -> str | None:
    match = _HEADING.match("#" + comment) or _HEADING.match("# " + comment)
    return match.group("title") if match else None


def parse_text(text: str, path: Path | str = "<string>", split_at: Iterable[str] = HANDLERS) -> SourceFile:
    """Parse Python source ``text`` into sections and counts (see the module docstring).

    Besides comments, docstrings and top-level definitions, a definition at any depth
    named in ``split_at`` (the contract's handler names) opens a section of its own.
    """
    path = Path(path)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    docstrings = _docstrings(tree)
    names, split_lines = _definitions(tree, split_at)
    comments = _comment_lines(text)
    lines = text.splitlines()

    sections: list[Section] = []
    prose: list[str] = []
    code: list[Line] = []
    heading: str | None = None
    opened_heading = False

    start = 0  # first line of the section being gathered

    def flush() -> None:
        nonlocal prose, code, opened_heading, start
        while code and not code[-1].text.strip():
            code.pop()
        while prose and not prose[-1].strip():
            prose.pop()
        if prose or code:
            defined = [names[ln.number] for ln in code if ln.number in names]
            first = min([start or 10**9, *(ln.number for ln in code)])
            sections.append(Section("\n".join(prose), code, heading, defined, opened_heading, first))
            opened_heading = False
        prose, code, start = [], [], 0

    n_code = n_comment = n_blank = 0
    number = 1
    while number <= len(lines):
        text_line = lines[number - 1]
        doc = docstrings.get(number)
        if doc is not None:
            n_comment += doc.last - doc.first + 1
            if doc.owner_first and code and code[0].number < doc.owner_first:
                # Code before this definition's header belongs to the previous section;
                # the header (and any decorators) move with their docstring.
                header = [ln for ln in code if ln.number >= doc.owner_first]
                code = [ln for ln in code if ln.number < doc.owner_first]
                flush()
                code = header
            elif doc.owner_first == 0 and (code or prose):
                flush()
            start = start or (code[0].number if code else number)
            if prose:
                prose.append("")
            prose.extend(doc.text.splitlines())
            number = doc.last + 1
            continue
        if number in comments:
            n_comment += 1
            comment = comments[number]
            title = _heading_of(comment)
            top = not text_line[:1].isspace()
            first = number
            if _RULE.match(comment.strip()) and top:
                banner = _banner_title(comments, number)
                if banner is not None:
                    # A banner heading: a rule, the title, a rule -- three comment lines.
                    title = banner
                    n_comment += 2
                    number += 2
                else:
                    start = start or number
                    number += 1  # a lone decorative rule says nothing in prose
                    continue
            if title is not None and top:
                flush()
                heading, opened_heading = title, True
                prose.append(f"## {title}")
                prose.append("")
            elif title is not None:
                # An indented heading (``    # -- lifecycle ---``) names a part of a class:
                # a section of its own and a sub-heading, but not a block key.
                flush()
                prose.append(f"### {title}")
                prose.append("")
            else:
                if code:
                    flush()
                prose.append(comment)
            start = start or first
        elif not text_line.strip():
            n_blank += 1
            if code:
                code.append(Line(number, text_line))
            elif prose:
                prose.append("")
        else:
            n_code += 1
            if number in split_lines and code and any(ln.text.strip() for ln in code):
                flush()
            code.append(Line(number, text_line))
            start = start or number
        number += 1
    flush()
    # Dedent each section's prose consistently (comments indented inside a function
    # keep their relative indentation, which markdown would otherwise read as code).
    for section in sections:
        section.prose = _sphinx_roles(re.sub(r"\n{3,}", "\n\n", textwrap.dedent(section.prose)))
    return SourceFile(path, text, sections, n_code, n_comment, n_blank)


_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const|term):`(~?)([^`]+)`")


def _sphinx_roles(text: str) -> str:
    """``:class:`Connection``` reads as ``Connection`` in prose (and ``~a.b.C`` as ``C``,
    Sphinx's own shorthand): the roles are for a documentation generator, not a reader."""
    return _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


def parse(path: Path | str, split_at: Iterable[str] = HANDLERS) -> SourceFile:
    """Read and parse the Python file at ``path``."""
    path = Path(path)
    return parse_text(path.read_text(encoding="utf-8"), path, split_at)


# --- Blocks and alignment ---


@dataclass
class Block:
    """Consecutive sections that answer to one key: a handler's name, or a heading."""

    key: str
    sections: list[Section]
    lines: list[Line] = field(default_factory=list)  # the block's full source, comments included

    @property
    def code(self) -> list[Line]:
        """The block's code alone: no comments, no docstrings (gaps keep their numbers)."""
        return [ln for s in self.sections for ln in s.code]

    @property
    def code_lines(self) -> int:
        return sum(1 for ln in self.code if ln.text.strip())


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def blocks(source: SourceFile, handlers: Iterable[str] = HANDLERS) -> list[Block]:
    """Group a file's sections into blocks for alignment.

    A new block starts at every heading and at every section that defines one of
    ``handlers``; other sections join the block before them.  Keys are the handler name
    or the lowercased heading; sections before the first heading are keyed ``(top)``.
    A key that repeats (two handlers named alike, a heading used twice) gets ``#2``.
    """
    wanted = set(handlers)
    result: list[Block] = []
    seen: dict[str, int] = {}

    def start(key: str) -> None:
        seen[key] = seen.get(key, 0) + 1
        result.append(Block(key if seen[key] == 1 else f"{key} #{seen[key]}", []))

    for section in source.sections:
        handler = next((n for n in section.names if n in wanted), None)
        if handler is not None:
            start(handler)
        elif section.starts_heading and section.heading:
            start(_key(section.heading))
        elif not result:
            start("(top)")
        result[-1].sections.append(section)
    # Each block's source runs from its first section's start to the line before the
    # next block's: what a side-by-side view shows, comments and docstrings included.
    text_lines = source.text.splitlines()
    starts = [blk.sections[0].start for blk in result] + [len(text_lines) + 1]
    for blk, first, after in zip(result, starts, starts[1:], strict=False):
        span = [Line(n, text_lines[n - 1]) for n in range(first, after)]
        while span and not span[-1].text.strip():
            span.pop()
        blk.lines = span
    return result


def align(a: list[Block], b: list[Block]) -> list[tuple[Block | None, Block | None]]:
    """Pair the blocks of two files by key.

    Every key present in both files is paired, whatever order the two files define
    them in; the result follows the left file's order.  A block only the right file has
    is placed after the pair of the right-file block just before it (so it shows up
    where it sits in that file); one only the left file has is paired with ``None``.
    """
    right = {blk.key: blk for blk in b}
    pairs: list[tuple[Block | None, Block | None]] = [(blk, right.get(blk.key)) for blk in a]
    left_keys = {blk.key for blk in a}
    anchor: str | None = None  # the key of the last right-file block that has a partner
    inserted: dict[str | None, int] = {}  # how many right-only blocks already follow each anchor
    for blk in b:
        if blk.key in left_keys:
            anchor = blk.key
            continue
        if anchor is None:
            at = inserted.get(None, 0)
        else:
            at = next(i for i, (x, _) in enumerate(pairs) if x is not None and x.key == anchor) + 1
            at += inserted.get(anchor, 0)
        pairs.insert(at, (None, blk))
        inserted[anchor] = inserted.get(anchor, 0) + 1
    return pairs


def consecutive_runs(lines: list[Line]) -> list[list[Line]]:
    """Split lines into runs of consecutive line numbers (docstrings leave gaps): the reader
    and the site both draw a break between runs."""
    runs: list[list[Line]] = []
    for line in lines:
        if runs and runs[-1][-1].number + 1 == line.number:
            runs[-1].append(line)
        else:
            runs.append([line])
    return runs
