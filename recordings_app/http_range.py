"""HTTP Range requests (RFC 9110 section 14) for one byte range.

Browsers seek in <audio> with `Range: bytes=N-`; Django's own file serving
ignores Range, so a player could not seek. Plain Python, no Django.
"""

from __future__ import annotations

import re

_SINGLE_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(ValueError):
    """The range lies wholly past the end of the file (answer 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the (first, last) byte positions asked for, both inclusive.

    None means "send the whole file with 200": no header, a header we may
    ignore (malformed, or several ranges), as RFC 9110 allows.
    """
    if not header:
        return None
    match = _SINGLE_RANGE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - length, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignore the header
    if start >= size:
        raise RangeNotSatisfiable(header)
    end = int(last) if last else size - 1
    return start, min(end, size - 1)
