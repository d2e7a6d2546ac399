"""Frame formats: how wide the length prefix is, its byte order and sign, and the size limit."""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Literal

from .._errors import InvalidFormat

__all__ = ["DEFAULT_FORMAT", "DEFAULT_MAX_FRAME_SIZE", "TUTORIAL_FORMAT", "FrameFormat"]

ByteOrder = Literal["big", "little"]

#: 16 MiB: large enough for real messages, small enough that a hostile 4 GiB length
#: prefix is refused before any memory is spent on it.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

_STRUCT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


@dataclass(frozen=True, slots=True)
class FrameFormat:
    """The shape of a length prefix.

    The default is framekit's wire format: a 4-byte unsigned big-endian (network byte
    order) length, then that many payload bytes, at most 16 MiB. Options are checked here,
    at construction, so a bad one fails before any byte moves.

    Args:
        width: bytes in the length field: 1, 2, 4 or 8.
        byteorder: ``"big"`` (network byte order) or ``"little"``.
        signed: whether the field is a signed integer (the tutorials' ``struct 'i'``).
            A negative length on the wire is then a protocol error.
        max_frame_size: the largest payload accepted or sent. ``None`` means the smaller of
            16 MiB and the largest length the field can hold.

    Raises:
        InvalidFormat: an option is out of range.
    """

    width: int = 4
    byteorder: ByteOrder = "big"
    signed: bool = False
    max_frame_size: int | None = None
    _struct: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.width not in _STRUCT_CODES:
            raise InvalidFormat(
                f"length field width must be 1, 2, 4 or 8 bytes, not {self.width!r}"
            )
        if self.byteorder not in ("big", "little"):
            raise InvalidFormat(f"byteorder must be 'big' or 'little', not {self.byteorder!r}")
        if not isinstance(self.signed, bool):
            raise InvalidFormat(f"signed must be True or False, not {self.signed!r}")
        field_max = self.field_max
        if self.max_frame_size is None:
            object.__setattr__(self, "max_frame_size", min(DEFAULT_MAX_FRAME_SIZE, field_max))
        elif (
            isinstance(self.max_frame_size, bool)
            or not isinstance(self.max_frame_size, int)
            or not 0 <= self.max_frame_size <= field_max
        ):
            raise InvalidFormat(
                f"max_frame_size must be an integer from 0 to {field_max} "
                f"(what a {self.width}-byte {'signed' if self.signed else 'unsigned'} field "
                f"holds), not {self.max_frame_size!r}"
            )
        code = _STRUCT_CODES[self.width]
        order = ">" if self.byteorder == "big" else "<"
        object.__setattr__(
            self, "_struct", struct.Struct(order + (code if self.signed else code.upper()))
        )

    @classmethod
    def tutorial(cls, *, max_frame_size: int | None = None) -> FrameFormat:
        """The format of the tutorials' ``struct.pack('i', n)``: 4 bytes, signed, native order.

        Native order is little-endian on x86 and ARM, which is why this preset exists: it
        lets framekit talk to programs written the tutorials' way. New protocols should use
        the default (network byte order, unsigned).
        """
        return cls(width=4, byteorder=sys.byteorder, signed=True, max_frame_size=max_frame_size)

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
    def prefix_struct(self) -> struct.Struct:
        """The compiled :class:`struct.Struct` for the length prefix."""
        return self._struct


#: framekit's wire format: 4-byte unsigned big-endian length, 16 MiB limit.
DEFAULT_FORMAT = FrameFormat()
#: The tutorials' ``struct.pack('i', n)`` framing (signed, this machine's byte order).
TUTORIAL_FORMAT = FrameFormat.tutorial()
