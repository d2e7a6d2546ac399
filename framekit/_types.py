"""Type aliases shared across framekit."""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["BytesLike"]

#: What framekit accepts wherever it takes bytes (``collections.abc.Buffer`` needs 3.12).
BytesLike: TypeAlias = bytes | bytearray | memoryview
