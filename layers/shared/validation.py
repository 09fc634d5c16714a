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

* integers parse like pydantic's lax mode: surrounding whitespace, a sign, ``_``
  between digits and a fractional part of zeros (``5.0``, ``5.000``) are accepted, but
  only ASCII digits; more than 4300 significant digits is ``int_parsing_size`` (the
  limit CPython put on ``int(str)`` against quadratic-time parsing, CVE-2020-10735);
* ``price`` is a strict number: booleans and numeric strings are refused, ``NaN`` and
  infinities too (``allow_inf_nan=False``: JSON has no way to send them back);
* unknown body fields are ignored (pydantic's default ``extra="ignore"``);
* an error's ``input`` that is NaN or an infinity is written as ``null``: Python's
  ``json.loads`` accepts ``NaN`` and turns ``1e400`` into ``inf``, but JSON has no way
  to send them back (FastAPI's default 422 handler fails on them with a 500, so the
  FastAPI layer writes them as ``null`` too).

* the body is parsed as JSON only when ``Content-Type`` says so -- ``application/json``
  or any ``application/*+json``, parameters ignored -- and a body without the header is
  *not* JSON.  That is FastAPI's ``strict_content_type`` default: a browser can send a
  cross-site POST with ``text/plain`` or no type without a CORS preflight, so treating
  such a body as JSON would let any web page create items on a service at localhost.
  Any other type reaches the model as the raw body, which is not an object:
  ``model_attributes_type``, with the body (decoded as UTF-8) as the input.

What it deliberately doesn't do: FastAPI answers a JSON body that is not UTF-8 with
400 ``{"detail": "There was an error parsing the body"}`` (its JSON decoder raises a
``UnicodeDecodeError``, not a ``JSONDecodeError``); these functions report it as the
``json_invalid`` 422 the contract asks for (RFC 8259 §8.1: JSON text is UTF-8).
"""

from __future__ import annotations

import email.message
import json
import math
import re
from collections.abc import Mapping
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
        """The response body: ``{"detail": [...]}``, with NaN and infinities as ``None``."""
        return {"detail": _finite(self.errors)}


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _error(type_: str, loc: list[Any], msg: str, input_: Any, ctx: dict[str, Any] | None = None) -> Error:
    err: Error = {"type": type_, "loc": loc, "msg": msg, "input": input_}
    if ctx is not None:
        err["ctx"] = ctx
    return err


# pydantic's lax string -> int: ASCII digits with optional sign and single underscores
# between digits (Python's int() literal syntax), then optionally a fractional part
# made only of zeros.  "5.0" is 5; "5.5", "5." and ".0" are not integers.
_LAX_INT = re.compile(r"([+-]?)([0-9]+(?:_[0-9]+)*)(?:\.0+)?")
MAX_INT_DIGITS = 4300  # CPython's sys.int_info.default_max_str_digits, which pydantic applies too


def _parse_int(raw: str, loc: list[Any]) -> int | Error:
    """pydantic's lax str -> int: the integer, or the error pydantic would report."""
    match = _LAX_INT.fullmatch(raw.strip())
    if match is None:
        return _error("int_parsing", loc, "Input should be a valid integer, unable to parse string as an integer", raw)
    sign, digits = match.group(1), match.group(2).replace("_", "").lstrip("0")
    if len(digits) > MAX_INT_DIGITS:
        return _error("int_parsing_size", loc, "Unable to parse input string as an integer, exceeded maximum size", raw)
    return int(sign + (digits or "0"))


def parse_item_id(raw: str) -> int:
    """The ``{item_id}`` path parameter."""
    value = _parse_int(raw, ["path", "item_id"])
    if isinstance(value, dict):
        raise ValidationFailed([value])
    return value


def _query_int(params: Mapping[str, str], name: str, default: int, ge: int, le: int | None, errors: list[Error]) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    loc = ["query", name]
    value = _parse_int(raw, loc)
    if isinstance(value, dict):
        errors.append(value)
    elif value < ge:
        errors.append(
            _error("greater_than_equal", loc, f"Input should be greater than or equal to {ge}", raw, {"ge": ge})
        )
    elif le is not None and value > le:
        errors.append(_error("less_than_equal", loc, f"Input should be less than or equal to {le}", raw, {"le": le}))
    else:
        return value
    return default


def parse_page(params: Mapping[str, str]) -> tuple[int, int]:
    """``GET /items?limit=&offset=``: (limit, offset).  ``params`` maps name -> last value."""
    errors: list[Error] = []
    limit = _query_int(params, "limit", LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX, errors)
    offset = _query_int(params, "offset", OFFSET_DEFAULT, OFFSET_MIN, None, errors)
    if errors:
        raise ValidationFailed(errors)
    return limit, offset


def parse_stream_n(params: Mapping[str, str]) -> int:
    """``GET /stream?n=``."""
    errors: list[Error] = []
    n = _query_int(params, "n", STREAM_DEFAULT, STREAM_MIN, STREAM_MAX, errors)
    if errors:
        raise ValidationFailed(errors)
    return n


def parse_slow_ms(params: Mapping[str, str]) -> int:
    """``GET /slow?ms=``."""
    errors: list[Error] = []
    ms = _query_int(params, "ms", SLOW_DEFAULT, SLOW_MIN, SLOW_MAX, errors)
    if errors:
        raise ValidationFailed(errors)
    return ms


def is_json_content_type(content_type: str | None) -> bool:
    """FastAPI's test: ``application/json`` or ``application/*+json``; no header is not JSON.

    The header is parsed the way FastAPI parses it, with the standard library's
    ``email.message`` (RFC 2045 syntax, case-insensitive, parameters ignored; a
    malformed type counts as ``text/plain``).
    """
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def parse_new_item(body: bytes, content_type: str | None) -> dict[str, Any]:
    """``POST /items``: the JSON body -> ``{"name", "price", "tags"}``, or every error found.

    ``content_type`` is the request's ``Content-Type`` header (``None`` when absent).
    Mirrors FastAPI: an empty body is a missing body, a body that is not declared JSON
    is not an object, undecodable JSON is ``json_invalid`` at the byte position, a
    non-object is ``model_attributes_type`` at ``["body"]``.
    """
    if not body:
        raise ValidationFailed([_error("missing", ["body"], "Field required", None)])
    if not is_json_content_type(content_type):
        raise ValidationFailed(
            [
                _error(
                    "model_attributes_type",
                    ["body"],
                    "Input should be a valid dictionary or object to extract fields from",
                    body.decode("utf-8", "replace"),
                )
            ]
        )
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8"
        raise ValidationFailed(
            [_error("json_invalid", ["body", pos], "JSON decode error", {}, {"error": reason})]
        ) from None
    if not isinstance(data, dict):
        raise ValidationFailed(
            [
                _error(
                    "model_attributes_type",
                    ["body"],
                    "Input should be a valid dictionary or object to extract fields from",
                    data,
                )
            ]
        )

    errors: list[Error] = []
    name = data.get("name")
    if "name" not in data:
        errors.append(_error("missing", ["body", "name"], "Field required", data))
    elif not isinstance(name, str):
        errors.append(_error("string_type", ["body", "name"], "Input should be a valid string", name))
    elif len(name) < NAME_MIN:
        errors.append(
            _error(
                "string_too_short",
                ["body", "name"],
                f"String should have at least {NAME_MIN} character",
                name,
                {"min_length": NAME_MIN},
            )
        )
    elif len(name) > NAME_MAX:
        errors.append(
            _error(
                "string_too_long",
                ["body", "name"],
                f"String should have at most {NAME_MAX} characters",
                name,
                {"max_length": NAME_MAX},
            )
        )

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
    assert price is not None  # checked above: a missing or non-numeric price is an error already raised
    return {"name": name, "price": float(price), "tags": list(tags)}
