"""The exact bytes framekit puts on the wire, checked against the diagrams in the docs."""

from __future__ import annotations

import hashlib
import struct

from framekit import BodyChunk, EndOfMessage, FrameEncoder, Header, MessageDecoder, MessageEncoder

# A frame: 4-byte unsigned big-endian length, then the payload.
frame = FrameEncoder().encode(b"hello")
assert frame.hex(" ") == "00 00 00 05 68 65 6c 6c 6f"
assert frame == struct.pack("!I", 5) + b"hello"  # "!" = network (big-endian) order
assert FrameEncoder().encode(b"") == b"\x00\x00\x00\x00"  # an empty message is a frame too

# A message: a header frame holding a JSON object with "size", then "size" body bytes.
message = MessageEncoder().message({"name": "a.txt"}, b"hi!")
assert message == b'\x00\x00\x00\x19{"name":"a.txt","size":3}hi!'
assert len(b'{"name":"a.txt","size":3}') == 0x19  # 25 header bytes
assert message.hex(" ") == (
    "00 00 00 19  7b 22 6e 61 6d 65 22 3a 22 61 2e 74 78 74 22 2c 22 73 69 7a 65 22 3a 33 7d"
    "  68 69 21"
).replace("  ", " ")

# With checksum=True the header also carries the body's SHA-256.
checked = MessageEncoder().message({}, b"hi!", checksum=True)
digest = hashlib.sha256(b"hi!").hexdigest()
assert checked.endswith(f'{{"sha256":"{digest}","size":3}}hi!'.encode())

# Decoding gives a Header, the body in chunks as it arrives, then EndOfMessage.
decoder = MessageDecoder()
decoder.receive_data(checked)
header = decoder.next_event()
assert isinstance(header, Header) and header.size == 3 and header.sha256 == digest
assert decoder.next_event() == BodyChunk(b"hi!")
end = decoder.next_event()
assert isinstance(end, EndOfMessage) and end.sha256 == digest  # verified

# Unknown header keys are kept, so protocols can add fields freely.
decoder = MessageDecoder()
decoder.receive_data(MessageEncoder().message({"type": "put", "mode": 0o644}, b""))
header = decoder.next_event()
assert isinstance(header, Header)
assert header.fields == {"type": "put", "mode": 0o644, "size": 0}
print(frame.hex(" "))
