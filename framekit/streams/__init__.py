"""The Trio layer: wrappers that only move bytes and handle cancellation.

:class:`FramedStream`, :class:`FramedChannel` and :class:`MessageStream` wrap any
:class:`trio.abc.Stream` and leave every parsing decision to :mod:`framekit.codec`;
:class:`BufferedByteStream` reads bytes exactly or up to a delimiter, for protocols that
switch framing on one connection. They
share one state machine (closed / broken / busy, per direction). :class:`DeadlineStream`
bounds every wait; the connect and serve helpers open and accept TCP or TLS connections.
"""

from __future__ import annotations

from ._address import format_address as format_address
from ._address import parse_address as parse_address
from ._buffered import BufferedByteStream as BufferedByteStream
from ._channel import DEFAULT_MAX_BUFFER_SIZE as DEFAULT_MAX_BUFFER_SIZE
from ._channel import FramedChannel as FramedChannel
from ._channel import open_framed_channel as open_framed_channel
from ._connect import Retry as Retry
from ._connect import open_framed_connection as open_framed_connection
from ._connect import open_framed_stream as open_framed_stream
from ._connect import open_message_connection as open_message_connection
from ._connect import open_message_stream as open_message_stream
from ._connect import open_stream as open_stream
from ._connect import speaks_tls as speaks_tls
from ._deadline import DeadlineStream as DeadlineStream
from ._deadline import StreamTimeout as StreamTimeout
from ._framed import CANCEL_CHECK_INTERVAL as CANCEL_CHECK_INTERVAL
from ._framed import Detached as Detached
from ._framed import FramedStream as FramedStream
from ._message_stream import IncomingMessage as IncomingMessage
from ._message_stream import Message as Message
from ._message_stream import MessageStream as MessageStream
from ._read_size import DEFAULT_RECEIVE_SIZE as DEFAULT_RECEIVE_SIZE
from ._serve import DEFAULT_IDLE_TIMEOUT as DEFAULT_IDLE_TIMEOUT
from ._serve import listen_tcp as listen_tcp
from ._serve import serve_framed as serve_framed
from ._serve import serve_messages as serve_messages
from ._text import TextChannel as TextChannel
from ._tls import client_ssl_context as client_ssl_context
from ._tls import server_ssl_context as server_ssl_context

__all__ = [
    "CANCEL_CHECK_INTERVAL",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BUFFER_SIZE",
    "DEFAULT_RECEIVE_SIZE",
    "BufferedByteStream",
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
]
