"""Make a WSGI environ or an ASGI scope JSON-safe, for ``GET /inspect``.

``/inspect`` answers with the raw interface view a layer was handed -- the environ
or the scope -- so a reader can compare what each server passes down.  Neither is
JSON: an environ holds file objects (``wsgi.input``, ``wsgi.errors``) and a scope holds
bytes (``raw_path``, header names and values).  The rules here, shared by all six
layers so their answers are comparable:

* ``bytes`` become ``str`` decoded as latin-1 -- the one decoding that maps every byte
  to one character and back, which is also how PEP 3333 carries bytes in ``str``;
* tuples become lists; dict keys become strings;
* anything else that JSON cannot hold (streams, callables, the lifespan ``state``
  namespace, extensions' objects) becomes its ``repr()``.
"""

from __future__ import annotations

from typing import Any


def json_safe(value: Any, _depth: int = 0) -> Any:
    """A JSON-serialisable copy of ``value`` (see the module docstring for the rules)."""
    if _depth > 8:  # a scope is shallow; deeper means a cycle or an exotic extension
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [json_safe(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v, _depth + 1) for k, v in value.items()}
    return repr(value)
