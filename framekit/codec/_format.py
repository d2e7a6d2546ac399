"""Length-field frame formats: where the length is, how wide, its order and sign, what it
counts, what the decoder strips, and the size limit.

Everything Netty's ``LengthFieldBasedFrameDecoder`` and tokio-util's
``LengthDelimitedCodec`` builder express is a :class:`FrameFormat`; the default is
framekit's own wire format (4 bytes, unsigned, big-endian, then the payload).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from .._errors import InvalidFormat

if TYPE_CHECKING:
    from ._frames import FrameDecoder, FrameEncoder

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_MAX_FRAME_SIZE",
    "TUTORIAL_FORMAT",
    "ByteOrder",
    "FrameFormat",
    "Oversize",
]

ByteOrder = Literal["big", "little", "native"]
#: What a decoder does with a frame over the limit: raise (terminal), or skip it whole.
Oversize = Literal["error", "discard"]

#: 16 MiB: large enough for real messages, small enough that a hostile 4 GiB length
#: prefix is refused before any memory is spent on it.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

_STRUCT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8)
#: Largest header (bytes before and including the length field) a format may declare.
_MAX_OFFSET = 64 * 1024


class IntField(Protocol):
    """What packs and unpacks a length field: a :class:`struct.Struct` or its 3-byte twin."""

    def pack(self, v: int, /) -> bytes: ...
    def unpack_from(
        self, buffer: bytes | bytearray | memoryview, offset: int = 0, /
    ) -> tuple[int]: ...


class _OddWidthField:
    """A :class:`struct.Struct` look-alike for widths struct has no code for (3, 5, 6, 7)."""

    __slots__ = ("_order", "_signed", "_width", "size")

    def __init__(self, width: int, order: Literal["big", "little"], signed: bool) -> None:
        self._width = self.size = width
        self._order: Literal["big", "little"] = order
        self._signed = signed

    def pack(self, v: int, /) -> bytes:
        return v.to_bytes(self._width, self._order, signed=self._signed)

    def unpack_from(self, buffer: bytes | bytearray | memoryview, offset: int = 0, /) -> tuple[int]:
        raw = buffer[offset : offset + self._width]
        if len(raw) < self._width:
            raise struct.error(
                f"unpack_from requires a buffer of at least {offset + self._width} bytes"
            )
        return (int.from_bytes(raw, self._order, signed=self._signed),)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class FrameFormat:
    """A length-field framing.

    The default is framekit's wire format: a 4-byte unsigned big-endian (network byte
    order) length, then that many payload bytes, at most 16 MiB. The keyword options
    describe the rest of what real protocols do, with Netty's names in brackets: a header
    before the length field (``offset``, *lengthFieldOffset*), a length that counts more
    or less than the bytes after the field (``adjust``, *lengthAdjustment*: ``-width``
    when it counts itself), and how many bytes the decoder strips from the front of each
    frame it returns (``strip``, *initialBytesToStrip*; by default the whole header, so a
    receiver gets the payload alone). Options are checked here, so a bad one fails before
    any byte moves.

    Args:
        width: bytes in the length field, 1 to 8.
        byteorder: ``"big"`` (network byte order), ``"little"`` or ``"native"`` (this
            machine's, stored as the one it is).
        signed: whether the field is a signed integer (the tutorials' ``struct 'i'``).
            A negative length on the wire is then a protocol error.
        max_frame_size: the most bytes after the header a frame may have (its payload;
            ``length + adjust``). ``None`` means the smaller of 16 MiB and what the
            field can express.
        offset: header bytes before the length field.
        adjust: added to the length field's value to get the bytes that follow the
            header (``-(offset + width)`` when the length counts the whole frame).
        strip: bytes removed from the front of each decoded frame; ``None`` strips the
            header (``offset + width``). It may not cut the length field in two.
        header_fill: the stripped bytes that are not the length field, for the encoder
            to write back (say a fixed magic byte). Needed to encode only.
        oversize: ``"error"`` (default) makes a frame over the limit a terminal
            :class:`FrameTooLarge`; ``"discard"`` skips it whole and goes on with the
            next frame (Netty's discarding mode), counting what it skipped.

    Raises:
        InvalidFormat: an option is out of range.
    """

    width: int = 4
    byteorder: ByteOrder = "big"
    signed: bool = False
    max_frame_size: int | None = None
    offset: int = field(default=0, kw_only=True)
    adjust: int = field(default=0, kw_only=True)
    strip: int | None = field(default=None, kw_only=True)
    header_fill: bytes = field(default=b"", kw_only=True)
    oversize: Oversize = field(default="error", kw_only=True)
    _struct: IntField = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.width not in _WIDTHS or not _is_int(self.width):
            raise InvalidFormat(f"length field width must be 1 to 8 bytes, not {self.width!r}")
        if self.byteorder == "native":
            object.__setattr__(self, "byteorder", sys.byteorder)
        if self.width == 1 and self.byteorder in ("big", "little"):
            object.__setattr__(self, "byteorder", "big")  # one byte has no order: one value
        if self.byteorder not in ("big", "little"):
            raise InvalidFormat(
                f"byteorder must be 'big', 'little' or 'native', not {self.byteorder!r}"
            )
        if not isinstance(self.signed, bool):
            raise InvalidFormat(f"signed must be True or False, not {self.signed!r}")
        if not _is_int(self.offset) or not 0 <= self.offset <= _MAX_OFFSET:
            raise InvalidFormat(
                f"offset must be an integer from 0 to {_MAX_OFFSET}, not {self.offset!r}"
            )
        if not _is_int(self.adjust) or abs(self.adjust) > self.field_max:
            raise InvalidFormat(
                f"adjust must be an integer, at most the field's range, not {self.adjust!r}"
            )
        header = self.offset + self.width
        if self.strip is None:
            object.__setattr__(self, "strip", header)
        elif not _is_int(self.strip) or self.strip < 0:
            raise InvalidFormat(f"strip must be a non-negative integer, not {self.strip!r}")
        elif self.offset < self.strip < header:
            raise InvalidFormat(
                f"strip={self.strip} would cut the length field (bytes {self.offset} to "
                f"{header - 1}) in two; strip at most {self.offset} or at least {header}"
            )
        if not isinstance(self.header_fill, bytes):
            raise InvalidFormat(f"header_fill must be bytes, not {type(self.header_fill).__name__}")
        if self.header_fill and len(self.header_fill) != self.stripped_header:
            raise InvalidFormat(
                f"header_fill must be the {self.stripped_header} stripped bytes that are not "
                f"the length field, not {len(self.header_fill)} bytes"
            )
        if self.oversize not in ("error", "discard"):
            raise InvalidFormat(f"oversize must be 'error' or 'discard', not {self.oversize!r}")
        most = self.field_max + self.adjust
        if most < 0:
            raise InvalidFormat(
                f"adjust={self.adjust} leaves no room for a payload in a {self.width}-byte field"
            )
        if self.max_frame_size is None:
            object.__setattr__(self, "max_frame_size", min(DEFAULT_MAX_FRAME_SIZE, most))
        elif not _is_int(self.max_frame_size) or not 0 <= self.max_frame_size <= most:
            raise InvalidFormat(
                f"max_frame_size must be an integer from 0 to {most} "
                f"(what a {self.width}-byte {'signed' if self.signed else 'unsigned'} field "
                f"holds{f', adjusted by {self.adjust}' if self.adjust else ''}), "
                f"not {self.max_frame_size!r}"
            )
        order: Literal["big", "little"] = "big" if self.byteorder == "big" else "little"
        packer: IntField
        if self.width in _STRUCT_CODES:
            code = _STRUCT_CODES[self.width]
            packer = struct.Struct(
                (">" if order == "big" else "<") + (code if self.signed else code.upper())
            )
        else:
            packer = _OddWidthField(self.width, order, self.signed)
        object.__setattr__(self, "_struct", packer)

    @classmethod
    def tutorial(cls, *, max_frame_size: int | None = None) -> FrameFormat:
        """The format of the tutorials' ``struct.pack('i', n)``: 4 bytes, signed, native order.

        Native order is little-endian on x86 and ARM, which is why this preset exists: it
        lets framekit talk to programs written the tutorials' way. New protocols should use
        the default (network byte order, unsigned).
        """
        return cls(width=4, byteorder="native", signed=True, max_frame_size=max_frame_size)

    @property
    def field_max(self) -> int:
        """The largest length the prefix field can express."""
        bits = 8 * self.width - (1 if self.signed else 0)
        return (1 << bits) - 1

    @property
    def limit(self) -> int:
        """``max_frame_size`` as an ``int`` (never ``None`` after construction)."""
        assert self.max_frame_size is not None
        return self.max_frame_size

    @property
    def header_size(self) -> int:
        """Bytes up to and including the length field (``offset + width``)."""
        return self.offset + self.width

    @property
    def strip_size(self) -> int:
        """``strip`` as an ``int`` (never ``None`` after construction)."""
        assert self.strip is not None
        return self.strip

    @property
    def stripped_header(self) -> int:
        """How many stripped bytes are not the length field (what ``header_fill`` holds)."""
        strip = self.strip_size
        return strip - self.width if strip >= self.header_size else strip

    @property
    def plain(self) -> bool:
        """Whether this is a bare length prefix: no header, nothing adjusted, the prefix
        stripped, oversize an error (the codecs' fast path)."""
        return (
            self.offset == 0
            and self.adjust == 0
            and self.strip == self.width
            and self.oversize == "error"
        )

    @property
    def prefix_struct(self) -> IntField:
        """What packs and unpacks the length field (a :class:`struct.Struct` for widths
        1, 2, 4 and 8)."""
        return self._struct

    @property
    def spec(self) -> str:
        """This format as a spec string :func:`~framekit.parse_framing` reads back."""
        from ._spec import framing_spec  # the spec grammar lives in one module

        return framing_spec(self)

    def decoder(self) -> FrameDecoder:
        """A new decoder for this format."""
        from ._frames import FrameDecoder

        return FrameDecoder(self)

    def encoder(self) -> FrameEncoder:
        """A new encoder for this format."""
        from ._frames import FrameEncoder

        return FrameEncoder(self)


#: framekit's wire format: 4-byte unsigned big-endian length, 16 MiB limit.
DEFAULT_FORMAT = FrameFormat()
#: The tutorials' ``struct.pack('i', n)`` framing (signed, this machine's byte order).
TUTORIAL_FORMAT = FrameFormat.tutorial()
