"""UDP, the contrast: the datagram echo server and client; and the raw TCP echo.

Datagrams keep their boundaries but can be lost or truncated; the raw TCP echo shows a
byte stream merging and splitting what was sent.
"""

from __future__ import annotations

from ._client import DatagramReply as DatagramReply
from ._client import DatagramTimeout as DatagramTimeout
from ._client import PingReport as PingReport
from ._client import ping as ping
from ._client import send_datagram as send_datagram
from ._echo import UdpEchoStats as UdpEchoStats
from ._echo import serve_udp_echo as serve_udp_echo
from ._socket import MAX_UDP6_PAYLOAD as MAX_UDP6_PAYLOAD
from ._socket import MAX_UDP_PAYLOAD as MAX_UDP_PAYLOAD
from ._tcp_echo import serve_tcp_echo as serve_tcp_echo

__all__ = [
    "MAX_UDP6_PAYLOAD",
    "MAX_UDP_PAYLOAD",
    "DatagramReply",
    "DatagramTimeout",
    "PingReport",
    "UdpEchoStats",
    "ping",
    "send_datagram",
    "serve_tcp_echo",
    "serve_udp_echo",
]
