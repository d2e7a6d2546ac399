"""Limits and errors: what the decoders refuse, and when."""

from __future__ import annotations

from collections.abc import Callable

from framekit import (
    DEFAULT_MAX_FRAME_SIZE,
    NEED_DATA,
    BadHeader,
    ChecksumMismatch,
    EndOfMessage,
    FrameDecoder,
    FrameEncoder,
    FrameFormat,
    FramekitError,
    FrameTooLarge,
    Header,
    HeaderTooLarge,
    IncompleteFrame,
    MessageDecoder,
    MessageEncoder,
)


def raised(call: Callable[[], object]) -> Exception:
    """The exception that call() raises."""
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError(f"{call} did not raise")


# A hostile (or mis-framed) peer announces a 4 GiB frame. The decoder refuses as soon as
# the 4 prefix bytes are in: no payload byte is buffered, no memory is reserved.
decoder = FrameDecoder()
decoder.receive_data(FrameEncoder().encode(b"ok") + b"\xff\xff\xff\xff")
assert decoder.frames() == [b"ok"]  # frames before the bad prefix are still returned
error = raised(decoder.frames)
assert isinstance(error, FrameTooLarge)
assert (error.length, error.limit) == (0xFFFF_FFFF, DEFAULT_MAX_FRAME_SIZE)

# After a protocol error the decoder stays broken: there is no resynchronising on garbage.
assert raised(decoder.next_frame) is error

# The sender checks the same limit, before anything is written.
small = FrameFormat(max_frame_size=10)
error = raised(lambda: FrameEncoder(small).encode(b"x" * 11))
assert isinstance(error, FrameTooLarge) and (error.length, error.limit) == (11, 10)

# The stream ends in the middle of a frame: 4 + 5 bytes announced, 6 arrived.
decoder = FrameDecoder()
decoder.receive_data(b"\x00\x00\x00\x05he")
decoder.receive_data(b"")
error = raised(decoder.frames)
assert isinstance(error, IncompleteFrame) and (error.expected, error.received) == (9, 6)

# Message headers have their own, smaller limit (64 KiB by default).
decoder = MessageDecoder(max_header_size=16)
decoder.receive_data(FrameEncoder().prefix(100_000))  # just the header frame's prefix
assert isinstance(raised(decoder.next_event), HeaderTooLarge)

# A header must be a UTF-8 JSON object with a non-negative integer "size".
for bad in (b"not json", b"[1, 2]", b'{"name": "a.txt"}', b'{"size": -1}'):
    decoder = MessageDecoder()
    decoder.receive_data(FrameEncoder().encode(bad))
    assert isinstance(raised(decoder.next_event), BadHeader), bad

# A checksum mismatch is the one error the decoder survives: the framing is intact, so
# the next message decodes normally. The bad body must not be used.
encoder = MessageEncoder()
tampered = encoder.header({"sha256": "00" * 32}, size=3) + b"abc"
decoder = MessageDecoder()
decoder.receive_data(tampered + encoder.message({"n": 2}, b"xyz", checksum=True))
events = []
while True:
    try:
        event = decoder.next_event()
    except ChecksumMismatch as exc:
        events.append(f"mismatch: expected {exc.expected[:4]}..., got {exc.actual[:4]}...")
        continue
    if event is NEED_DATA:  # everything buffered has been decoded
        break
    if isinstance(event, Header):
        events.append("header")
    elif isinstance(event, EndOfMessage):
        events.append(f"end of message {event.header['n']}")
assert events == ["header", "mismatch: expected 0000..., got ba78...", "header", "end of message 2"]

# Every error above is a FramekitError, so one except clause can catch them all.
for error in (FrameTooLarge, IncompleteFrame, HeaderTooLarge, BadHeader, ChecksumMismatch):
    assert issubclass(error, FramekitError)
print("limits enforced")
