"""HTTP Range requests (RFC 9110 section 14) for one byte range.

Browsers seek in <audio> with `Range: bytes=N-`; Django's own file serving
ignores Range, so a player could not seek. Plain Python, no Django.
"""

from __future__ import annotations

import re

_SINGLE_RANGE = re.compile(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", re.IGNORECASE)
_PAST_EVERY_FILE = 10**18


class RangeNotSatisfiable(ValueError):
    """The range lies wholly past the end of the file (answer 416)."""


def _position(digits: str) -> int | None:
    """'' -> None; a number longer than any file is never turned into a huge int."""
    if not digits:
        return None
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _PAST_EVERY_FILE


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the (first, last) byte positions asked for, both inclusive.

    None means "send the whole file with 200": no header, a header we may
    ignore (malformed, or several ranges), as RFC 9110 allows.
    """
    if not header:
        return None
    match = _SINGLE_RANGE.fullmatch(header)
    if not match:
        return None
    first, last = (_position(digits) for digits in match.groups())
    if first is None and last is None:
        return None
    if first is None:  # suffix range: the last N bytes
        if last == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - last, 0), size - 1
    if last is not None and last < first:
        return None  # invalid: ignore the header
    if first >= size:
        raise RangeNotSatisfiable(header)
    end = size - 1 if last is None else min(last, size - 1)
    return first, end
