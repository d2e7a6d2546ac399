from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import framekit
from framekit import (
    NEED_DATA,
    BadHeader,
    BodyChunk,
    ChecksumMismatch,
    EndOfMessage,
    FrameEncoder,
    FrameFormat,
    FrameTooLarge,
    Header,
    HeaderTooLarge,
    IncompleteFrame,
    LocalProtocolError,
    MessageDecoder,
    MessageEncoder,
)

from ..helpers import chunkings, message_events, split_at

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
extra_fields = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k not in ("size", "sha256")), json_values, max_size=4
)


@settings(max_examples=200)
@given(
    messages=st.lists(st.tuples(extra_fields, st.binary(max_size=200), st.booleans()), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
    width=st.sampled_from([2, 4, 8]),
    byteorder=st.sampled_from(["big", "little"]),
)
def test_messages_roundtrip_any_split(
    messages: list[tuple[dict[str, object], bytes, bool]],
    cuts: list[int],
    width: int,
    byteorder: str,
) -> None:
    fmt = FrameFormat(width=width, byteorder=byteorder)  # type: ignore[arg-type]
    enc = MessageEncoder(fmt)
    data = b"".join(enc.message(f, body, checksum=c) for f, body, c in messages)
    got = message_events(MessageDecoder(fmt), split_at(data, cuts))
    assert [body for _, body in got] == [body for _, body, _ in messages]
    for (fields, body, checked), (got_fields, _) in zip(messages, got, strict=True):
        assert got_fields["size"] == len(body)
        assert {k: v for k, v in got_fields.items() if k not in ("size", "sha256")} == fields
        assert ("sha256" in got_fields) == checked


def test_event_sequence_and_unknown_keys_kept() -> None:
    data = MessageEncoder().message({"filename": "a.txt", "x": [1, 2]}, b"hello", checksum=True)
    dec = MessageDecoder()
    dec.receive_data(data)
    header = dec.next_event()
    assert isinstance(header, Header)
    assert header.fields["filename"] == "a.txt" and header["x"] == [1, 2]
    assert header.size == 5 and header.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert dec.in_body and dec.body_remaining == 5
    assert dec.next_event() == BodyChunk(b"hello")
    end = dec.next_event()
    assert isinstance(end, EndOfMessage) and end.sha256 == header.sha256
    assert dec.next_event() is NEED_DATA


def test_body_streams_in_bounded_pieces() -> None:
    body = b"x" * 100_000
    data = MessageEncoder().message({}, body)
    dec = MessageDecoder()
    pieces = []
    for i in range(0, len(data), 4096):
        dec.receive_data(data[i : i + 4096])
        while (event := dec.next_event()) is not NEED_DATA:
            if isinstance(event, BodyChunk):
                assert len(event.data) <= 4096
                pieces.append(event.data)
    assert b"".join(pieces) == body


def _header_frame(raw: bytes) -> bytes:
    return FrameEncoder().encode(raw)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'{"name": "x"}', "has no 'size' key"),
        (b'{"size": -1}', "non-negative integer, not -1"),
        (b'{"size": "10"}', "non-negative integer, not '10'"),
        (b'{"size": true}', "non-negative integer, not True"),
        (b'{"size": 1.5}', "non-negative integer, not 1.5"),
        (b'{"size": NaN}', "not UTF-8 JSON"),
        (b'{"size": 1, "sha256": "abc"}', "'sha256' must be 64 hex digits"),
        (b'{"size": 1, "sha256": 5}', "'sha256' must be 64 hex digits"),
    ],
)
def test_bad_headers(raw: bytes, match: str) -> None:
    for chunks in chunkings(_header_frame(raw)):
        dec = MessageDecoder()
        with pytest.raises(BadHeader, match=match):
            message_events(dec, chunks)
        with pytest.raises(BadHeader):  # terminal
            dec.next_event()


def test_deeply_nested_header_is_bad_not_a_crash() -> None:
    dec = MessageDecoder(max_header_size=1_000_000)
    dec.receive_data(_header_frame(b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(BadHeader):
        dec.next_event()


def test_header_too_large_refused_on_prefix() -> None:
    dec = MessageDecoder(max_header_size=100)
    dec.receive_data(b"\x00\x00\x00\x65")  # 101, nothing else has arrived
    with pytest.raises(HeaderTooLarge, match="101-byte message header, over max_header_size"):
        dec.next_event()
    with pytest.raises(HeaderTooLarge):
        dec.next_event()


def test_max_body_size() -> None:
    dec = MessageDecoder(max_body_size=10)
    dec.receive_data(MessageEncoder().header({}, size=11))
    with pytest.raises(FrameTooLarge, match="body of 11 bytes is over max_body_size"):
        dec.next_event()


def test_checksum_mismatch_is_reported_and_stream_continues() -> None:
    enc = MessageEncoder()
    bad = enc.header({"sha256": hashlib.sha256(b"other").hexdigest()}, size=5) + b"hello"
    dec = MessageDecoder()
    dec.receive_data(bad + enc.message({"n": 2}, b"ok"))
    assert isinstance(dec.next_event(), Header)
    assert dec.next_event() == BodyChunk(b"hello")
    with pytest.raises(ChecksumMismatch, match="body was corrupted") as info:
        dec.next_event()
    assert info.value.actual == hashlib.sha256(b"hello").hexdigest()
    nxt = dec.next_event()
    assert isinstance(nxt, Header) and nxt["n"] == 2


def test_uppercase_sha256_accepted() -> None:
    digest = hashlib.sha256(b"x").hexdigest().upper()
    data = MessageEncoder().header({"sha256": digest}, size=1) + b"x"
    assert message_events(MessageDecoder(), [data])[0][1] == b"x"


@pytest.mark.parametrize(
    ("cut", "expected", "received", "match"),
    [
        (2, 4, 2, "middle of a frame"),  # inside the header's length prefix
        (10, 15, 10, "middle of a frame"),  # inside the header JSON ({"size":10} + prefix)
        (20, 10, 5, "after 5 of 10 bytes"),  # inside the body
    ],
)
def test_eof_in_body_or_header_is_incomplete(
    cut: int, expected: int, received: int, match: str
) -> None:
    data = MessageEncoder().message({}, b"0123456789")
    assert len(data) == 25
    with pytest.raises(IncompleteFrame, match=match) as info:
        message_events(MessageDecoder(), [data[:cut]])
    assert (info.value.expected, info.value.received) == (expected, received)


def test_clean_eof_between_messages() -> None:
    dec = MessageDecoder()
    dec.receive_data(MessageEncoder().message({}, b"a"))
    dec.receive_data(b"")
    events = [dec.next_event() for _ in range(4)]
    assert events[-1] is framekit.END_OF_STREAM
    assert dec.at_eof


class TestEncoder:
    def test_header_needs_size(self) -> None:
        with pytest.raises(LocalProtocolError, match="no 'size' key"):
            MessageEncoder().header({"a": 1})

    def test_header_not_serialisable(self) -> None:
        with pytest.raises(LocalProtocolError, match="not JSON-serialisable"):
            MessageEncoder().header({"a": object()}, size=0)
        with pytest.raises(LocalProtocolError, match="not JSON-serialisable"):
            MessageEncoder().header({"a": float("nan")}, size=0)

    def test_header_too_large(self) -> None:
        with pytest.raises(HeaderTooLarge, match="over max_header_size"):
            MessageEncoder(max_header_size=50).header({"pad": "x" * 100}, size=0)

    def test_header_is_compact_utf8_json(self) -> None:
        frame = MessageEncoder().header({"name": "粘包"}, size=3)
        assert json.loads(frame[4:]) == {"name": "粘包", "size": 3}
        assert "粘包".encode() in frame


def test_header_limit_is_the_same_on_both_sides() -> None:
    # The frame limit of the format does not apply to headers; max_header_size does.
    fmt = FrameFormat(max_frame_size=100)
    frame = MessageEncoder(fmt).header({"pad": "p" * 200}, size=0)
    dec = MessageDecoder(fmt)
    dec.receive_data(frame)
    assert isinstance(dec.next_event(), Header)
    with pytest.raises(HeaderTooLarge):
        MessageEncoder(fmt, max_header_size=100).header({"pad": "p" * 200}, size=0)
