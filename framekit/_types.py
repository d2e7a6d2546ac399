"""The bytes-like values framekit accepts, and the one check that admits them."""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["BytesLike", "flat_bytes"]

#: What framekit accepts wherever it takes bytes (``collections.abc.Buffer`` needs 3.12).
BytesLike: TypeAlias = bytes | bytearray | memoryview


def flat_bytes(value: object, what: str = "payload") -> BytesLike:
    """``value`` as a buffer whose ``len()`` is its size in bytes.

    ``bytes`` and ``bytearray`` pass as they are. Any other buffer (a ``memoryview`` of
    ``int32`` items, an ``array.array``) becomes a flat byte view of the same memory, so
    a length prefix counts its bytes, not its items.

    Raises:
        TypeError: ``value`` is not a contiguous buffer (``str`` included: encode it first).
    """
    if type(value) is bytes or type(value) is bytearray:  # the hot path: no view needed
        return value
    try:
        view = value if isinstance(value, memoryview) else memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        hint = "; encode text first (text.encode())" if isinstance(value, str) else ""
        raise TypeError(
            f"{what} must be bytes, bytearray or memoryview, not {type(value).__name__}{hint}"
        ) from None
    if view.itemsize == 1 and view.ndim == 1 and view.c_contiguous:
        return view
    try:
        return view.cast("B")
    except TypeError:
        raise TypeError(f"{what} must be a contiguous buffer (this memoryview is not)") from None
