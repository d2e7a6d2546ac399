"""Step 5: why struct.pack("i", n) is a trap, and what "!I" fixes.

The tutorials write the length with struct.pack("i", n). Without a prefix character,
struct uses the *native* mode of the machine running the code: its byte order, its C
int size and its alignment. And "i" is *signed*. Each of those is shown below.

Run it: python docs/tutorial/step5_struct_i_trap.py
"""

from __future__ import annotations

import socket
import struct
import sys

# 1. Native byte order. On x86 and ARM (little-endian) 5 is 05 00 00 00; on a big-endian
#    machine (s390x, SPARC, some POWER and MIPS) it is 00 00 00 05. Network byte order
#    ("!") is big-endian on every machine.
native, network = struct.pack("i", 5), struct.pack("!I", 5)
assert native == (5).to_bytes(4, sys.byteorder)
assert network == b"\x00\x00\x00\x05"
print(f"on this {sys.byteorder}-endian machine 'i' packs 5 as {native.hex(' ')}")
print(f"'!I' packs 5 as {network.hex(' ')} everywhere")
# A big-endian peer reading little-endian bytes (or the reverse) sees another number.
(misread,) = struct.unpack(">i", struct.pack("<i", 5))
assert misread == 83_886_080
print(f"05 00 00 00 read as big-endian: {misread:,} (it waits for 80 MB)")

# 2. Native sizes and alignment. Only "<", ">", "=" and "!" promise standard sizes and
#    no padding. In native mode a char followed by an int is padded to align the int.
assert struct.calcsize("!ci") == 5
print(f"calcsize('ci') is {struct.calcsize('ci')} here, calcsize('!ci') is 5")

# 3. Signed. A corrupted (or hostile) prefix can decode as a negative length.
(length,) = struct.unpack("i", b"\xff\xff\xff\xff")
assert length == -1


class Wire:
    """Bytes that arrive on a socket, for the tutorials' reading code below."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, n: int) -> bytes:
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def tutorial_receive(conn: Wire) -> bytes:
    """The tutorials' client, as written: header, then loop while recv_size < total_size."""
    total_size = struct.unpack("i", conn.recv(4))[0]
    recv_size, res = 0, b""
    while recv_size < total_size:
        data = conn.recv(1024)
        res += data
        recv_size += len(data)
    return res


# The prefix of "hello" arrives corrupted as ff ff ff ff. The loop reads nothing, and the
# body is then taken for the next prefix: "hell" becomes a length of 1.8 billion.
wire = Wire(b"\xff\xff\xff\xff" + b"hello")
assert tutorial_receive(wire) == b""
(next_length,) = struct.unpack("i", wire.data[:4])
print(f"after a length of -1, the next 'length' is {wire.data[:4]!r} = {next_length:,}")

# "!I" cannot even express a negative number, and a receiver that checks the length
# against a limit (step 4) refuses ff ff ff ff = 4,294,967,295 before allocating anything.
try:
    struct.pack("!I", -1)
except struct.error:
    pass
else:
    raise AssertionError("'!I' must refuse a negative length")
assert struct.unpack("!I", b"\xff\xff\xff\xff") == (4_294_967_295,)

# 4. A 2 GiB cap: a signed 32-bit length cannot describe 2 GiB or more.
try:
    struct.pack("i", 2**31)
except struct.error as exc:
    print(f"struct.pack('i', 2**31): {exc}")
else:
    raise AssertionError("'i' holds at most 2**31 - 1")
assert struct.pack("!I", 2**31) == b"\x80\x00\x00\x00"

# 5. Short reads. conn.recv(4) returns *up to* 4 bytes. If only 2 have arrived, the
#    tutorials' struct.unpack("i", conn.recv(4)) fails.
with socket.create_server(("127.0.0.1", 0)) as listener:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
with client, server:
    client.sendall(struct.pack("!I", 5)[:2])  # the first half of a prefix
    short = server.recv(4)
    assert len(short) == 2
    try:
        struct.unpack("i", short)
    except struct.error as exc:
        print(f"struct.unpack('i', recv(4)) after 2 bytes: {exc}")
    else:
        raise AssertionError("2 bytes cannot be unpacked as a 4-byte int")
