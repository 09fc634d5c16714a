"""layercake.source: sections, counts and alignment, on fixture files and the real layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from layercake.source import HANDLERS, align, blocks, parse, parse_text
from layers import LAYERS

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).resolve().parents[2]


def test_module_docstring_is_the_first_prose():
    src = parse(FIXTURES / "layer_a.py")
    assert src.sections[0].prose.startswith("Fixture layer A: a hand-written WSGI app")
    assert [ln.text for ln in src.sections[0].code][:1] == ["from __future__ import annotations"]


def test_counts_follow_cloc():
    text = '"""Doc\n\nmore."""\n\n# a comment\nx = 1  # trailing comment: still code\n\ns = "# not a comment"\n'
    src = parse_text(text)
    assert (src.code_lines, src.comment_lines, src.blank_lines) == (2, 4, 2)
    assert src.lines == len(text.splitlines())


def test_counts_add_up_on_fixtures():
    for name in ("layer_a.py", "layer_b.py"):
        src = parse(FIXTURES / name)
        assert src.lines == len(src.text.splitlines())


def test_comment_starts_a_section_and_prose_strips_the_hash():
    src = parse_text("x = 1\n# why y\n#   indented detail\ny = 2\n")
    assert [s.prose for s in src.sections] == ["", "why y\n  indented detail"]
    assert [[ln.number for ln in s.code] for s in src.sections] == [[1], [4]]


def test_sphinx_roles_read_as_code():
    src = parse_text('"""Uses :class:`Connection` and :func:`~layercake.errors.fail`."""\n')
    assert src.sections[0].prose == "Uses `Connection` and `fail`."


def test_hash_inside_a_string_is_code():
    src = parse_text('s = """\n# not a comment\n"""\n')
    assert len(src.sections) == 1 and src.sections[0].prose == ""
    assert src.code_lines == 3 and src.comment_lines == 0


def test_headings_open_sections_and_name_those_after():
    src = parse(FIXTURES / "layer_a.py")
    assert src.headings == ["Resources", "Handlers", "Errors", "Application"]
    by_name = {n: s for s in src.sections for n in s.names}
    assert by_name["json_hello"].heading == "Handlers"
    assert by_name["app"].heading == "Application"
    assert any(s.prose.startswith("## Errors") for s in src.sections)


def test_function_docstring_joins_the_prose_beside_its_def():
    src = parse(FIXTURES / "layer_a.py")
    (section,) = [s for s in src.sections if "plaintext" in s.names]
    assert "Answer ``Hello, World!`` as text/plain." in section.prose
    texts = [ln.text for ln in section.code]
    assert texts[0].startswith("def plaintext(")
    assert not any('"""' in t for t in texts)  # the docstring is not repeated in the code
    numbers = [ln.number for ln in section.code]
    assert numbers[1] == numbers[0] + 2  # the gap where the docstring was


def test_definition_after_code_without_comment_starts_a_section():
    src = parse_text("A = 1\n\ndef f():\n    return A\n")
    assert [s.names for s in src.sections] == [[], ["f"]]


def test_handler_methods_inside_a_class_get_their_own_sections():
    src = parse(FIXTURES / "layer_b.py")
    named = [n for s in src.sections for n in s.names]
    assert named == ["Handlers", "json_hello", "get_item", "health"]


def test_blocks_are_keyed_by_handler_and_heading():
    keys = [b.key for b in blocks(parse(FIXTURES / "layer_a.py"))]
    assert keys == ["(top)", "resources", "plaintext", "json_hello", "get_item", "errors", "application"]


def test_block_lines_cover_the_file_in_order():
    src = parse(FIXTURES / "layer_a.py")
    numbers = [ln.number for b in blocks(src) for ln in b.lines]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert numbers[0] == 1 and numbers[-1] == len(src.text.splitlines())


def test_align_pairs_same_keys_and_keeps_order():
    a, b = blocks(parse(FIXTURES / "layer_a.py")), blocks(parse(FIXTURES / "layer_b.py"))
    pairs = [(x.key if x else None, y.key if y else None) for x, y in align(a, b)]
    assert ("json_hello", "json_hello") in pairs and ("get_item", "get_item") in pairs
    assert ("plaintext", None) in pairs and (None, "health") in pairs
    assert ("application", "application") in pairs
    assert [p[0] for p in pairs if p[0]] == [blk.key for blk in a]
    assert [p[1] for p in pairs if p[1]] == [blk.key for blk in b]


def test_align_pairs_keys_defined_in_a_different_order():
    a = blocks(parse_text("def plaintext():\n    pass\n\ndef json_hello():\n    pass\n\ndef echo():\n    pass\n"))
    b = blocks(parse_text("def json_hello():\n    pass\n\ndef slow():\n    pass\n\ndef plaintext():\n    pass\n"))
    pairs = [(x.key if x else None, y.key if y else None) for x, y in align(a, b)]
    assert pairs == [("plaintext", "plaintext"), ("json_hello", "json_hello"), (None, "slow"), ("echo", None)]


def test_syntax_error_still_gives_sections_and_counts():
    src = parse_text("# a note\ndef broken(:\n    pass\n")
    assert src.sections and src.code_lines == 2 and src.comment_lines == 1


LAYER_FILES = [pytest.param(layer.source, id=layer.name) for layer in LAYERS.values()]


@pytest.mark.parametrize("path", LAYER_FILES)
def test_every_layer_has_the_shared_headings_and_handlers(path: Path):
    if not path.exists():
        pytest.skip(f"{path.relative_to(PROJECT)} is not written yet")
    src = parse(path)
    assert src.docstring, "every layer opens with its theory of operation"
    for heading in ("Resources", "Handlers", "Errors", "Application"):
        assert heading in src.headings
    keys = {b.key for b in blocks(src)}
    assert {"json_hello", "get_item", "create_item"} <= keys
    assert keys & set(HANDLERS) >= {"plaintext", "json_hello", "get_item", "list_items", "create_item"}


def test_banner_headings_and_indented_subheadings():
    text = (
        "import x\n\n# " + "=" * 20 + "\n# Accept loop\n# " + "=" * 20 + "\n\nclass Server:\n"
        "    # -- lifecycle ------\n\n    def start(self):\n        pass\n"
    )
    src = parse_text(text)
    assert src.headings == ["Accept loop"]
    assert [b.key for b in blocks(src)] == ["(top)", "accept loop"]
    assert blocks(src)[1].lines[0].number == 3  # the block starts at the banner's first rule
    assert any(s.prose.startswith("### lifecycle") and s.heading == "Accept loop" for s in src.sections)
    assert src.comment_lines == 4 and src.lines == len(text.splitlines())


RUNGS = [
    pytest.param(layer.below, layer.name, id=f"{layer.below}-{layer.name}") for layer in LAYERS.values() if layer.below
]


@pytest.mark.parametrize(("below", "above"), RUNGS)
def test_each_rung_aligns_with_the_one_below_handler_by_handler(below: str, above: str):
    paths = [LAYERS[below].source, LAYERS[above].source]
    if not all(p.exists() for p in paths):
        pytest.skip("a layer of this pair is not written yet")
    pairs = align(blocks(parse(paths[0])), blocks(parse(paths[1])))
    both = [x.key for x, y in pairs if x is not None and y is not None]
    for handler in (
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
    ):
        assert handler in both, f"{handler} is not aligned between {below} and {above}"


def test_the_scratch_servers_align_section_by_section():
    paths = [PROJECT / "servers" / "scratch_wsgi.py", PROJECT / "servers" / "scratch_asgi.py"]
    if not all(p.exists() for p in paths):
        pytest.skip("a scratch server is not written yet")
    pairs = align(blocks(parse(paths[0])), blocks(parse(paths[1])))
    both = [x.key for x, y in pairs if x is not None and y is not None]
    # The team's shared headings, in order (STYLE.md: accept loop -> connection -> ... -> request cycle).
    shared = [k for k in ("accept loop", "connection", "event loop", "request cycle") if k in both]
    assert len(shared) >= 3 and shared == sorted(shared, key=both.index)
