"""Strict JSON for the wire: UTF-8, no duplicate keys, no NaN, compact and stable output."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import MalformedError

# A nesting bound keeps a hostile message from exhausting the recursion limit.
MAX_JSON_DEPTH = 32
# A \uD800-\uDFFF escape may leave a lone surrogate, which no UTF-8 encoder (nor SQLite) takes.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise MalformedError(f"duplicate JSON key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedError("JSON number out of range")
    return value


def _check_text(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedError("JSON string holds a lone surrogate") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def _depth(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse strict JSON or raise MalformedError."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedError("message is not UTF-8") from exc
    elif isinstance(data, str):
        text = data
    else:
        raise MalformedError("JSON input must be bytes or str")
    if _depth(text) > MAX_JSON_DEPTH:
        raise MalformedError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers past Python's digit limit.
        raise MalformedError(f"invalid JSON: {str(exc)[:100]}") from exc
    if _SURROGATE_ESCAPE.search(text):
        _check_text(value)
    return value


def dumps(value: Any) -> bytes:
    """Serialise to compact UTF-8 JSON with sorted keys."""
    return json.dumps(
        value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
