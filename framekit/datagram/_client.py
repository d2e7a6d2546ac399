"""The datagram client: one datagram and its echo, or a ping-like series."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import trio

from .._errors import FramekitError
from ._socket import RECEIVE_BUFFER, max_payload

__all__ = ["DatagramReply", "DatagramTimeout", "PingReport", "ping", "send_datagram"]


class DatagramTimeout(FramekitError, TimeoutError):
    """No echo came back within the timeout, after every retry."""


#: A connected UDP socket reports an earlier datagram's ICMP "port unreachable" (nobody
#: listens there yet) on a later receive: as ECONNREFUSED on Linux and macOS, as
#: WSAECONNRESET on Windows. Either way the datagram is sent again.
_PORT_UNREACHABLE: Final = (ConnectionRefusedError, ConnectionResetError)
#: Windows' error for a datagram longer than the receive buffer (POSIX truncates quietly).
_WSAEMSGSIZE: Final = getattr(errno, "WSAEMSGSIZE", 10040)


async def _receive_truncating(sock: trio.socket.SocketType, max_size: int) -> bytes:
    """One datagram, cut to ``max_size`` bytes if longer: what POSIX's ``recv`` does."""
    return await sock.recv(max_size)


async def _receive_into(sock: trio.socket.SocketType, max_size: int) -> bytes:
    """The same on Windows, whose ``recv`` fills the buffer with the start of a longer
    datagram and then fails with WSAEMSGSIZE: the buffer is kept, as POSIX would."""
    buffer = bytearray(max_size)
    try:
        size = await sock.recv_into(buffer)
    except OSError as exc:
        if exc.errno != _WSAEMSGSIZE:
            raise
        size = max_size
    return bytes(buffer[:size])


#: How an echo is received: chosen once, here, for this platform.
_receive: Callable[[trio.socket.SocketType, int], Awaitable[bytes]] = (
    _receive_into if sys.platform == "win32" else _receive_truncating
)


@dataclass(frozen=True, slots=True)
class DatagramReply:
    """An echo: the bytes that came back, the round-trip time and the attempts it took."""

    data: bytes
    rtt: float
    attempts: int


async def send_datagram(
    host: str,
    port: int,
    data: bytes,
    *,
    timeout: float = 1.0,
    retries: int = 2,
    max_size: int = RECEIVE_BUFFER,
) -> DatagramReply:
    """Send one datagram and wait for its echo, resending on timeout.

    Args:
        timeout: seconds to wait for each echo.
        retries: resends after the first try.
        max_size: the receive buffer; a longer echo is truncated to it, as UDP does
            (the default holds any datagram).

    Raises:
        ValueError: ``data`` is larger than a datagram of the address's family can be
            (65,507 bytes over IPv4, 65,527 over IPv6).
        DatagramTimeout: no echo after ``1 + retries`` tries.
        OSError: the address could not be resolved or reached.
    """
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    limit = max_payload(family)
    if len(data) > limit:
        raise ValueError(f"a UDP datagram holds at most {limit} bytes here, not {len(data)}")
    with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
        await sock.connect(addr)  # connected: the kernel filters out other senders
        for attempt in range(1, retries + 2):
            start = trio.current_time()
            await sock.send(data)
            with trio.move_on_after(timeout):
                while True:
                    try:
                        reply = await _receive(sock, max_size)
                    except _PORT_UNREACHABLE:
                        # ICMP port unreachable for an earlier try: nobody listens yet.
                        await trio.sleep(min(timeout, 0.05))
                        break
                    return DatagramReply(reply, trio.current_time() - start, attempt)
    raise DatagramTimeout(
        f"no echo from {host}:{port} after {retries + 1} tries of {timeout:g} s; "
        "is the UDP echo server running there, and is the datagram under the path MTU?"
    )


@dataclass(frozen=True, slots=True)
class PingReport:
    """A series of datagram round trips, like ``ping``'s summary.

    Attributes:
        sent: datagrams sent.
        replies: the echoes that came back, in order (``None`` for a lost one).
        rtts: round-trip seconds of the echoes that came back.
    """

    sent: int
    replies: tuple[bytes | None, ...]
    rtts: tuple[float, ...]

    @property
    def received(self) -> int:
        """Echoes that came back."""
        return len(self.rtts)

    @property
    def loss(self) -> float:
        """Fraction of datagrams without an echo (0 to 1)."""
        return 1 - self.received / self.sent if self.sent else 0.0

    def rtt_summary(self) -> tuple[float, float, float] | None:
        """(min, average, max) round trip in seconds, or ``None`` if nothing came back."""
        if not self.rtts:
            return None
        return min(self.rtts), sum(self.rtts) / len(self.rtts), max(self.rtts)


async def ping(
    host: str,
    port: int,
    data: bytes,
    *,
    count: int = 4,
    interval: float = 0.2,
    timeout: float = 1.0,
    on_reply: Callable[[int, bytes | None, float | None], object] | None = None,
) -> PingReport:
    """Send ``count`` datagrams one at a time, ``interval`` apart; collect the echoes.

    A datagram whose echo does not come within ``timeout`` counts as lost (no resend).

    Args:
        on_reply: called with (sequence number, echo or ``None``, rtt or ``None``).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    replies: list[bytes | None] = []
    rtts: list[float] = []
    # Each datagram goes out on a socket of its own (send_datagram): a late echo of a
    # lost one then lands on a closed port instead of passing for the next one's echo.
    for seq in range(count):
        if seq:
            await trio.sleep(interval)
        try:
            reply = await send_datagram(host, port, data, timeout=timeout, retries=0)
        except DatagramTimeout:
            replies.append(None)
            if on_reply is not None:
                on_reply(seq, None, None)
            continue
        replies.append(reply.data)
        rtts.append(reply.rtt)
        if on_reply is not None:
            on_reply(seq, reply.data, reply.rtt)
    return PingReport(sent=count, replies=tuple(replies), rtts=tuple(rtts))
