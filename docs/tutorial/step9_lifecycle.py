"""Step 9: a connection's life, measured: the handshake, the close, TIME_WAIT.

The fifth tutorial explains the three-way handshake and the four-way close, and why the
side that closes first waits in TIME_WAIT. That wait is why a restarted server can fail
with "Address already in use" unless it sets SO_REUSEADDR. This step watches all of it
on loopback. The TCP states come from /proc/net/tcp, the kernel's table of TCP sockets,
which only Linux has. Elsewhere the step says so and shows only what it can.

Run it: python docs/tutorial/step9_lifecycle.py
"""

from __future__ import annotations

import errno
import os
import socket
import statistics
import sys
import time

LINUX = sys.platform.startswith("linux")
#: The states /proc/net/tcp shows here, by number (include/net/tcp_states.h).
STATES = {1: "ESTABLISHED", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 8: "CLOSE_WAIT"}
Address = tuple[str, int]


def proc_address(address: Address) -> str:
    """An address as /proc/net/tcp writes it: 127.0.0.1 port 8080 is 0100007F:1F90."""
    host, port = address
    return f"{int.from_bytes(socket.inet_aton(host), sys.byteorder):08X}:{port:04X}"


def tcp_state(local: Address, remote: Address) -> tuple[str, float]:
    """The kernel's state for the socket local -> remote, and the seconds left on its
    timer. A socket the kernel no longer lists is CLOSED."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:  # the first line is a header
            fields = line.split()
            if fields[1:3] == [proc_address(local), proc_address(remote)]:
                state = int(fields[3], 16)
                ticks = int(fields[5].partition(":")[2], 16)
                return STATES.get(state, str(state)), ticks / os.sysconf("SC_CLK_TCK")
    return "CLOSED", 0.0


def connected_pair(reuseaddr: bool) -> tuple[socket.socket, socket.socket]:
    """A loopback connection (client end, server end); the listener is closed."""
    with socket.socket() as listener:
        if reuseaddr:  # as the tutorials' server: "就是它,在bind前加"
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    return client, server


def handshake() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        times = []
        for i in range(20):
            with socket.socket() as client:
                client.settimeout(5)
                start = time.perf_counter()
                client.connect(listener.getsockname())  # SYN ->, <- SYN-ACK, ACK ->
                times.append((time.perf_counter() - start) * 1e6)
                if i == 0 and LINUX:  # the server program has not called accept() yet
                    ends = client.getsockname(), listener.getsockname()
                    assert tcp_state(*ends)[0] == "ESTABLISHED"
                    assert tcp_state(*reversed(ends))[0] == "ESTABLISHED"
                server, _ = listener.accept()  # takes a finished connection off the queue
                server.close()
    print(f"connect() returned in {statistics.median(times):.0f} us (median of 20)")
    if LINUX:
        print("before accept(), the kernel listed both ends as ESTABLISHED")


def close_in_order(first: str, reuseaddr: bool = True, show: bool = True) -> Address:
    """Close a connection from `first`'s side, then from the other; watch both ends.
    Returns the server's address: the port a restarted server would bind again."""
    client, server = connected_pair(reuseaddr)
    second = "server" if first == "client" else "client"
    ends = {"client": client, "server": server}
    addresses: dict[str, Address] = {role: end.getsockname() for role, end in ends.items()}

    def states(done: str) -> dict[str, tuple[str, float]]:
        """Both ends' states, read again until no end is in state `done` (a close is a
        few segments, and the kernel may delay an ACK by a few ms)."""
        deadline = time.monotonic() + 5
        while True:
            now = {
                first: tcp_state(addresses[first], addresses[second]),
                second: tcp_state(addresses[second], addresses[first]),
            }
            if done not in {now[first][0], now[second][0]} or time.monotonic() > deadline:
                return now
            time.sleep(0.002)

    ends[first].close()  # FIN ->, <- ACK
    assert ends[second].recv(1024) == b""  # the other side reads the end of the stream
    half = states(done="FIN_WAIT1") if LINUX else {}
    ends[second].close()  # <- FIN, ACK ->
    if not LINUX:
        if show:
            print(f"the {first} closed first: TCP states not observable on this OS")
        time.sleep(0.05)  # let the last ACK land before the next step
        return addresses["server"]
    after = states(done="CLOSE_WAIT")
    assert half[first][0] == "FIN_WAIT2" and half[second][0] == "CLOSE_WAIT"
    assert after[first][0] == "TIME_WAIT" and after[second][0] == "CLOSED"
    if show:
        print(
            f"the {first} closed first: {first} {half[first][0]}, {second} {half[second][0]}; "
            f"both closed: {first} TIME_WAIT ({after[first][1]:.0f} s left), {second} CLOSED"
        )
    return addresses["server"]


def bind_again(address: Address, reuseaddr: bool) -> str:
    """bind() and listen() on `address` again, then close: what happened."""
    with socket.socket() as again:
        if reuseaddr:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            again.bind(address)
            again.listen()
        except OSError as exc:
            return f"{errno.errorcode.get(exc.errno or 0, exc.errno)} ({exc.strerror})"
    return "bound and listening"


def address_in_use() -> None:
    server = close_in_order("server")  # the server's socket is left in TIME_WAIT
    without, with_ = bind_again(server, reuseaddr=False), bind_again(server, reuseaddr=True)
    print(f"the server's port again, without SO_REUSEADDR: {without}")
    print(f"the server's port again, with SO_REUSEADDR: {with_}")
    # Linux checks the option on both sockets: the old one must have set it too.
    old = close_in_order("server", reuseaddr=False, show=False)
    plain = bind_again(old, reuseaddr=True)
    print(f"after a server without SO_REUSEADDR, even with it: {plain}")
    if LINUX:
        assert without == plain == "EADDRINUSE (Address already in use)"
        assert with_ == "bound and listening"


handshake()
close_in_order("client")
address_in_use()
