"""The sans-IO frame codec: bytes in, frames out, however TCP splits or merges them."""

from __future__ import annotations

from framekit import END_OF_STREAM, NEED_DATA, FrameDecoder, FrameEncoder

encoder = FrameEncoder()  # framekit's format: 4-byte unsigned big-endian length prefix
messages = [b"hello", b"", b"sticky packets", b"x" * 3000]
wire = b"".join(encoder.encode(m) for m in messages)  # what one side sends

# TCP may deliver those bytes in any pieces. Try every split into two reads: the
# decoder returns exactly the messages that were sent, each whole, every time.
# (Both pieces are non-empty: an empty read means end of stream, as with recv().)
for cut in range(1, len(wire)):
    decoder = FrameDecoder()
    received: list[bytes] = []
    for chunk in (wire[:cut], wire[cut:]):
        decoder.receive_data(chunk)  # only stores the bytes
        received += decoder.frames()  # every frame complete so far, maybe none
    decoder.receive_data(b"")  # b"" means the peer closed the stream
    assert received == messages, cut
    assert decoder.frames() == [] and decoder.at_eof  # clean end: nothing left over

# One byte at a time, with next_frame(): NEED_DATA until the last byte of a frame.
decoder = FrameDecoder()
frame = encoder.encode(b"hello")
for byte in frame[:-1]:
    decoder.receive_data(bytes([byte]))
    assert decoder.next_frame() is NEED_DATA
decoder.receive_data(frame[-1:])
assert decoder.next_frame() == b"hello"
decoder.receive_data(b"")
assert decoder.next_frame() is END_OF_STREAM
print("decoded", len(messages), "messages at all", len(wire) - 1, "split points")
