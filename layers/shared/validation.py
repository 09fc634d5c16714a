"""Request validation by hand, for every layer below FastAPI.

Theory of operation
-------------------
FastAPI validates path, query and body with pydantic and answers a failure with 422
and ``{"detail": [{"type", "loc", "msg", ...}, ...]}``.  Equal work is the whole
point of layercake, so the five layers below FastAPI call these functions to do the
same checks and produce the same error shape, by hand.  Each function either returns
clean values or raises :class:`ValidationFailed` carrying *all* the errors found (as
pydantic does: a body with a bad name and a bad price reports both).

The rules follow what FastAPI + pydantic v2 do for the contract's declarations, so a
client sees the same ``type`` and ``msg`` strings from every layer:

* integers parse like pydantic's lax mode: surrounding whitespace, a sign and ``_``
  between digits are accepted (that is Python's ``int()``), but only ASCII digits;
* ``price`` is a strict number: booleans and numeric strings are refused, ``NaN`` and
  infinities too (``allow_inf_nan=False``: JSON has no way to send them back);
* unknown body fields are ignored (pydantic's default ``extra="ignore"``).

What it deliberately doesn't do: content negotiation.  The body is parsed as JSON
whatever its ``Content-Type`` says, the lenient choice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

# Body size limits of the contract (CONTRACT.md, items 6 and 8).  1 MiB for a JSON
# document is generous (nginx's default client_max_body_size is 1 MiB too); 16 MiB for
# the echo stream matches the largest WebSocket message we accept.
MAX_ITEM_BODY = 1024 * 1024
MAX_ECHO_BODY = 16 * 1024 * 1024
MAX_WS_MESSAGE = 16 * 1024 * 1024

# Query limits of the contract.
LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX = 10, 1, 100
OFFSET_DEFAULT, OFFSET_MIN = 0, 0
STREAM_DEFAULT, STREAM_MIN, STREAM_MAX = 5, 0, 1000
SLOW_DEFAULT, SLOW_MIN, SLOW_MAX = 50, 0, 10_000

NAME_MIN, NAME_MAX = 1, 100


Error = dict[str, Any]


@dataclass
class ValidationFailed(Exception):
    """One or more validation errors, in FastAPI's shape; answer with 422."""

    errors: list[Error]

    def detail(self) -> dict[str, list[Error]]:
        """The response body: ``{"detail": [...]}``."""
        return {"detail": self.errors}


def _error(type_: str, loc: list[Any], msg: str, input_: Any, ctx: dict[str, Any] | None = None) -> Error:
    err: Error = {"type": type_, "loc": loc, "msg": msg, "input": input_}
    if ctx is not None:
        err["ctx"] = ctx
    return err


def _parse_int(raw: str) -> int | None:
    """pydantic's lax str -> int: Python's int() restricted to ASCII input."""
    text = raw.strip()
    if not text.isascii():
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _int_parsing(loc: list[Any], raw: str) -> Error:
    return _error("int_parsing", loc, "Input should be a valid integer, unable to parse string as an integer", raw)


def parse_item_id(raw: str) -> int:
    """The ``{item_id}`` path parameter."""
    value = _parse_int(raw)
    if value is None:
        raise ValidationFailed([_int_parsing(["path", "item_id"], raw)])
    return value


def _query_int(params: dict[str, str], name: str, default: int, ge: int, le: int | None, errors: list[Error]) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    value = _parse_int(raw)
    loc = ["query", name]
    if value is None:
        errors.append(_int_parsing(loc, raw))
    elif value < ge:
        errors.append(_error("greater_than_equal", loc, f"Input should be greater than or equal to {ge}", raw, {"ge": ge}))
    elif le is not None and value > le:
        errors.append(_error("less_than_equal", loc, f"Input should be less than or equal to {le}", raw, {"le": le}))
    else:
        return value
    return default


def parse_page(params: dict[str, str]) -> tuple[int, int]:
    """``GET /items?limit=&offset=``: (limit, offset).  ``params`` maps name -> last value."""
    errors: list[Error] = []
    limit = _query_int(params, "limit", LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX, errors)
    offset = _query_int(params, "offset", OFFSET_DEFAULT, OFFSET_MIN, None, errors)
    if errors:
        raise ValidationFailed(errors)
    return limit, offset


def parse_stream_n(params: dict[str, str]) -> int:
    """``GET /stream?n=``."""
    errors: list[Error] = []
    n = _query_int(params, "n", STREAM_DEFAULT, STREAM_MIN, STREAM_MAX, errors)
    if errors:
        raise ValidationFailed(errors)
    return n


def parse_slow_ms(params: dict[str, str]) -> int:
    """``GET /slow?ms=``."""
    errors: list[Error] = []
    ms = _query_int(params, "ms", SLOW_DEFAULT, SLOW_MIN, SLOW_MAX, errors)
    if errors:
        raise ValidationFailed(errors)
    return ms


def parse_new_item(body: bytes) -> dict[str, Any]:
    """``POST /items``: the JSON body -> ``{"name", "price", "tags"}``, or every error found.

    Mirrors FastAPI: an empty body is a missing body, undecodable JSON is ``json_invalid``
    at the byte position, a non-object is ``model_attributes_type`` at ``["body"]``.
    """
    if not body:
        raise ValidationFailed([_error("missing", ["body"], "Field required", None)])
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8"
        raise ValidationFailed([_error("json_invalid", ["body", pos], "JSON decode error", {}, {"error": reason})]) from None
    if not isinstance(data, dict):
        raise ValidationFailed(
            [_error("model_attributes_type", ["body"], "Input should be a valid dictionary or object to extract fields from", data)]
        )

    errors: list[Error] = []
    name = data.get("name")
    if "name" not in data:
        errors.append(_error("missing", ["body", "name"], "Field required", data))
    elif not isinstance(name, str):
        errors.append(_error("string_type", ["body", "name"], "Input should be a valid string", name))
    elif len(name) < NAME_MIN:
        errors.append(_error("string_too_short", ["body", "name"], f"String should have at least {NAME_MIN} character", name, {"min_length": NAME_MIN}))
    elif len(name) > NAME_MAX:
        errors.append(_error("string_too_long", ["body", "name"], f"String should have at most {NAME_MAX} characters", name, {"max_length": NAME_MAX}))

    price = data.get("price")
    if "price" not in data:
        errors.append(_error("missing", ["body", "price"], "Field required", data))
    elif isinstance(price, bool) or not isinstance(price, (int, float)):
        # bool is a subclass of int in Python; JSON true is not a price.
        errors.append(_error("float_type", ["body", "price"], "Input should be a valid number", price))
    elif not math.isfinite(price):
        errors.append(_error("finite_number", ["body", "price"], "Input should be a finite number", price))
    elif not price > 0:
        errors.append(_error("greater_than", ["body", "price"], "Input should be greater than 0", price, {"gt": 0}))

    tags = data.get("tags", [])
    if not isinstance(tags, list):
        errors.append(_error("list_type", ["body", "tags"], "Input should be a valid list", tags))
    else:
        for i, tag in enumerate(tags):
            if not isinstance(tag, str):
                errors.append(_error("string_type", ["body", "tags", i], "Input should be a valid string", tag))

    if errors:
        raise ValidationFailed(errors)
    return {"name": name, "price": float(price), "tags": list(tags)}
