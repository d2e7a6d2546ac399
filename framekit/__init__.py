"""framekit: message framing over TCP for Trio, with UDP datagrams as the contrast.

Layers, bottom up (each imports only the ones below it):

* sans-IO: :class:`FrameFormat`, :class:`FrameEncoder`, :class:`FrameDecoder`,
  :class:`MessageEncoder`, :class:`MessageDecoder` - pure, fed bytes, no sockets.
* Trio: :class:`FramedStream`, :class:`FramedChannel`, :class:`MessageStream` and the
  connection helpers - they only move bytes and handle cancellation.
"""

from __future__ import annotations

from ._codec import END_OF_STREAM as END_OF_STREAM
from ._codec import NEED_DATA as NEED_DATA
from ._codec import FrameDecoder as FrameDecoder
from ._codec import FrameEncoder as FrameEncoder
from ._codec import Sentinel as Sentinel
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

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "END_OF_STREAM",
    "NEED_DATA",
    "TUTORIAL_FORMAT",
    "BadHeader",
    "BodyChunk",
    "ChecksumMismatch",
    "ConnectError",
    "EndOfMessage",
    "FrameDecoder",
    "FrameEncoder",
    "FrameFormat",
    "FrameTooLarge",
    "FramedChannel",
    "FramedStream",
    "FramekitError",
    "Header",
    "HeaderTooLarge",
    "IncomingMessage",
    "IncompleteFrame",
    "InvalidFormat",
    "LocalProtocolError",
    "Message",
    "MessageDecoder",
    "MessageEncoder",
    "MessageStream",
    "ProtocolError",
    "Retry",
    "Sentinel",
    "open_framed_channel",
    "open_framed_connection",
    "open_message_connection",
    "open_stream",
    "serve_framed",
    "serve_messages",
]
