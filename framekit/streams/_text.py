"""Text over any channel of frames: each frame one string, decoded strictly."""

from __future__ import annotations

import codecs
from typing import final

import trio

from .._errors import InvalidText

__all__ = ["TextChannel"]


@final
class TextChannel(trio.abc.Channel[str]):
    """A :class:`trio.abc.Channel` of strings over a channel of frames (a
    :class:`~framekit.FramedStream` with ``lines`` framing, say).

    Each frame received is decoded whole in ``encoding``; a frame that is not valid text
    raises :class:`~framekit.InvalidText` naming the offset of the first bad byte, and the
    channel goes on with the next frame (the framing is intact). Sending encodes.

    Args:
        channel: the channel of frames to wrap.
        encoding: any codec Python knows (checked here); default UTF-8.
        errors: ``"strict"`` (default: bad bytes raise), or a codec error handler such as
            ``"replace"`` or ``"surrogateescape"`` to decode them anyway.

    Raises:
        LookupError: (at construction) the encoding or error handler is unknown.
    """

    def __init__(
        self, channel: trio.abc.Channel[bytes], *, encoding: str = "utf-8", errors: str = "strict"
    ) -> None:
        self.encoding = codecs.lookup(encoding).name
        codecs.lookup_error(errors)
        self.errors = errors
        self.channel = channel

    async def send(self, value: str) -> None:
        """Encode ``value`` and send it as one frame.

        Raises:
            TypeError: ``value`` is not a ``str``; nothing was sent.
            UnicodeEncodeError: ``value`` cannot be encoded (with ``errors="strict"``).
        """
        if not isinstance(value, str):
            raise TypeError(f"TextChannel sends str, not {type(value).__name__}")
        await self.channel.send(value.encode(self.encoding, self.errors))

    async def receive(self) -> str:
        """Receive one frame as a string.

        Raises:
            InvalidText: the frame is not valid in ``encoding`` (the next call goes on).
            trio.EndOfChannel: the peer closed cleanly.
        """
        frame = await self.channel.receive()
        try:
            return bytes(frame).decode(self.encoding, self.errors)
        except UnicodeDecodeError as exc:
            bad = frame[exc.start : exc.start + 8]
            raise InvalidText(
                f"a {len(frame)}-byte frame is not valid {self.encoding}: {exc.reason} at "
                f"byte {exc.start} ({bytes(bad).hex(' ')})",
                frame=bytes(frame),
                encoding=self.encoding,
                position=exc.start,
            ) from None

    async def aclose(self) -> None:
        """Close the wrapped channel."""
        await self.channel.aclose()
