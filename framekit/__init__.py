"""framekit: message framing over TCP for Trio, with UDP datagrams as the contrast.

Layers, bottom up (each imports only the ones below it):

* sans-IO: :class:`FrameFormat`, :class:`FrameEncoder`, :class:`FrameDecoder`,
  :class:`MessageEncoder`, :class:`MessageDecoder` - pure, fed bytes, no sockets.
* Trio: :class:`FramedStream`, :class:`FramedChannel`, :class:`MessageStream` and the
  connection helpers - they only move bytes and handle cancellation.
* servers and tools: :func:`serve` (command server + UDP echo), :class:`Client`,
  :func:`fan_out`, :func:`send_datagram`.
"""

from __future__ import annotations

from ._address import parse_address as parse_address
from ._client import Client as Client
from ._client import CommandResult as CommandResult
from ._client import FileInfo as FileInfo
from ._client import HostResult as HostResult
from ._client import OutputChunk as OutputChunk
from ._client import fan_out as fan_out
from ._client import run_command as run_command
from ._codec import END_OF_STREAM as END_OF_STREAM
from ._codec import NEED_DATA as NEED_DATA
from ._codec import FrameDecoder as FrameDecoder
from ._codec import FrameEncoder as FrameEncoder
from ._codec import Sentinel as Sentinel
from ._compare import BurstResult as BurstResult
from ._compare import CompareOptions as CompareOptions
from ._compare import CompareReport as CompareReport
from ._compare import Piece as Piece
from ._compare import WayResult as WayResult
from ._compare import run_compare as run_compare
from ._connect import Retry as Retry
from ._connect import open_framed_connection as open_framed_connection
from ._connect import open_message_connection as open_message_connection
from ._connect import open_stream as open_stream
from ._connect import serve_framed as serve_framed
from ._connect import serve_messages as serve_messages
from ._errors import BadHeader as BadHeader
from ._errors import ChecksumMismatch as ChecksumMismatch
from ._errors import ConnectError as ConnectError
from ._errors import FramekitError as FramekitError
from ._errors import FrameTooLarge as FrameTooLarge
from ._errors import HeaderTooLarge as HeaderTooLarge
from ._errors import IncompleteFrame as IncompleteFrame
from ._errors import InvalidFormat as InvalidFormat
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import ProtocolError as ProtocolError
from ._format import DEFAULT_FORMAT as DEFAULT_FORMAT
from ._format import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
from ._format import TUTORIAL_FORMAT as TUTORIAL_FORMAT
from ._format import FrameFormat as FrameFormat
from ._framed import CANCEL_CHECK_INTERVAL as CANCEL_CHECK_INTERVAL
from ._framed import FramedChannel as FramedChannel
from ._framed import FramedStream as FramedStream
from ._framed import open_framed_channel as open_framed_channel
from ._message import DEFAULT_MAX_HEADER_SIZE as DEFAULT_MAX_HEADER_SIZE
from ._message import BodyChunk as BodyChunk
from ._message import EndOfMessage as EndOfMessage
from ._message import Header as Header
from ._message import MessageDecoder as MessageDecoder
from ._message import MessageEncoder as MessageEncoder
from ._message_stream import IncomingMessage as IncomingMessage
from ._message_stream import Message as Message
from ._message_stream import MessageStream as MessageStream
from ._protocol import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._protocol import AuthenticationError as AuthenticationError
from ._protocol import ErrorCode as ErrorCode
from ._protocol import RemoteError as RemoteError
from ._server import DEFAULT_PORT as DEFAULT_PORT
from ._server import InsecureBindError as InsecureBindError
from ._server import ServerAddresses as ServerAddresses
from ._server import ServerConfig as ServerConfig
from ._server import serve as serve
from ._server import serve_until_signal as serve_until_signal
from ._tls import client_ssl_context as client_ssl_context
from ._tls import server_ssl_context as server_ssl_context
from ._udp import MAX_UDP_PAYLOAD as MAX_UDP_PAYLOAD
from ._udp import DatagramReply as DatagramReply
from ._udp import DatagramTimeout as DatagramTimeout
from ._udp import PingReport as PingReport
from ._udp import UdpEchoStats as UdpEchoStats
from ._udp import ping as ping
from ._udp import send_datagram as send_datagram
from ._udp import serve_udp_echo as serve_udp_echo
from ._version import __version__ as __version__

__all__ = [
    "CANCEL_CHECK_INTERVAL",
    "DEFAULT_FORMAT",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_PORT",
    "END_OF_STREAM",
    "MAX_UDP_PAYLOAD",
    "NEED_DATA",
    "PROTOCOL_VERSION",
    "TUTORIAL_FORMAT",
    "AuthenticationError",
    "BadHeader",
    "BodyChunk",
    "BurstResult",
    "ChecksumMismatch",
    "Client",
    "CommandResult",
    "CompareOptions",
    "CompareReport",
    "ConnectError",
    "DatagramReply",
    "DatagramTimeout",
    "EndOfMessage",
    "ErrorCode",
    "FileInfo",
    "FrameDecoder",
    "FrameEncoder",
    "FrameFormat",
    "FrameTooLarge",
    "FramedChannel",
    "FramedStream",
    "FramekitError",
    "Header",
    "HeaderTooLarge",
    "HostResult",
    "IncomingMessage",
    "IncompleteFrame",
    "InsecureBindError",
    "InvalidFormat",
    "LocalProtocolError",
    "Message",
    "MessageDecoder",
    "MessageEncoder",
    "MessageStream",
    "OutputChunk",
    "Piece",
    "PingReport",
    "ProtocolError",
    "RemoteError",
    "Retry",
    "Sentinel",
    "ServerAddresses",
    "ServerConfig",
    "UdpEchoStats",
    "WayResult",
    "client_ssl_context",
    "fan_out",
    "open_framed_channel",
    "open_framed_connection",
    "open_message_connection",
    "open_stream",
    "parse_address",
    "ping",
    "run_command",
    "run_compare",
    "send_datagram",
    "serve",
    "serve_framed",
    "serve_messages",
    "serve_udp_echo",
    "serve_until_signal",
    "server_ssl_context",
]
