"""Varint length prefixes and netstrings: round trips in any chunking, and every way a
hostile peer could make them grow memory or be read two ways refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framekit import (
    FrameTooLarge,
    IncompleteFrame,
    MalformedFrame,
    NetstringFormat,
    VarintFormat,
    parse_framing,
)
from framekit.codec._varint import encode_varint

from .framing_helpers import cuts, decode, decode_one_by_one, split

payloads = st.lists(st.binary(max_size=300), max_size=12)


@given(payloads, cuts)
def test_varint_round_trips(items: list[bytes], points: list[int]) -> None:
    fmt = VarintFormat()
    wire = fmt.encoder().encode_many(items)
    assert decode(fmt, split(wire, points)) == items
    assert decode_one_by_one(fmt, wire) == items


@pytest.mark.parametrize(
    ("n", "wire"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_varint_is_protobufs_leb128(n: int, wire: bytes) -> None:
    assert encode_varint(n) == wire


def test_varint_refuses_non_minimal_prefixes() -> None:
    with pytest.raises(MalformedFrame, match="shortest encoding"):
        decode(VarintFormat(), [b"\x80\x00"])


def test_varint_refuses_endless_continuation_bytes_at_once() -> None:
    fmt = VarintFormat(max_frame_size=1000)  # needs 2 bytes
    decoder = fmt.decoder()
    decoder.receive_data(b"\xff\xff")
    with pytest.raises(FrameTooLarge, match="longer than 2 bytes"):
        decoder.frames()


def test_varint_over_the_limit() -> None:
    with pytest.raises(FrameTooLarge) as info:
        decode(VarintFormat(max_frame_size=100), [encode_varint(101)])
    assert info.value.length == 101


@given(st.lists(st.integers(0, 20), max_size=10), cuts)
def test_varint_discard_mode(sizes: list[int], points: list[int]) -> None:
    fmt = parse_framing("varint:max=10,discard")
    items = [bytes([i]) * n for i, n in enumerate(sizes)]
    wire = b"".join(encode_varint(len(p)) + p for p in items)
    decoder = fmt.decoder()
    got: list[bytes] = []
    for chunk in split(wire, points):
        decoder.receive_data(chunk)
        got.extend(decoder.frames())
    decoder.receive_data(b"")
    got.extend(decoder.frames())
    assert got == [p for p in items if len(p) <= 10]
    assert decoder.skipped_frames == sum(1 for n in sizes if n > 10)


def test_varint_truncated() -> None:
    with pytest.raises(IncompleteFrame):
        decode(VarintFormat(), [b"\x05ab"])


@given(payloads, cuts)
def test_netstring_round_trips(items: list[bytes], points: list[int]) -> None:
    fmt = NetstringFormat()
    wire = fmt.encoder().encode_many(items)
    assert decode(fmt, split(wire, points)) == items
    assert decode_one_by_one(fmt, wire) == items


def test_netstring_is_djbs() -> None:
    assert NetstringFormat().encoder().encode(b"hello world!") == b"12:hello world!,"
    assert decode(NetstringFormat(), [b"0:,"]) == [b""]


@pytest.mark.parametrize(
    ("wire", "error", "match"),
    [
        (b"01:a,", MalformedFrame, "leading zero"),
        (b"1:ab", MalformedFrame, "not ','"),
        (b"x:", MalformedFrame, "decimal digits"),
        (b":a,", MalformedFrame, "decimal digits"),
        (b"-1:", MalformedFrame, "decimal digits"),
        (b"101:", FrameTooLarge, "over max_frame_size"),
        (b"99999999", FrameTooLarge, "over max_frame_size"),
    ],
)
def test_netstring_errors(wire: bytes, error: type[Exception], match: str) -> None:
    decoder = NetstringFormat(max_frame_size=100).decoder()
    decoder.receive_data(wire)
    with pytest.raises(error, match=match):
        decoder.frames()


def test_netstring_digits_are_bounded_before_the_colon() -> None:
    decoder = NetstringFormat(max_frame_size=100).decoder()
    decoder.receive_data(b"10")
    assert decoder.frames() == []
    decoder.receive_data(b"00")  # 4 digits: more than 100 can have
    with pytest.raises(FrameTooLarge):
        decoder.frames()


@pytest.mark.parametrize(
    ("fmt", "wire", "good", "error"),
    [
        (NetstringFormat(), b"1:a,2:bc,2:de,01:x,", [b"a", b"bc", b"de"], MalformedFrame),
        (NetstringFormat(), b"1:a,1:b,1:cX", [b"a", b"b"], MalformedFrame),
        (NetstringFormat(100), b"1:a,101:", [b"a"], FrameTooLarge),
        (VarintFormat(10), b"\x01a\x01b\x0b" + b"x" * 11, [b"a", b"b"], FrameTooLarge),
        (VarintFormat(), b"\x01a\x80\x00", [b"a"], MalformedFrame),
    ],
)
def test_frames_before_an_error_come_first_then_the_error(
    fmt: NetstringFormat | VarintFormat, wire: bytes, good: list[bytes], error: type[Exception]
) -> None:
    decoder = fmt.decoder()
    decoder.receive_data(wire)
    assert decoder.frames() == good
    with pytest.raises(error):
        decoder.frames()
    with pytest.raises(error):  # terminal
        decoder.next_frame()


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=30), st.data())
def test_netstring_lengths_that_repeat_or_change_decode_the_same(
    items: list[bytes], data: st.DataObject
) -> None:
    """The fast path remembers the last length's digits; changing lengths must not fool it."""
    fmt = NetstringFormat()
    wire = fmt.encoder().encode_many(items)
    assert decode(fmt, split(wire, data.draw(cuts))) == items
