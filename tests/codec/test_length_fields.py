"""Length fields as complete as Netty's LengthFieldBasedFrameDecoder and tokio's
LengthDelimitedCodec: every worked example in Netty's documentation, both directions,
byte for byte, split at every point."""

from __future__ import annotations

import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framekit import (
    FrameDecoder,
    FrameFormat,
    FrameTooLarge,
    IncompleteFrame,
    InvalidFormat,
    LocalProtocolError,
    MalformedFrame,
    parse_framing,
)

from .framing_helpers import cuts, decode, decode_one_by_one, split

HW = b"HELLO, WORLD"

# (name, format, wire bytes, decoded frame) - Netty's javadoc examples, in order.
NETTY = [
    ("2 bytes length field at offset 0, do not strip header",
     FrameFormat(2, strip=0), b"\x00\x0c" + HW, b"\x00\x0c" + HW),
    ("2 bytes length field at offset 0, strip header",
     FrameFormat(2, strip=2), b"\x00\x0c" + HW, HW),
    ("2 bytes length field at offset 0, do not strip header, the length field represents "
     "the length of the whole message",
     FrameFormat(2, adjust=-2, strip=0), b"\x00\x0e" + HW, b"\x00\x0e" + HW),
    ("3 bytes length field at the end of 5 bytes header, do not strip header",
     FrameFormat(3, offset=2, strip=0), b"\xca\xfe\x00\x00\x0c" + HW, b"\xca\xfe\x00\x00\x0c" + HW),
    ("3 bytes length field at the beginning of 5 bytes header, do not strip header",
     FrameFormat(3, adjust=2, strip=0), b"\x00\x00\x0c\xca\xfe" + HW, b"\x00\x00\x0c\xca\xfe" + HW),
    ("2 bytes length field at offset 1 in the middle of 4 bytes header, strip the first "
     "header field and the length field",
     FrameFormat(2, offset=1, adjust=1, strip=3, header_fill=b"\xca"),
     b"\xca\x00\x0c\xfe" + HW, b"\xfe" + HW),
    ("2 bytes length field at offset 1 in the middle of 4 bytes header, strip the first "
     "header field and the length field, the length field represents the length of the "
     "whole message",
     FrameFormat(2, offset=1, adjust=-3, strip=3, header_fill=b"\xca"),
     b"\xca\x00\x10\xfe" + HW, b"\xfe" + HW),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fmt", "wire", "frame"), NETTY, ids=[n[:40] for n, *_ in NETTY])
def test_netty_examples_decode_and_encode_byte_for_byte(
    name: str, fmt: FrameFormat, wire: bytes, frame: bytes
) -> None:
    assert decode(fmt, [wire + wire]) == [frame, frame]
    assert decode_one_by_one(fmt, wire) == [frame]
    assert fmt.encoder().encode(frame) == wire
    assert parse_framing(fmt.spec) == fmt


@given(st.data())
def test_netty_examples_survive_every_split(data: st.DataObject) -> None:
    _, fmt, wire, frame = data.draw(st.sampled_from(NETTY))
    stream = wire * 3
    assert decode(fmt, split(stream, data.draw(cuts))) == [frame] * 3


def test_the_issue_spec_reads_as_a_netty_format() -> None:
    fmt = parse_framing("len:offset=2,width=3,adjust=-5,strip=5")
    assert (fmt.offset, fmt.width, fmt.adjust, fmt.strip) == (2, 3, -5, 5)  # type: ignore[union-attr]
    wire = b"\xca\xfe" + (5 + len(HW)).to_bytes(3, "big") + HW
    assert decode(fmt, [wire]) == [HW]


@pytest.mark.parametrize("width", range(1, 9))
@pytest.mark.parametrize("order", ["big", "little"])
@pytest.mark.parametrize("signed", [False, True])
def test_every_width_order_and_sign_round_trips(width: int, order: str, signed: bool) -> None:
    fmt = FrameFormat(
        width, order, signed, max_frame_size=min(300, (1 << (8 * width - signed)) - 1)
    )  # type: ignore[arg-type]
    payloads = [b"", b"x", bytes(range(256))[: fmt.limit]]
    wire = fmt.encoder().encode_many(payloads)
    n = len(payloads[2])
    assert wire[-n - width : -n] == n.to_bytes(width, order, signed=signed)  # type: ignore[arg-type]
    assert decode(fmt, [wire]) == payloads


def test_three_byte_field_and_native_order() -> None:
    fmt = parse_framing("u24be")
    assert fmt.encoder().encode(b"abc") == b"\x00\x00\x03abc"
    native = FrameFormat(4, "native", True)
    assert native.byteorder == sys.byteorder
    assert native.encoder().encode(b"ab") == struct.pack("i", 2) + b"ab"


def test_a_length_shorter_than_its_header_is_malformed_and_terminal() -> None:
    fmt = FrameFormat(2, adjust=-2, strip=0)
    decoder = fmt.decoder()
    decoder.receive_data(b"\x00\x01abc")
    with pytest.raises(MalformedFrame, match="shorter than the frame's header"):
        decoder.frames()
    with pytest.raises(MalformedFrame):
        decoder.next_frame()


def test_a_frame_shorter_than_the_bytes_to_strip_is_malformed() -> None:
    fmt = FrameFormat(2, strip=4, header_fill=b"ab")
    decoder = fmt.decoder()
    decoder.receive_data(b"\x00\x01z")
    with pytest.raises(MalformedFrame, match="shorter than the 4 bytes"):
        decoder.frames()


def test_oversize_is_terminal_by_default_with_a_header() -> None:
    fmt = FrameFormat(2, offset=1, strip=0, max_frame_size=4)
    decoder = fmt.decoder()
    decoder.receive_data(b"\x07\x00\x05")
    with pytest.raises(FrameTooLarge) as info:
        decoder.frames()
    assert info.value.length == 5


@given(st.data())
def test_discard_mode_skips_oversized_frames_and_resynchronises(data: st.DataObject) -> None:
    fmt = FrameFormat(2, max_frame_size=4, oversize="discard")
    sizes = data.draw(st.lists(st.integers(0, 9), min_size=1, max_size=12))
    payloads = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
    wire = b"".join(n.to_bytes(2, "big") + p for n, p in zip(sizes, payloads, strict=True))
    decoder: FrameDecoder = fmt.decoder()
    got: list[bytes] = []
    for chunk in split(wire, data.draw(cuts)):
        decoder.receive_data(chunk)
        got.extend(decoder.frames())
    decoder.receive_data(b"")
    got.extend(decoder.frames())
    assert got == [p for p in payloads if len(p) <= 4]
    too_big = [n for n in sizes if n > 4]
    assert decoder.skipped_frames == len(too_big)
    assert decoder.skipped_bytes == sum(2 + n for n in too_big)


def test_discard_mode_never_buffers_the_skipped_frame() -> None:
    fmt = FrameFormat(4, max_frame_size=10, oversize="discard")
    decoder = fmt.decoder()
    decoder.receive_data((1 << 30).to_bytes(4, "big"))
    for _ in range(100):
        decoder.receive_data(b"x" * 10_000)
        assert decoder.frames() == []
        assert decoder.buffered == 0
    decoder.receive_data(b"")
    with pytest.raises(IncompleteFrame, match="while skipping"):
        decoder.frames()


def test_encoder_needs_the_stripped_header_bytes() -> None:
    with pytest.raises(InvalidFormat, match="header_fill"):
        FrameFormat(2, offset=1, strip=3).encoder()
    FrameFormat(2, offset=1, strip=3).decoder()  # decoding needs nothing more


def test_strip_may_not_cut_the_length_field() -> None:
    with pytest.raises(InvalidFormat, match="cut the length field"):
        FrameFormat(2, offset=1, strip=2)


def test_encoder_refuses_frames_shorter_than_their_kept_header() -> None:
    enc = FrameFormat(2, offset=2, strip=0).encoder()
    with pytest.raises(LocalProtocolError, match="shorter than the 4 header bytes"):
        enc.encode(b"abc")


def test_encoder_writes_the_length_field_in_place() -> None:
    enc = FrameFormat(2, offset=1, strip=0).encoder()
    assert enc.encode(b"T\xff\xffxyz") == b"T\x00\x03xyz"


def test_prefix_is_only_for_plain_formats() -> None:
    with pytest.raises(InvalidFormat, match="plain"):
        FrameFormat(2, offset=1, strip=0).encoder().prefix(3)
