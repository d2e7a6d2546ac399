"""UDP sockets for the echo server: the datagram size limits, and big kernel buffers."""

from __future__ import annotations

import logging
import socket
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

SO_RCVBUFFORCE: Final = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE: Final = getattr(socket, "SO_SNDBUFFORCE", 32)


def max_payload(family: int) -> int:
    """The largest UDP payload of an address family (IPv6 holds 20 bytes more)."""
    return MAX_UDP6_PAYLOAD if family == socket.AF_INET6 else MAX_UDP_PAYLOAD


def _set_buffer(sock: socket.socket, force: int, normal: int, size: int) -> int:
    """Ask for ``size`` bytes of buffer; return what the kernel granted (it doubles it)."""
    # Root may exceed net.core.[rw]mem_max with the *FORCE option; others get the cap.
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, normal, size)
        except OSError:
            pass
    return int(sock.getsockopt(socket.SOL_SOCKET, normal)) // 2


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
                "UDP receive buffer is %d bytes, not the %d asked for: bursts may be dropped. "
                "Raise net.core.rmem_max (sysctl) or run as root.",
                granted,
                buffer_size,
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
