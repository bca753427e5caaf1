from __future__ import annotations

import pytest

from recordings_app.http_range import RangeNotSatisfiable, parse_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-500", (500, 999)),
        ("bytes=0-0", (0, 0)),
        ("bytes=999-", (999, 999)),
        ("bytes=0-", (0, 999)),
        ("Bytes = 10 - 19", (10, 19)),
    ],
)
def test_range_gives_the_inclusive_byte_positions_asked_for(header, expected):
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=900-5000", (900, 999)),
        ("bytes=0-1000", (0, 999)),
        ("bytes=999-1000000", (999, 999)),
    ],
)
def test_range_ending_past_the_file_ends_at_its_last_byte(header, expected):
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=-1000", "bytes=-5000"])
def test_suffix_at_least_as_long_as_the_file_is_the_whole_file(header):
    assert parse_range(header, SIZE) == (0, SIZE - 1)


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", SIZE),
        ("bytes=1000-1999", SIZE),
        ("bytes=5000-6000", SIZE),
        ("bytes=-0", SIZE),
        ("bytes=-10", 0),
        pytest.param("bytes=" + "9" * 5000 + "-", SIZE, id="5000-digit-start"),
    ],
)
def test_range_wholly_past_the_end_is_not_satisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=0-99,200-299",
        "bytes=0-99, 200-299",
        "bytes=-",
        "bytes=100-50",
        "bytes=abc-",
        "bytes=0x10-",
        "bytes 0-99",
        "0-99",
        "items=0-99",
    ],
)
def test_header_we_may_ignore_means_the_whole_file(header):
    assert parse_range(header, SIZE) is None
