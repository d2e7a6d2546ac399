"""UDP sockets for the echo server: the datagram size limits, and big kernel buffers."""

from __future__ import annotations

import logging
import socket
import sys
from typing import Final

import trio

from ..streams._serve import listen_error

__all__ = [
    "MAX_UDP6_PAYLOAD",
    "MAX_UDP_PAYLOAD",
    "RECEIVE_BUFFER",
    "SOCKET_BUFFER",
    "max_payload",
    "open_udp_socket",
]

log = logging.getLogger("framekit.udp")

#: 65535 - 8 (UDP header) - 20 (IPv4 header): the largest payload one IPv4 datagram holds,
#: and so the largest that every path carries.
MAX_UDP_PAYLOAD: Final = 65507
#: 65535 - 8 (UDP header): IPv6 does not count its own header in the payload length, so
#: an IPv6 datagram (jumbograms aside) holds 20 bytes more than an IPv4 one.
MAX_UDP6_PAYLOAD: Final = 65527
#: Bytes a receive asks for: more than any datagram of either family, so one that fills
#: the buffer would have to be a jumbogram (and is dropped, never echoed short).
RECEIVE_BUFFER: Final = 65536
#: Ask the kernel for this much socket buffer so a burst waits in the kernel instead of
#: being dropped. The kernel accounts ~1280 bytes per 512-byte datagram, so 32 MiB holds
#: ~26,000 of them: measured, 8 MiB dropped up to 25 % of a 50,000-datagram burst and
#: 32 MiB none. Beyond net.core.rmem_max only root gets it (SO_RCVBUFFORCE).
SOCKET_BUFFER: Final = 32 * 1024 * 1024

_LINUX: Final = sys.platform.startswith("linux")
#: Linux's options that let root exceed net.core.[rw]mem_max (Python does not name them;
#: 33 and 32 are their numbers in Linux's asm-generic headers). ``None`` elsewhere: on
#: macOS and Windows those numbers mean other options (32 is SO_BROADCAST there).
SO_RCVBUFFORCE: Final[int | None] = getattr(socket, "SO_RCVBUFFORCE", 33) if _LINUX else None
SO_SNDBUFFORCE: Final[int | None] = getattr(socket, "SO_SNDBUFFORCE", 32) if _LINUX else None
#: Linux reports twice the buffer it was asked for (the rest is its bookkeeping);
#: macOS and Windows report the size itself.
_REPORT_FACTOR: Final = 2 if _LINUX else 1
#: What to do when the kernel grants less receive buffer than asked, per platform.
_BUFFER_HINT: Final = (
    "Raise net.core.rmem_max (sysctl) or run as root."
    if _LINUX
    else "Raise kern.ipc.maxsockbuf (sysctl)."
    if sys.platform == "darwin"
    else "The system capped it."
)


def max_payload(family: int) -> int:
    """The largest UDP payload of an address family (IPv6 holds 20 bytes more)."""
    return MAX_UDP6_PAYLOAD if family == socket.AF_INET6 else MAX_UDP_PAYLOAD


def _set_buffer(sock: socket.socket, force: int | None, normal: int, size: int) -> int:
    """Ask for ``size`` bytes of buffer; return what the kernel granted."""
    # Root may exceed net.core.[rw]mem_max with the *FORCE option (Linux); others get
    # the cap.
    for option in (force, normal):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            continue
        break
    return int(sock.getsockopt(socket.SOL_SOCKET, normal)) // _REPORT_FACTOR


async def open_udp_socket(
    host: str, port: int, *, buffer_size: int = SOCKET_BUFFER
) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port`` with large kernel buffers.

    The host is resolved off the event loop (a name like ``localhost`` needs a lookup).

    Raises:
        OSError: the name does not resolve.
        ListenError: the address cannot be bound.
    """
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        granted = _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, buffer_size)
        if granted < buffer_size:
            log.warning(
                "UDP receive buffer is %d bytes, not the %d asked for: bursts may be dropped. %s",
                granted,
                buffer_size,
                _BUFFER_HINT,
            )
        _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, buffer_size)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise listen_error(exc, "udp", host, port) from exc
    except BaseException:
        sock.close()
        raise
    return sock
