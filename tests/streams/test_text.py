"""TextChannel: lines as strings, bad bytes named precisely, the stream going on."""

from __future__ import annotations

import pytest
from trio.testing import memory_stream_pair

from framekit import FramedStream, InvalidText, TextChannel, parse_framing


def pair(encoding: str = "utf-8", errors: str = "strict") -> tuple[TextChannel, TextChannel]:
    a, b = memory_stream_pair()
    lines = parse_framing("lines")
    return (
        TextChannel(FramedStream(a, format=lines), encoding=encoding, errors=errors),
        TextChannel(FramedStream(b, format=lines), encoding=encoding, errors=errors),
    )


async def test_strings_round_trip_including_odd_unicode() -> None:
    sender, receiver = pair()
    for text in ["hello", "", "粘包", "\u202eevil", "e\u0301", "🧵" * 10]:
        await sender.send(text)
        assert await receiver.receive() == text


async def test_bad_bytes_name_their_offset_and_the_next_frame_still_arrives() -> None:
    a, b = memory_stream_pair()
    receiver = TextChannel(FramedStream(b, format=parse_framing("lines")))
    await a.send_all(b"ok\nab\xff\xfecd\nafter\n")
    assert await receiver.receive() == "ok"
    with pytest.raises(
        InvalidText, match=r"not valid utf-8: invalid start byte at byte 2 \(ff fe"
    ) as info:
        await receiver.receive()
    assert (info.value.position, info.value.frame, info.value.terminal) == (
        2,
        b"ab\xff\xfecd",
        False,
    )
    assert await receiver.receive() == "after"


async def test_a_named_encoding_and_an_error_handler() -> None:
    sender, receiver = pair("gbk")  # the tutorials decode their output as gbk
    await sender.send("中文")
    assert await receiver.receive() == "中文"
    a, b = memory_stream_pair()
    lenient = TextChannel(FramedStream(b, format=parse_framing("lines")), errors="replace")
    await a.send_all(b"a\xffb\n")
    assert await lenient.receive() == "a\ufffdb"


async def test_sending_bytes_is_a_clear_type_error() -> None:
    sender, _ = pair()
    with pytest.raises(TypeError, match="sends str, not bytes"):
        await sender.send(b"x")  # type: ignore[arg-type]


def test_unknown_encodings_fail_at_construction() -> None:
    a, _ = memory_stream_pair()
    with pytest.raises(LookupError):
        TextChannel(FramedStream(a), encoding="no-such-codec")
    with pytest.raises(LookupError):
        TextChannel(FramedStream(a), errors="no-such-handler")
