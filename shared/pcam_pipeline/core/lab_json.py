"""JSON a lab sends (a sidecar, a training.json): parsed inside limits, so that no file can raise anything but
InvalidInput, which quarantines it with a reason. Pure.

Python's parser alone would let through what later code cannot handle: 400-digit numbers (OverflowError
when used as a float), thousands of nested brackets (RecursionError), NaN and Infinity (not JSON at all).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pcam_pipeline.core.errors import InvalidInput

MAX_DEPTH = 4  # {"hyperparameters": {...}} is the deepest any lab file needs
MAX_NUMBER_CHARACTERS = 32  # "0.000244140625" or "100000" fit; a 400-digit number does not


class _Refused(ValueError):
    """A number or constant the limits refuse, raised from inside the parser."""


def _checked_number(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise _Refused(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARACTERS})")
    return text


def _integer(text: str) -> int:
    return int(_checked_number(text))


def _real(text: str) -> float:
    value = float(_checked_number(text))
    if not math.isfinite(value):
        raise _Refused(f"{text} is too large for a number")
    return value


def _constant(name: str) -> float:
    raise _Refused(f"{name} is not a JSON number")


def nesting_depth(text: str, limit: int) -> int:
    """How deeply objects and arrays nest, brackets inside strings aside; one pass, stopping past ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            in_string = escaped or character != '"'
            escaped = not escaped and character == "\\"
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif character in "]}":
            depth -= 1
    return deepest


def parse_lab_json(body: bytes, what: str, max_bytes: int, example: str) -> Any:
    """The document in ``body``, or InvalidInput naming ``what`` and saying plainly what is wrong."""
    expected = f"a JSON object such as {example}"
    if len(body) > max_bytes:
        raise InvalidInput(f"{what} is too large", f"at most {max_bytes:,} bytes of {expected}", f"{len(body):,} bytes")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} is not UTF-8 text", expected, str(exc)) from exc
    if nesting_depth(text, MAX_DEPTH) > MAX_DEPTH:
        raise InvalidInput(f"{what} nests objects or arrays too deeply", f"at most {MAX_DEPTH} levels: {expected}",
                           f"more than {MAX_DEPTH} levels")  # fmt: skip
    try:
        return json.loads(text, parse_int=_integer, parse_float=_real, parse_constant=_constant)
    except _Refused as exc:
        raise InvalidInput(f"{what} holds a number the pipeline cannot use", expected, str(exc)) from exc
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON", expected, str(exc)) from exc
