from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import framekit
from framekit import (
    END_OF_STREAM,
    NEED_DATA,
    FrameDecoder,
    FrameEncoder,
    FrameFormat,
    FrameTooLarge,
    IncompleteFrame,
)

from ..helpers import chunkings, decode_all, split_at

formats = st.builds(
    FrameFormat,
    width=st.sampled_from([1, 2, 4, 8]),
    byteorder=st.sampled_from(["big", "little"]),
    signed=st.booleans(),
)


@settings(max_examples=300)
@given(
    fmt=formats,
    payloads=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=30),
)
def test_roundtrip_any_split_any_format(
    fmt: FrameFormat, payloads: list[bytes], cuts: list[int]
) -> None:
    payloads = [p[: fmt.limit] for p in payloads]
    data = FrameEncoder(fmt).encode_many(payloads)
    assert decode_all(FrameDecoder(fmt), split_at(data, cuts)) == payloads


@given(payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=8))
def test_split_at_every_single_point(payloads: list[bytes]) -> None:
    data = FrameEncoder().encode_many(payloads)
    for cut in range(len(data) + 1):
        assert decode_all(FrameDecoder(), [data[:cut], data[cut:]]) == payloads


@given(payloads=st.lists(st.binary(max_size=60), max_size=10))
def test_next_frame_one_at_a_time(payloads: list[bytes]) -> None:
    data = FrameEncoder().encode_many(payloads)
    for chunks in chunkings(data):
        dec = FrameDecoder()
        got: list[bytes] = []
        for chunk in [*filter(None, chunks), b""]:
            dec.receive_data(chunk)
            while (frame := dec.next_frame()) not in (NEED_DATA, END_OF_STREAM):
                assert isinstance(frame, bytes)
                got.append(frame)
        assert got == payloads
        assert dec.next_frame() is END_OF_STREAM


@settings(max_examples=300)
@given(data=st.binary(max_size=200), fmt=formats)
def test_random_bytes_parse_or_raise_protocol_error(data: bytes, fmt: FrameFormat) -> None:
    # The h11 fuzz invariant: garbage gives frames or a ProtocolError, nothing else.
    dec = FrameDecoder(
        FrameFormat(
            width=fmt.width,
            byteorder=fmt.byteorder,
            signed=fmt.signed,
            max_frame_size=min(fmt.field_max, 100),
        )
    )
    try:
        decode_all(dec, [data])
    except framekit.ProtocolError:
        pass


def test_zero_length_frames() -> None:
    data = FrameEncoder().encode_many([b"", b"", b"x", b""])
    assert data == b"\0\0\0\0" * 2 + b"\0\0\0\x01x" + b"\0\0\0\0"
    for chunks in chunkings(data):
        assert decode_all(FrameDecoder(), chunks) == [b"", b"", b"x", b""]


def test_trailing_bytes_stay_buffered() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\0\0\0\x02hi\0\0\0\x05hel")
    assert dec.frames() == [b"hi"]
    assert dec.buffered == 7
    assert dec.frames() == []
    dec.receive_data(b"lo")
    assert dec.frames() == [b"hello"]
    assert dec.buffered == 0


def test_many_frames_per_feed() -> None:
    payloads = [bytes([i]) * i for i in range(100)]
    dec = FrameDecoder()
    dec.receive_data(FrameEncoder().encode_many(payloads))
    assert dec.frames() == payloads


def test_too_large_raised_on_prefix_before_payload_buffered() -> None:
    dec = FrameDecoder(FrameFormat(max_frame_size=1000))
    dec.receive_data(b"\x00\x00\x03\xe9")  # 1001: only the prefix has arrived
    with pytest.raises(FrameTooLarge, match="1001-byte frame, over max_frame_size") as info:
        dec.frames()
    assert (info.value.length, info.value.limit) == (1001, 1000)


def test_hostile_4gib_length_refused_at_once() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\xff\xff\xff\xff")
    with pytest.raises(FrameTooLarge, match="4294967295-byte frame"):
        dec.next_frame()


def test_negative_length_in_signed_format() -> None:
    dec = FrameDecoder(FrameFormat.tutorial())
    dec.receive_data(FrameFormat.tutorial().prefix_struct.pack(-5))
    with pytest.raises(FrameTooLarge, match="negative frame length"):
        dec.frames()


def test_good_frames_before_bad_prefix_are_returned_first() -> None:
    dec = FrameDecoder(FrameFormat(max_frame_size=10))
    dec.receive_data(b"\0\0\0\x01a\0\0\0\x01b\xff\xff\xff\xff")
    assert dec.frames() == [b"a", b"b"]
    with pytest.raises(FrameTooLarge):
        dec.frames()


def test_error_state_is_terminal() -> None:
    dec = FrameDecoder(FrameFormat(max_frame_size=10))
    dec.receive_data(b"\0\0\0\xff")
    with pytest.raises(FrameTooLarge):
        dec.frames()
    dec_more = dec  # feeding valid data afterwards must not resynchronise
    dec_more.receive_data(b"\0\0\0\x01a")
    for call in (dec.frames, dec.next_frame, lambda: dec.read_raw(10)):
        with pytest.raises(FrameTooLarge):
            call()


@pytest.mark.parametrize(
    ("data", "expected", "received", "what"),
    [
        (b"\0\0", 4, 2, "4-byte length prefix"),
        (b"\0\0\0\x0ahel", 14, 7, "4-byte length + 10-byte payload"),
        (b"\0\0\0\x0a", 14, 4, "4-byte length + 10-byte payload"),
    ],
)
def test_eof_mid_frame_is_incomplete(data: bytes, expected: int, received: int, what: str) -> None:
    for chunks in chunkings(data):
        dec = FrameDecoder()
        with pytest.raises(IncompleteFrame, match=f"expected {expected} bytes") as info:
            decode_all(dec, chunks)
        assert (info.value.expected, info.value.received) == (expected, received)
        assert what in str(info.value)
        with pytest.raises(IncompleteFrame):
            dec.next_frame()


def test_eof_mid_frame_after_good_frames_returns_them_first() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\0\0\0\x01a\0\0")
    dec.receive_data(b"")
    assert dec.frames() == [b"a"]
    with pytest.raises(IncompleteFrame):
        dec.frames()


def test_clean_eof() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"\0\0\0\x01a")
    dec.receive_data(b"")
    assert dec.at_eof
    assert dec.frames() == [b"a"]
    assert dec.frames() == []
    assert dec.next_frame() is END_OF_STREAM


def test_data_after_eof_is_a_local_error() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"")
    with pytest.raises(framekit.LocalProtocolError, match="after the end of the stream"):
        dec.receive_data(b"x")


def test_accepts_bytearray_and_memoryview_without_aliasing() -> None:
    dec = FrameDecoder()
    buf = bytearray(b"\0\0\0\x03ab")
    dec.receive_data(buf)
    buf[:] = b"zzzzzz"  # the caller reusing its buffer must not corrupt ours
    dec.receive_data(memoryview(b"c"))
    assert dec.frames() == [b"abc"]


def test_large_frame_in_small_chunks_is_linear() -> None:
    # A 4 MiB payload fed in 1 KiB chunks: each feed is O(1); the payload is joined once.
    payload = bytes(range(256)) * (4 * 4096)
    data = FrameEncoder().encode(payload)
    dec = FrameDecoder()
    frames: list[bytes] = []
    for i in range(0, len(data), 1024):
        dec.receive_data(data[i : i + 1024])
        frames += dec.frames()
        if not frames:
            assert len(dec._chunks) <= i // 1024 + 1  # chunks queued, never re-joined
    assert frames == [payload]


def test_read_raw_returns_whole_chunk_without_copy() -> None:
    dec = FrameDecoder()
    chunk = b"\0\0\0\x01a" + b"body-bytes"
    dec.receive_data(chunk)
    assert dec.next_frame() == b"a"
    assert dec.read_raw(4) == b"body"
    assert dec.read_raw(100) == b"-bytes"
    assert dec.read_raw(100) == b""
    later = b"x" * 50
    dec.receive_data(later)
    assert dec.read_raw(1000) is later


class TestEncoder:
    def test_encode_too_large(self) -> None:
        enc = FrameEncoder(FrameFormat(max_frame_size=3))
        with pytest.raises(FrameTooLarge, match="cannot send a 4-byte frame") as info:
            enc.encode(b"abcd")
        assert (info.value.length, info.value.limit) == (4, 3)

    def test_encode_many_sends_nothing_if_one_is_too_large(self) -> None:
        enc = FrameEncoder(FrameFormat(max_frame_size=3))
        with pytest.raises(FrameTooLarge):
            enc.encode_many([b"a", b"abcd"])

    def test_encode_into(self) -> None:
        buf = bytearray()
        enc = FrameEncoder(FrameFormat(width=2, byteorder="little"))
        enc.encode_into(buf, b"ab")
        enc.encode_into(buf, memoryview(b"c"))
        assert bytes(buf) == b"\x02\x00ab\x01\x00c"

    def test_prefix_range_checked(self) -> None:
        enc = FrameEncoder(FrameFormat(width=1))
        assert enc.prefix(255) == b"\xff"
        with pytest.raises(FrameTooLarge):
            enc.prefix(256)
        with pytest.raises(FrameTooLarge):
            enc.prefix(-1)


def test_sentinels_repr() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    assert repr(END_OF_STREAM) == "END_OF_STREAM"


def test_every_encoder_path_counts_bytes_not_items() -> None:
    import array

    items = array.array("q", [1, 2, 3])  # 3 items, 24 bytes
    view = memoryview(items)
    encoder = FrameEncoder()
    expected = (24).to_bytes(4, "big") + items.tobytes()
    assert encoder.encode(view) == expected
    assert encoder.encode(items) == expected  # any buffer, not only memoryview
    assert encoder.encode_many([view, b"x"]) == expected + b"\x00\x00\x00\x01x"
    buffer = bytearray()
    encoder.encode_into(buffer, view)
    assert bytes(buffer) == expected
    message = framekit.MessageEncoder().message({"t": 1}, view)
    assert message.endswith(items.tobytes()) and b'"size":24' in message


@pytest.mark.parametrize("bad", ["text", 42, memoryview(b"abcdef")[::2]])
def test_encoders_refuse_what_is_not_a_flat_buffer(bad: object) -> None:
    encoder = FrameEncoder()
    with pytest.raises(TypeError, match=r"bytes, bytearray or memoryview|contiguous"):
        encoder.encode(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encoder.encode_many([b"ok", bad])  # type: ignore[list-item]
