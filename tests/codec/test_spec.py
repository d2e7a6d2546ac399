"""Spec strings: one short name per framing, read and written back."""

from __future__ import annotations

import struct

import pytest

from framekit import (
    DEFAULT_FORMAT,
    TUTORIAL_FORMAT,
    DelimitedFormat,
    FrameFormat,
    InvalidFormat,
    NetstringFormat,
    VarintFormat,
    parse_framing,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("u32be", DEFAULT_FORMAT),
        ("u32", DEFAULT_FORMAT),
        ("u16be", FrameFormat(2)),
        ("u8", FrameFormat(1)),
        ("u24le", FrameFormat(3, "little")),
        ("u64le:max=1M", FrameFormat(8, "little", max_frame_size=1 << 20)),
        ("i32ne", TUTORIAL_FORMAT),
        ("len:offset=2,width=3,adjust=-5,strip=5", FrameFormat(3, offset=2, adjust=-5, strip=5)),
        (
            "u16be:offset=1,adjust=1,strip=3,fill=0xca",
            FrameFormat(2, offset=1, adjust=1, strip=3, header_fill=b"\xca"),
        ),
        ("u32be:discard,max=64K", FrameFormat(max_frame_size=65536, oversize="discard")),
        ("lines", DelimitedFormat.lines()),
        ("crlf:max=1K", DelimitedFormat.crlf(max_frame_size=1024)),
        ("lf", DelimitedFormat((b"\n",))),
        ("delim:0x00", DelimitedFormat((b"\x00",))),
        ("delim:0x0d0a|0x00,keep", DelimitedFormat((b"\r\n", b"\x00"), keep_delimiter=True)),
        ("varint", VarintFormat()),
        ("netstring:max=100", NetstringFormat(100)),
    ],
)  # fmt: skip
def test_specs_name_their_framing_and_round_trip(spec: str, expected: object) -> None:
    fmt = parse_framing(spec)
    assert fmt == expected
    assert parse_framing(fmt.spec) == fmt


def test_a_one_byte_field_has_no_byte_order() -> None:
    little = FrameFormat(1, "little")
    assert little == FrameFormat(1) == parse_framing(little.spec)


def test_i32le_is_the_tutorials_struct_i_on_little_endian_machines() -> None:
    assert parse_framing("i32le").encoder().encode(b"ab")[:4] == struct.pack("<i", 2)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("u33be", "unknown framing 'u33be'"),
        ("xml", "unknown framing"),
        ("u32be:bogus=1", "unknown option 'bogus'"),
        ("u32be:max=lots", "not a size"),
        ("delim", "needs its delimiter"),
        ("delim:0xzz", "not hex"),
        ("netstring:discard", "no discard"),
        ("u32be:max=1,max=2", "twice"),
        ("len:order=middle", "order must be"),
        ("u16be:offset=1,strip=2", "cut the length field"),
    ],
)
def test_bad_specs_say_what_is_known(spec: str, match: str) -> None:
    with pytest.raises(InvalidFormat, match=match) as info:
        parse_framing(spec)
    assert repr(spec) in str(info.value)
