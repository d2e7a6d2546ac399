"""FrameDecoder's zero-copy API: next_length, take_into, peek_into and finish_frame.

The frame stays pending until it is consumed whole, so every split of the byte stream
must give the payloads next_frame gives, and a caller that gives up half-way (a buffer
too small, a cancelled read) must leave the decoder as it was.
"""

from __future__ import annotations

import array
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framekit import (
    END_OF_STREAM,
    NEED_DATA,
    BufferTooSmall,
    FrameDecoder,
    FrameEncoder,
    FrameFormat,
    FrameTooLarge,
    IncompleteFrame,
    LocalProtocolError,
    MalformedFrame,
)

from ..helpers import split_at
from .test_length_fields import NETTY

plain_formats = st.builds(
    FrameFormat,
    width=st.sampled_from([1, 2, 4, 8]),
    byteorder=st.sampled_from(["big", "little"]),
    signed=st.booleans(),
)
#: Netty's worked examples: headers kept or stripped, adjusted lengths (the general path).
general_formats = st.sampled_from([fmt for _, fmt, _, _ in NETTY])


def take_all(decoder: FrameDecoder, chunks: list[bytes], size: int = 1 << 16) -> list[bytes]:
    """Feed every chunk (then the end), taking frames with take_into into one buffer."""
    buffer = bytearray(size)
    out: list[bytes] = []
    for chunk in [*filter(None, chunks), b""]:
        decoder.receive_data(chunk)
        while True:
            n = decoder.take_into(buffer)
            if n is NEED_DATA or n is END_OF_STREAM:
                break
            out.append(bytes(buffer[:n]))
    assert decoder.take_into(buffer) is END_OF_STREAM
    return out


def direct_all(decoder: FrameDecoder, data: bytes, cut: int) -> list[bytes]:
    """What FramedStream.receive_into does on TCP: feed ``cut`` bytes at a time until a
    header is known, copy what is buffered with peek_into, take the rest of the payload
    straight from the "socket" (``data``), then finish_frame."""
    out: list[bytes] = []
    pos = 0
    while True:
        length = decoder.next_length()
        if length is END_OF_STREAM:
            return out
        if length is NEED_DATA:
            chunk = data[pos : pos + cut]
            pos += len(chunk)
            decoder.receive_data(chunk)  # b"" at the end: the end of the stream
            continue
        buffer = bytearray(length)
        have = decoder.peek_into(buffer)
        assert decoder.next_length() == length  # peeking consumed nothing
        rest = length - have
        buffer[have:] = data[pos : pos + rest]
        pos += rest
        assert decoder.finish_frame() == rest
        out.append(bytes(buffer))


@settings(max_examples=200)
@given(
    fmt=plain_formats,
    payloads=st.lists(st.binary(max_size=300), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30),
)
def test_take_into_any_split_plain(
    fmt: FrameFormat, payloads: list[bytes], cuts: list[int]
) -> None:
    payloads = [p[: fmt.limit] for p in payloads]
    data = FrameEncoder(fmt).encode_many(payloads)
    assert take_all(FrameDecoder(fmt), split_at(data, cuts)) == payloads


@given(payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=6))
def test_take_into_split_at_every_single_point(payloads: list[bytes]) -> None:
    data = FrameEncoder().encode_many(payloads)
    for cut in range(len(data) + 1):
        assert take_all(FrameDecoder(), [data[:cut], data[cut:]]) == payloads
        # and everything between two cuts, byte by byte
        assert take_all(FrameDecoder(), [data[i : i + 1] for i in range(len(data))]) == payloads


@given(st.data())
def test_take_into_general_formats_any_split(data: st.DataObject) -> None:
    _, fmt, wire, frame = data.draw(general_formats.flatmap(lambda f: st.just(_netty(f))))
    stream = wire * 3
    for cut in range(len(stream) + 1):
        assert take_all(FrameDecoder(fmt), [stream[:cut], stream[cut:]]) == [frame] * 3
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=10))
    assert take_all(FrameDecoder(fmt), split_at(stream, cuts)) == [frame] * 3


def _netty(fmt: FrameFormat) -> tuple[str, FrameFormat, bytes, bytes]:
    return next(example for example in NETTY if example[1] is fmt)


@given(payloads=st.lists(st.binary(max_size=50), min_size=1, max_size=6))
def test_peek_and_finish_at_every_cut(payloads: list[bytes]) -> None:
    data = FrameEncoder().encode_many(payloads)
    for cut in range(1, len(data) + 1):
        assert direct_all(FrameDecoder(), data, cut) == payloads


@given(st.data())
def test_peek_and_finish_general_formats(data: st.DataObject) -> None:
    _, fmt, wire, frame = _netty(data.draw(general_formats))
    stream = wire * 2
    for cut in range(1, len(stream) + 1):
        assert direct_all(FrameDecoder(fmt), stream, cut) == [frame] * 2


@given(
    payloads=st.lists(st.binary(max_size=60), max_size=8),
    rng=st.randoms(use_true_random=False),
)
def test_take_into_next_frame_and_frames_interleave(payloads: list[bytes], rng: Random) -> None:
    dec = FrameDecoder()
    dec.receive_data(FrameEncoder().encode_many(payloads))
    dec.receive_data(b"")
    got: list[bytes] = []
    buffer = bytearray(64)
    while True:
        way = rng.randrange(3)
        if way == 0:
            n = dec.take_into(buffer)
            if n is END_OF_STREAM:
                break
            assert n is not NEED_DATA
            got.append(bytes(buffer[:n]))
        elif way == 1:
            frame = dec.next_frame()
            if frame is END_OF_STREAM:
                break
            assert isinstance(frame, bytes)
            got.append(frame)
        else:
            got.extend(dec.frames())
    assert got == payloads


def test_next_length_peeks_without_consuming() -> None:
    dec = FrameDecoder()
    assert dec.next_length() is NEED_DATA
    dec.receive_data(b"\0\0")
    assert dec.next_length() is NEED_DATA
    dec.receive_data(b"\0\x05he")
    assert dec.next_length() == 5
    assert dec.next_length() == 5
    assert dec.buffered == 6
    assert dec.next_frame() is NEED_DATA
    dec.receive_data(b"llo")
    assert dec.next_frame() == b"hello"
    assert dec.next_length() is NEED_DATA
    dec.receive_data(b"")
    assert dec.next_length() is END_OF_STREAM


def test_take_into_writes_only_the_payload_and_only_when_whole() -> None:
    dec = FrameDecoder()
    buffer = bytearray(b"." * 10)
    dec.receive_data(b"\0\0\0\x03ab")
    assert dec.take_into(buffer) is NEED_DATA
    assert buffer == b"." * 10  # nothing written before the frame is whole
    dec.receive_data(b"c\0\0\0\x00")
    assert dec.take_into(buffer) == 3
    assert buffer == b"abc" + b"." * 7
    assert dec.take_into(buffer) == 0  # an empty frame
    assert buffer == b"abc" + b"." * 7
    assert dec.buffered == 0


def test_buffer_too_small_as_soon_as_the_header_is_known_keeps_the_frame() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\0\0\0\x0ahel")  # 10 bytes declared, 3 arrived
    with pytest.raises(BufferTooSmall, match="10 bytes, but the buffer holds only 4") as info:
        dec.take_into(bytearray(4))
    assert (info.value.needed, info.value.size) == (10, 4)
    assert isinstance(info.value, ValueError)
    assert dec.buffered == 7  # nothing consumed
    dec.receive_data(b"lo worl")
    buffer = bytearray(10)
    assert dec.take_into(buffer) == 10
    assert buffer == b"hello worl"
    dec.receive_data(b"\0\0\0\x02hi")
    with pytest.raises(BufferTooSmall):
        dec.take_into(bytearray(1))
    assert dec.next_frame() == b"hi"  # or take it as bytes


def test_buffer_sizes_count_bytes_not_items() -> None:
    payload = bytes(range(12))
    dec = FrameDecoder()
    dec.receive_data(FrameEncoder().encode(payload) * 2)
    ints = array.array("i", [0, 0, 0])  # 3 items, 12 bytes
    assert dec.take_into(ints) == 12
    assert ints.tobytes() == payload
    wide = memoryview(array.array("q", [0, 0]))  # 2 items, 16 bytes
    assert dec.peek_into(wide) == 12
    assert wide.tobytes()[:12] == payload


@pytest.mark.parametrize("bad", [b"read-only", memoryview(b"ro"), "text", 42])
def test_a_buffer_that_is_not_writable_is_a_type_error_and_consumes_nothing(bad: object) -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\0\0\0\x01x")
    with pytest.raises(TypeError, match="writable"):
        dec.take_into(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="writable"):
        dec.peek_into(bad)  # type: ignore[arg-type]
    assert dec.next_frame() == b"x"


def test_a_non_contiguous_buffer_is_a_type_error() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\0\0\0\x01x")
    with pytest.raises(TypeError, match="contiguous"):
        dec.take_into(memoryview(bytearray(10))[::2])
    assert dec.next_frame() == b"x"


def test_the_buffer_is_not_held_after_the_call() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\0\0\0\x02hi\0\0\0\x09")
    buffer = bytearray(4)
    assert dec.take_into(buffer) == 2
    with pytest.raises(BufferTooSmall):
        dec.take_into(buffer)
    assert dec.peek_into(buffer) == 0
    buffer.extend(b"resizable: no view of it is left")  # BufferError if one were


def test_oversize_prefix_is_frame_too_large_and_terminal() -> None:
    dec = FrameDecoder(FrameFormat(max_frame_size=100))
    dec.receive_data(b"\0\0\0\x65")  # 101
    with pytest.raises(FrameTooLarge, match="101-byte frame"):
        dec.next_length()
    for call in (dec.next_length, lambda: dec.take_into(bytearray(200)), dec.finish_frame):
        with pytest.raises(FrameTooLarge):
            call()
    with pytest.raises(FrameTooLarge):
        dec.peek_into(bytearray(200))


def test_too_large_is_raised_before_too_small() -> None:
    # The limit is the peer's error, the buffer ours: the protocol error wins.
    dec = FrameDecoder(FrameFormat(max_frame_size=100))
    dec.receive_data(b"\0\0\x10\x00")
    with pytest.raises(FrameTooLarge):
        dec.take_into(bytearray(1))


def test_malformed_header_in_a_general_format() -> None:
    dec = FrameDecoder(FrameFormat(2, adjust=-5, strip=0))  # length counts a 5-byte header
    dec.receive_data(b"\x00\x01")
    with pytest.raises(MalformedFrame):
        dec.next_length()
    with pytest.raises(MalformedFrame):
        dec.take_into(bytearray(10))


@pytest.mark.parametrize(
    "data", [b"\0\0", b"\0\0\0\x05", b"\0\0\0\x05hel", b"\0\0\0\x01a\0\0\0\x05he"]
)
def test_eof_mid_frame_is_the_same_incomplete_frame_as_next_frame(data: bytes) -> None:
    def error(call: str) -> tuple[str, int, int]:
        dec = FrameDecoder()
        dec.receive_data(data)
        dec.receive_data(b"")
        buffer = bytearray(10)
        take = dec.next_frame if call == "next_frame" else lambda: dec.take_into(buffer)
        if data.startswith(b"\0\0\0\x01a"):
            assert take() in (b"a", 1)  # the whole frame before the broken one
        with pytest.raises(IncompleteFrame) as info:
            take()
        return str(info.value), info.value.expected, info.value.received

    assert error("take_into") == error("next_frame")


def test_discarded_oversized_frames_are_skipped_by_next_length() -> None:
    fmt = FrameFormat(2, strip=2, max_frame_size=3, oversize="discard")
    dec = FrameDecoder(fmt)
    dec.receive_data(b"\x00\x05hello\x00\x02ok")
    assert dec.next_length() == 2
    assert dec.skipped_frames == 1
    buffer = bytearray(2)
    assert dec.take_into(buffer) == 2
    assert buffer == b"ok"


def test_finish_frame_needs_a_header() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\0\0")
    with pytest.raises(LocalProtocolError, match="after next_length"):
        dec.finish_frame()
    assert dec.buffered == 2  # nothing consumed, and not an error state
    dec.receive_data(b"\0\x01x")
    assert dec.finish_frame() == 0
    assert dec.buffered == 0


def test_peek_into_copies_what_fits_and_what_is_buffered() -> None:
    dec = FrameDecoder()
    assert dec.peek_into(bytearray(4)) == 0  # no header yet
    dec.receive_data(b"\0\0\0\x08ab")
    dec.receive_data(b"cd")  # spans two chunks
    small = bytearray(3)
    assert dec.peek_into(small) == 3
    assert small == b"abc"
    big = bytearray(10)
    assert dec.peek_into(big) == 4
    assert big[:4] == b"abcd"
    assert dec.finish_frame() == 4  # 4 of the 8 payload bytes are the caller's to read
    assert dec.buffered == 0
    dec.receive_data(b"\0\0\0\x00")  # the next frame's header comes next
    assert dec.next_length() == 0


def test_a_format_that_strips_more_than_its_header() -> None:
    fmt = FrameFormat(2, strip=3)  # drops the length field and the payload's first byte
    wire = b"\x00\x04abcd" * 2
    for cut in range(len(wire) + 1):
        assert take_all(FrameDecoder(fmt), [wire[:cut], wire[cut:]]) == [b"bcd", b"bcd"]
    dec = FrameDecoder(fmt)
    dec.receive_data(b"\x00\x04")  # the header, not yet the stripped byte
    assert dec.next_length() == 3
    assert dec.peek_into(bytearray(3)) == 0
    with pytest.raises(LocalProtocolError, match="strips"):
        dec.finish_frame()
    dec.receive_data(b"ab")
    buffer = bytearray(3)
    assert dec.peek_into(buffer) == 1
    assert buffer[:1] == b"b"
    assert dec.finish_frame() == 2  # "cd" are the caller's to read
    assert dec.buffered == 0
