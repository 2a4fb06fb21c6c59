"""Strict JSON for the wire: UTF-8, no duplicate keys, no NaN, compact and stable output."""

from __future__ import annotations

import json
from typing import Any

from .errors import MalformedError

# A nesting bound keeps a hostile message from exhausting the recursion limit.
MAX_JSON_DEPTH = 32


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise MalformedError(f"duplicate JSON key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed")


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


def loads(data: bytes | str) -> Any:
    """Parse strict JSON or raise MalformedError."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedError("message is not UTF-8") from exc
    else:
        text = data
    if _depth(text) > MAX_JSON_DEPTH:
        raise MalformedError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MalformedError(f"invalid JSON: {exc}") from exc


def dumps(value: Any) -> bytes:
    """Serialise to compact UTF-8 JSON with sorted keys."""
    return json.dumps(
        value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
