"""framekit: message framing over TCP for Trio, with UDP datagrams as the contrast.

The layers are folders, bottom up; each imports only the ones below it:

* :mod:`framekit.codec` - sans-IO frame and message codecs: pure, fed bytes, no sockets,
  no Trio.
* :mod:`framekit.streams` - Trio wrappers (:class:`FramedStream`, :class:`FramedChannel`,
  :class:`MessageStream`, :class:`DeadlineStream`) and connect / serve helpers: they only
  move bytes and handle cancellation.
* :mod:`framekit.remote`, :mod:`framekit.datagram`, :mod:`framekit.compare` - the
  remote-command protocol (server and client), the UDP echo and datagram client, and
  the experiments behind ``framekit compare``;
* :func:`serve` composes the servers in one nursery.

Every public name is importable from here. The codec and the errors load with the
package; the other layers load on first use, so ``from framekit import FrameDecoder``
does not import Trio, subprocess or ssl.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import BadHeader as BadHeader
from ._errors import BufferTooSmall as BufferTooSmall
from ._errors import ChecksumMismatch as ChecksumMismatch
from ._errors import ConnectError as ConnectError
from ._errors import FramekitError as FramekitError
from ._errors import FrameTooLarge as FrameTooLarge
from ._errors import HeaderTooLarge as HeaderTooLarge
from ._errors import IncompleteFrame as IncompleteFrame
from ._errors import InvalidFormat as InvalidFormat
from ._errors import InvalidText as InvalidText
from ._errors import ListenError as ListenError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import MalformedFrame as MalformedFrame
from ._errors import ProtocolError as ProtocolError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import UnsupportedPlatform as UnsupportedPlatform
from ._version import __version__ as __version__
from .codec import DEFAULT_FORMAT as DEFAULT_FORMAT
from .codec import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
from .codec import DEFAULT_MAX_HEADER_SIZE as DEFAULT_MAX_HEADER_SIZE
from .codec import END_OF_STREAM as END_OF_STREAM
from .codec import NEED_DATA as NEED_DATA
from .codec import TUTORIAL_FORMAT as TUTORIAL_FORMAT
from .codec import BodyChunk as BodyChunk
from .codec import DelimitedDecoder as DelimitedDecoder
from .codec import DelimitedEncoder as DelimitedEncoder
from .codec import DelimitedFormat as DelimitedFormat
from .codec import EndOfMessage as EndOfMessage
from .codec import FrameDecoder as FrameDecoder
from .codec import FrameEncoder as FrameEncoder
from .codec import FrameFormat as FrameFormat
from .codec import Framing as Framing
from .codec import Header as Header
from .codec import MessageDecoder as MessageDecoder
from .codec import MessageEncoder as MessageEncoder
from .codec import NetstringDecoder as NetstringDecoder
from .codec import NetstringEncoder as NetstringEncoder
from .codec import NetstringFormat as NetstringFormat
from .codec import Sentinel as Sentinel
from .codec import VarintDecoder as VarintDecoder
from .codec import VarintEncoder as VarintEncoder
from .codec import VarintFormat as VarintFormat
from .codec import parse_framing as parse_framing

if TYPE_CHECKING:  # the names _LAZY loads, spelled out for type checkers and docs
    from ._serve import ServerAddresses as ServerAddresses
    from ._serve import serve as serve
    from ._serve import serve_until_signal as serve_until_signal
    from .compare import COMPARE_SCHEMA as COMPARE_SCHEMA
    from .compare import LIFECYCLE_SCHEMA as LIFECYCLE_SCHEMA
    from .compare import RECV_SCHEMA as RECV_SCHEMA
    from .compare import BindAttempt as BindAttempt
    from .compare import BurstResult as BurstResult
    from .compare import ClosingRun as ClosingRun
    from .compare import CompareOptions as CompareOptions
    from .compare import CompareReport as CompareReport
    from .compare import Conditions as Conditions
    from .compare import HandshakeResult as HandshakeResult
    from .compare import LifecycleLesson as LifecycleLesson
    from .compare import LifecycleOptions as LifecycleOptions
    from .compare import Piece as Piece
    from .compare import RebindResult as RebindResult
    from .compare import RecvCall as RecvCall
    from .compare import RecvLesson as RecvLesson
    from .compare import RecvOptions as RecvOptions
    from .compare import RecvStep as RecvStep
    from .compare import RepeatReport as RepeatReport
    from .compare import TcpStates as TcpStates
    from .compare import WayResult as WayResult
    from .compare import WayTally as WayTally
    from .compare import cycle_sizes as cycle_sizes
    from .compare import run_compare as run_compare
    from .compare import run_compare_repeated as run_compare_repeated
    from .compare import run_lifecycle_lesson as run_lifecycle_lesson
    from .compare import run_recv_lesson as run_recv_lesson
    from .datagram import MAX_UDP6_PAYLOAD as MAX_UDP6_PAYLOAD
    from .datagram import MAX_UDP_PAYLOAD as MAX_UDP_PAYLOAD
    from .datagram import DatagramReply as DatagramReply
    from .datagram import DatagramTimeout as DatagramTimeout
    from .datagram import PingReport as PingReport
    from .datagram import UdpEchoStats as UdpEchoStats
    from .datagram import ping as ping
    from .datagram import send_datagram as send_datagram
    from .datagram import serve_tcp_echo as serve_tcp_echo
    from .datagram import serve_udp_echo as serve_udp_echo
    from .remote import DEFAULT_PARALLEL as DEFAULT_PARALLEL
    from .remote import DEFAULT_PORT as DEFAULT_PORT
    from .remote import PROTOCOL_VERSION as PROTOCOL_VERSION
    from .remote import AuthenticationError as AuthenticationError
    from .remote import Client as Client
    from .remote import CommandResult as CommandResult
    from .remote import ErrorCode as ErrorCode
    from .remote import FileInfo as FileInfo
    from .remote import HostResult as HostResult
    from .remote import HostTimeout as HostTimeout
    from .remote import InsecureBindError as InsecureBindError
    from .remote import OutputChunk as OutputChunk
    from .remote import RemoteError as RemoteError
    from .remote import ServerConfig as ServerConfig
    from .remote import fan_out as fan_out
    from .remote import for_each_host as for_each_host
    from .remote import run_command as run_command
    from .remote import serve_commands as serve_commands
    from .streams import CANCEL_CHECK_INTERVAL as CANCEL_CHECK_INTERVAL
    from .streams import DEFAULT_IDLE_TIMEOUT as DEFAULT_IDLE_TIMEOUT
    from .streams import DEFAULT_MAX_BUFFER_SIZE as DEFAULT_MAX_BUFFER_SIZE
    from .streams import DEFAULT_RECEIVE_SIZE as DEFAULT_RECEIVE_SIZE
    from .streams import BufferedByteStream as BufferedByteStream
    from .streams import DeadlineStream as DeadlineStream
    from .streams import Detached as Detached
    from .streams import FramedChannel as FramedChannel
    from .streams import FramedStream as FramedStream
    from .streams import IncomingMessage as IncomingMessage
    from .streams import Message as Message
    from .streams import MessageStream as MessageStream
    from .streams import Retry as Retry
    from .streams import StreamTimeout as StreamTimeout
    from .streams import TextChannel as TextChannel
    from .streams import client_ssl_context as client_ssl_context
    from .streams import format_address as format_address
    from .streams import listen_tcp as listen_tcp
    from .streams import open_framed_channel as open_framed_channel
    from .streams import open_framed_connection as open_framed_connection
    from .streams import open_framed_stream as open_framed_stream
    from .streams import open_message_connection as open_message_connection
    from .streams import open_message_stream as open_message_stream
    from .streams import open_stream as open_stream
    from .streams import parse_address as parse_address
    from .streams import serve_framed as serve_framed
    from .streams import serve_messages as serve_messages
    from .streams import server_ssl_context as server_ssl_context
    from .streams import speaks_tls as speaks_tls

#: Where each lazily loaded public name lives.
_LAZY: dict[str, str] = {
    **dict.fromkeys(["ServerAddresses", "serve", "serve_until_signal"], "._serve"),
    **dict.fromkeys(
        [
            "BurstResult",
            "CompareOptions",
            "CompareReport",
            "Conditions",
            "Piece",
            "RepeatReport",
            "WayResult",
            "WayTally",
            "cycle_sizes",
            "run_compare",
            "COMPARE_SCHEMA",
            "LIFECYCLE_SCHEMA",
            "BindAttempt",
            "ClosingRun",
            "HandshakeResult",
            "LifecycleLesson",
            "LifecycleOptions",
            "RebindResult",
            "TcpStates",
            "run_lifecycle_lesson",
            "RECV_SCHEMA",
            "RecvCall",
            "RecvLesson",
            "RecvOptions",
            "RecvStep",
            "run_recv_lesson",
            "run_compare_repeated",
        ],
        ".compare",
    ),
    **dict.fromkeys(
        [
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
        ],
        ".datagram",
    ),
    **dict.fromkeys(
        [
            "DEFAULT_PARALLEL",
            "DEFAULT_PORT",
            "PROTOCOL_VERSION",
            "AuthenticationError",
            "Client",
            "CommandResult",
            "ErrorCode",
            "FileInfo",
            "HostResult",
            "HostTimeout",
            "InsecureBindError",
            "OutputChunk",
            "RemoteError",
            "ServerConfig",
            "fan_out",
            "for_each_host",
            "run_command",
            "serve_commands",
        ],
        ".remote",
    ),
    **dict.fromkeys(
        [
            "BufferedByteStream",
            "CANCEL_CHECK_INTERVAL",
            "DEFAULT_IDLE_TIMEOUT",
            "DEFAULT_MAX_BUFFER_SIZE",
            "DEFAULT_RECEIVE_SIZE",
            "DeadlineStream",
            "Detached",
            "FramedChannel",
            "FramedStream",
            "IncomingMessage",
            "Message",
            "MessageStream",
            "Retry",
            "StreamTimeout",
            "TextChannel",
            "client_ssl_context",
            "format_address",
            "listen_tcp",
            "open_framed_channel",
            "open_framed_connection",
            "open_framed_stream",
            "open_message_connection",
            "open_message_stream",
            "open_stream",
            "parse_address",
            "serve_framed",
            "serve_messages",
            "server_ssl_context",
            "speaks_tls",
        ],
        ".streams",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'framekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(
    [
        "BadHeader",
        "BodyChunk",
        "BufferTooSmall",
        "DelimitedDecoder",
        "DelimitedEncoder",
        "DelimitedFormat",
        "Framing",
        "MalformedFrame",
        "NetstringDecoder",
        "NetstringEncoder",
        "NetstringFormat",
        "VarintDecoder",
        "VarintEncoder",
        "VarintFormat",
        "parse_framing",
        "ChecksumMismatch",
        "ConnectError",
        "DEFAULT_FORMAT",
        "DEFAULT_MAX_FRAME_SIZE",
        "DEFAULT_MAX_HEADER_SIZE",
        "END_OF_STREAM",
        "EndOfMessage",
        "FrameDecoder",
        "FrameEncoder",
        "FrameFormat",
        "FrameTooLarge",
        "FramekitError",
        "Header",
        "HeaderTooLarge",
        "IncompleteFrame",
        "InvalidFormat",
        "InvalidText",
        "ListenError",
        "LocalProtocolError",
        "MessageDecoder",
        "MessageEncoder",
        "NEED_DATA",
        "ProtocolError",
        "RemoteProtocolError",
        "Sentinel",
        "TUTORIAL_FORMAT",
        "UnsupportedPlatform",
        *_LAZY,
    ]
)
