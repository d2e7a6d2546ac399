"""The sans-IO layer: frame and message codecs you feed bytes, with no sockets and no Trio.

Everything here is pure and synchronous. A :data:`Framing` (:class:`FrameFormat` for
length fields, :class:`DelimitedFormat` for lines and delimiters, :class:`VarintFormat`,
:class:`NetstringFormat`) makes its decoder, which takes bytes in any chunking and returns
whole frames, and its encoder, which returns bytes; :func:`parse_framing` reads one from
a spec string. :class:`MessageDecoder` adds framekit's header + body messages. The Trio
wrappers in :mod:`framekit.streams` only move those bytes.
"""

from __future__ import annotations

from ._delimited import DelimitedDecoder as DelimitedDecoder
from ._delimited import DelimitedEncoder as DelimitedEncoder
from ._delimited import DelimitedFormat as DelimitedFormat
from ._format import DEFAULT_FORMAT as DEFAULT_FORMAT
from ._format import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
from ._format import TUTORIAL_FORMAT as TUTORIAL_FORMAT
from ._format import FrameFormat as FrameFormat
from ._frames import END_OF_STREAM as END_OF_STREAM
from ._frames import NEED_DATA as NEED_DATA
from ._frames import FrameDecoder as FrameDecoder
from ._frames import FrameEncoder as FrameEncoder
from ._frames import Sentinel as Sentinel
from ._messages import DEFAULT_MAX_HEADER_SIZE as DEFAULT_MAX_HEADER_SIZE
from ._messages import BodyChunk as BodyChunk
from ._messages import EndOfMessage as EndOfMessage
from ._messages import Header as Header
from ._messages import MessageDecoder as MessageDecoder
from ._messages import MessageEncoder as MessageEncoder
from ._netstring import NetstringDecoder as NetstringDecoder
from ._netstring import NetstringEncoder as NetstringEncoder
from ._netstring import NetstringFormat as NetstringFormat
from ._spec import Framing as Framing
from ._spec import parse_framing as parse_framing
from ._varint import VarintDecoder as VarintDecoder
from ._varint import VarintEncoder as VarintEncoder
from ._varint import VarintFormat as VarintFormat

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "END_OF_STREAM",
    "NEED_DATA",
    "TUTORIAL_FORMAT",
    "BodyChunk",
    "DelimitedDecoder",
    "DelimitedEncoder",
    "DelimitedFormat",
    "EndOfMessage",
    "FrameDecoder",
    "FrameEncoder",
    "FrameFormat",
    "Framing",
    "Header",
    "MessageDecoder",
    "MessageEncoder",
    "NetstringDecoder",
    "NetstringEncoder",
    "NetstringFormat",
    "Sentinel",
    "VarintDecoder",
    "VarintEncoder",
    "VarintFormat",
    "parse_framing",
]
