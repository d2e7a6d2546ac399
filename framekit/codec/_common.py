"""What the framings share: the refusal of a payload too large to send, the properties
every format has, and the encoder that frames a payload between a head and a tail."""

from __future__ import annotations

from collections.abc import Iterable

from .._errors import FrameTooLarge
from .._types import BytesLike, flat_bytes

__all__ = ["FormatCommon", "HeadTailEncoder", "too_large_to_send"]


def too_large_to_send(length: int, limit: int) -> FrameTooLarge:
    """The error for a payload over ``max_frame_size`` (nothing was encoded)."""
    return FrameTooLarge(
        f"cannot send a {length}-byte frame: max_frame_size is {limit} bytes",
        length=length,
        limit=limit,
    )


class FormatCommon:
    """``limit`` and ``spec`` for a format dataclass with a ``max_frame_size`` field."""

    __slots__ = ()
    max_frame_size: int

    @property
    def limit(self) -> int:
        """``max_frame_size``."""
        return self.max_frame_size

    @property
    def spec(self) -> str:
        """This format as a spec string :func:`~framekit.parse_framing` reads back."""
        from ._spec import framing_spec  # the grammar lives in one module

        return framing_spec(self)  # type: ignore[arg-type]


class HeadTailEncoder:
    """Frames each payload as ``head(len) + payload + tail`` (varints, netstrings).

    Raises:
        FrameTooLarge: (from every method) a payload is over ``max_frame_size``.
        TypeError: (from every method) a payload is not bytes-like.
    """

    __slots__ = ("_limit",)
    _tail = b""

    def __init__(self, limit: int) -> None:
        self._limit = limit

    def _head(self, n: int) -> bytes:
        """The bytes before a payload of ``n`` bytes (already checked against the limit)."""
        raise NotImplementedError

    def _checked_head(self, n: int) -> bytes:
        if n > self._limit:
            raise too_large_to_send(n, self._limit)
        return self._head(n)

    def encode(self, payload: BytesLike) -> bytes:
        """One frame, as a new ``bytes``."""
        payload = flat_bytes(payload)
        return self._checked_head(len(payload)) + payload + self._tail

    def encode_into(self, buffer: bytearray, payload: BytesLike) -> None:
        """Append one frame to ``buffer``."""
        payload = flat_bytes(payload)
        buffer += self._checked_head(len(payload))
        buffer += payload
        buffer += self._tail

    def encode_many(self, payloads: Iterable[BytesLike]) -> bytes:
        """Many frames in one buffer; nothing is returned if any payload is refused."""
        parts: list[BytesLike] = []
        tail = self._tail
        for payload in payloads:
            payload = flat_bytes(payload)
            parts.append(self._checked_head(len(payload)))
            parts.append(payload)
            if tail:
                parts.append(tail)
        return b"".join(parts)
