"""What shaped a lesson's figures: the OS, the interpreter, and the sockets as the OS set
them up. A learner comparing a run with the docs' Linux pictures needs these beside it."""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass

import trio

__all__ = ["Conditions", "observe_conditions"]


@dataclass(frozen=True, slots=True)
class Conditions:
    """The machine and the socket settings a lesson ran with.

    Attributes:
        system: the OS (``platform.system()``: ``Linux``, ``Darwin``, ``Windows``).
        release: its release (``platform.release()``).
        python: the Python version.
        trio: the Trio version.
        read_size: bytes the receiver asked for per read (``None``: the lesson does not
            read data).
        nagle: whether Nagle's algorithm was on for the TCP senders (``TCP_NODELAY``
            off), which decides whether small sends wait to be merged (``None``: the
            lesson sends no data).
        tcp_send_buffer: ``SO_SNDBUF`` of a loopback TCP sender as the OS reports it
            once connected (Linux doubles what it was asked and grows it as it goes).
        tcp_receive_buffer: ``SO_RCVBUF`` of the TCP receiver, the same way.
        udp_receive_buffer: ``SO_RCVBUF`` of a fresh UDP socket: how many bytes of
            datagrams wait for a reader before the rest are dropped.
    """

    system: str
    release: str
    python: str
    trio: str
    read_size: int | None
    nagle: bool | None
    tcp_send_buffer: int
    tcp_receive_buffer: int
    udp_receive_buffer: int

    def describe(self) -> tuple[str, str]:
        """Two short lines for a lesson's header: the machine, then the socket buffers as
        the OS set them (and Nagle, where the lesson sends data)."""
        machine = f"{self.system} {self.release}, Python {self.python}, Trio {self.trio}"
        sockets = (
            f"TCP buffers: send {_size(self.tcp_send_buffer)}, receive "
            f"{_size(self.tcp_receive_buffer)}; UDP receive {_size(self.udp_receive_buffer)}"
        )
        if self.nagle is not None:
            sockets += f"; Nagle {'on' if self.nagle else 'off'}"
        return machine, sockets


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"


async def observe_conditions(*, host: str, read_size: int | None, nagle: bool | None) -> Conditions:
    """Open a loopback TCP pair and a UDP socket on ``host`` and read their defaults."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with trio.socket.socket(family) as listener:
        await listener.bind((host, 0))
        listener.listen(1)
        with trio.socket.socket(family) as sender:
            if nagle is not None:
                sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, not nagle)
            await sender.connect(listener.getsockname())
            receiver, _ = await listener.accept()
            with receiver:
                send_buffer = sender.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                receive_buffer = receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    with trio.socket.socket(family, socket.SOCK_DGRAM) as udp:
        udp_buffer = udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return Conditions(
        system=platform.system() or "unknown",
        release=platform.release() or "unknown",
        python=platform.python_version(),
        trio=trio.__version__,
        read_size=read_size,
        nagle=nagle,
        tcp_send_buffer=send_buffer,
        tcp_receive_buffer=receive_buffer,
        udp_receive_buffer=udp_buffer,
    )
