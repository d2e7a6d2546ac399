from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from trio.testing import memory_stream_pair

import framekit
from framekit import (
    BadHeader,
    ChecksumMismatch,
    FrameTooLarge,
    IncompleteFrame,
    LocalProtocolError,
    Message,
    MessageEncoder,
    MessageStream,
)


def pair() -> tuple[MessageStream, MessageStream]:
    a, b = memory_stream_pair()
    return MessageStream(a), MessageStream(b)


async def test_whole_messages_roundtrip_and_channel_interface() -> None:
    left, right = pair()
    await left.send_message({"type": "hello", "n": 1}, b"body")
    await left.send(Message.create({"type": "second"}, b"xyz"))
    await left.send_message({"type": "empty"})
    await left.aclose()
    got = [m async for m in right]
    assert [(m.header["type"], m.body) for m in got] == [
        ("hello", b"body"),
        ("second", b"xyz"),
        ("empty", b""),
    ]
    assert got[0].header.size == 4 and got[0].header["n"] == 1


async def test_checksum_sent_and_verified() -> None:
    left, right = pair()
    await left.send_message({}, b"data", checksum=True)
    msg = await right.receive_message()
    assert msg.header.sha256 == hashlib.sha256(b"data").hexdigest()


async def test_checksum_mismatch_raises_then_stream_continues() -> None:
    raw, other = memory_stream_pair()
    right = MessageStream(other)
    enc = MessageEncoder()
    wrong = hashlib.sha256(b"nope").hexdigest()
    await raw.send_all(enc.header({"sha256": wrong}, size=4) + b"data" + enc.message({}, b"ok"))
    with pytest.raises(ChecksumMismatch):
        await right.receive_message()
    assert (await right.receive_message()).body == b"ok"


async def test_streamed_body_from_async_iterable() -> None:
    left, right = pair()
    progress: list[tuple[int, int]] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 1000

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: left.send_message(
                {"name": "f"}, chunks(), size=5000, progress=lambda d, t: progress.append((d, t))
            )
        )
        incoming = await right.receive_message_stream()
        assert incoming.size == 5000 and incoming.header["name"] == "f"
        body = b"".join([c async for c in incoming])
    assert body == b"".join(bytes([i]) * 1000 for i in range(5))
    assert incoming.received == 5000
    assert progress[-1] == (5000, 5000) and len(progress) == 5


@pytest.mark.parametrize(
    ("declared", "match"), [(10, "more than its declared"), (9000, "ended after")]
)
async def test_streamed_body_of_wrong_length_breaks_stream(declared: int, match: str) -> None:
    left, _ = pair()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 100

    with pytest.raises(LocalProtocolError, match=match):
        await left.send_message({}, chunks(), size=declared)
    with pytest.raises(trio.BrokenResourceError):
        await left.send_message({}, b"")


async def test_streamed_body_needs_size_and_no_checksum() -> None:
    left, _ = pair()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"x"

    with pytest.raises(LocalProtocolError, match="needs its length"):
        await left.send_message({}, chunks())
    with pytest.raises(LocalProtocolError, match="checksum=True needs the whole body"):
        await left.send_message({}, chunks(), size=1, checksum=True)


async def test_send_file_and_stream_to_memory(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    data = bytes(range(256)) * 4000  # ~1 MB, several file chunks
    src.write_bytes(data)
    left, right = pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.send_file, {"filename": "src.bin"}, src)
        incoming = await right.receive_message_stream()
        assert incoming.header.sha256 == hashlib.sha256(data).hexdigest()
        assert await incoming.read_all(max_size=len(data)) == data
    assert incoming.sha256 == hashlib.sha256(data).hexdigest()


async def test_read_all_cap_and_receive_message_cap() -> None:
    left, right = pair()
    await left.send_message({}, b"x" * 100)
    incoming = await right.receive_message_stream()
    with pytest.raises(FrameTooLarge, match="over max_size"):
        await incoming.read_all(max_size=10)
    await left.send_message({"n": 2}, b"y" * 100)
    with pytest.raises(FrameTooLarge, match="over max_body_size"):
        await right.receive_message(max_body_size=50)  # the unread body above is skipped first
    with pytest.raises(FrameTooLarge):  # the stream is now unusable, by design
        await right.receive_message()


async def test_unread_body_is_skipped_by_next_receive() -> None:
    left, right = pair()
    await left.send_message({"n": 1}, b"a" * 1000)
    await left.send_message({"n": 2}, b"b")
    first = await right.receive_message_stream()
    second = await right.receive_message()
    assert second.header["n"] == 2 and second.body == b"b"
    assert [c async for c in first] == []  # its body was discarded


async def test_discard_verifies_checksum() -> None:
    raw, other = memory_stream_pair()
    right = MessageStream(other)
    bad = MessageEncoder().header({"sha256": "0" * 64}, size=3) + b"abc"
    await raw.send_all(bad)
    incoming = await right.receive_message_stream()
    with pytest.raises(ChecksumMismatch):
        await incoming.discard()


async def test_cancelled_receive_message_resumes() -> None:
    raw, other = memory_stream_pair()
    right = MessageStream(other, receive_size=3)
    data = MessageEncoder().message({"k": "v"}, b"0123456789")
    await raw.send_all(data[:20])
    with trio.move_on_after(0.01):
        await right.receive_message()  # header + part of the body arrive, then cancelled
    await raw.send_all(data[20:])
    msg = await right.receive_message()
    assert msg.header["k"] == "v" and msg.body == b"0123456789"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\0\0\0\x03abc", BadHeader),
        (MessageEncoder().header({}, size=10) + b"short", IncompleteFrame),
    ],
)
async def test_bad_input_errors(data: bytes, error: type[Exception]) -> None:
    raw, other = memory_stream_pair()
    right = MessageStream(other)
    await raw.send_all(data)
    await raw.aclose()
    with pytest.raises(error):
        await right.receive_message()


async def test_busy_and_closed() -> None:
    left, right = pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(right.receive_message)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await right.receive_message()
        nursery.cancel_scope.cancel()
    await left.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await left.send_message({}, b"")
    with pytest.raises(trio.ClosedResourceError):
        await left.receive_message()


async def test_big_body_sent_apart_from_header() -> None:
    left, right = pair()
    body = b"z" * 300_000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.send_message, {}, body)
        msg = await right.receive_message()
    assert msg.body == body


def test_receive_size_validated() -> None:
    _, b = memory_stream_pair()
    with pytest.raises(ValueError, match="receive_size"):
        MessageStream(b, receive_size=0)


async def test_checksum_mismatch_while_streaming_then_next_message() -> None:
    raw, other = memory_stream_pair()
    right = MessageStream(other)
    enc = MessageEncoder()
    await raw.send_all(enc.header({"sha256": "0" * 64}, size=3) + b"abc" + enc.message({}, b"ok"))
    incoming = await right.receive_message_stream()
    with pytest.raises(ChecksumMismatch):
        await incoming.read_all()
    nxt = await right.receive_message_stream()
    assert await nxt.read_all() == b"ok"


async def test_read_all_cap_counts_only_the_unread_rest() -> None:
    raw, other = memory_stream_pair()
    right = MessageStream(other, receive_size=60)
    await raw.send_all(MessageEncoder().message({}, b"x" * 100))
    incoming = await right.receive_message_stream()
    first = await anext(incoming)
    rest = await incoming.read_all(max_size=100 - len(first))
    assert first + rest == b"x" * 100


async def _received_after_failure(
    fail: Callable[[MessageStream], Awaitable[None]], error: type[BaseException]
) -> list[Message]:
    """Fail a send part-way, try another message, close; what does the peer read?"""
    left, right = pair()
    with pytest.raises(error):
        await fail(left)
    with pytest.raises(trio.BrokenResourceError, match="failed or was cancelled part-way"):
        await left.send_message({"type": "next"}, b"must never be read as a body" * 10)
    await left.aclose()
    got: list[Message] = []

    async def receive_all() -> None:
        while True:
            got.append(await right.receive_message())

    with pytest.raises(framekit.IncompleteFrame):  # the cut-off body, and nothing after it
        await receive_all()
    return got


async def test_body_iterator_failing_part_way_breaks_the_stream() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"first ten."
        raise RuntimeError("the source failed")

    async def fail(stream: MessageStream) -> None:
        await stream.send_message({"type": "file"}, body(), size=100)

    assert await _received_after_failure(fail, RuntimeError) == []


async def test_progress_callback_failing_part_way_breaks_the_stream() -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"0123456789"

    def progress(done: int, total: int) -> None:
        if done >= 30:
            raise ValueError("the progress display failed")

    async def fail(stream: MessageStream) -> None:
        await stream.send_message({"type": "file"}, body(), size=100, progress=progress)

    assert await _received_after_failure(fail, ValueError) == []


async def test_send_file_that_cannot_be_opened_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Too many open files" after the header was sent once put an error message inside
    # a promised file body. The file is now opened before anything is sent.
    path = tmp_path / "f"
    path.write_bytes(b"data")

    async def no_descriptors(*args: object, **kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(trio, "open_file", no_descriptors)
    left, right = pair()
    with pytest.raises(OSError, match="Too many open files"):
        await left.send_file({"type": "file"}, path)
    await left.send_message({"type": "error"}, b"")
    message = await right.receive_message()
    assert message.header["type"] == "error"
