"""The sans-IO layer: frame and message codecs you feed bytes, with no sockets and no Trio.

Everything here is pure and synchronous: :class:`FrameDecoder` and :class:`MessageDecoder`
take bytes in any chunking and return whole frames or message events; the encoders
return bytes. The Trio wrappers in :mod:`framekit.streams` only move those bytes.
"""

from __future__ import annotations

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

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "END_OF_STREAM",
    "NEED_DATA",
    "TUTORIAL_FORMAT",
    "BodyChunk",
    "EndOfMessage",
    "FrameDecoder",
    "FrameEncoder",
    "FrameFormat",
    "Header",
    "MessageDecoder",
    "MessageEncoder",
    "Sentinel",
]
