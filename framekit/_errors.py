"""The one exception hierarchy of framekit, rooted in :class:`FramekitError`."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadHeader",
    "BufferTooSmall",
    "ChecksumMismatch",
    "ConnectError",
    "FrameTooLarge",
    "FramekitError",
    "HeaderTooLarge",
    "IncompleteFrame",
    "InvalidFormat",
    "InvalidText",
    "ListenError",
    "LocalProtocolError",
    "MalformedFrame",
    "ProtocolError",
    "RemoteProtocolError",
    "UnsupportedPlatform",
]


class FramekitError(Exception):
    """Base class of every error framekit raises on purpose."""


class InvalidFormat(FramekitError, ValueError):
    """A codec option is out of range (for example a length field width of 9)."""


class ProtocolError(FramekitError):
    """The framing rules were broken.

    Decoders raise it for what the peer sent; after a decoder raises one, it stays in an
    error state and every later call raises again: there is no resynchronising on garbage
    (a format's ``oversize="discard"`` skips frames over the limit instead of raising).
    Encoders raise :class:`FrameTooLarge`, :class:`HeaderTooLarge` or
    :class:`LocalProtocolError` for what you asked to send; nothing is sent then.

    Attributes:
        terminal: whether the stream that raised it can never receive again (``True`` for
            every error but :class:`ChecksumMismatch`, whose framing is intact).
    """

    terminal: ClassVar[bool] = True


class RemoteProtocolError(ProtocolError):
    """The peer sent well-framed messages that its protocol does not allow.

    For example a server whose greeting is not a framekit ``hello``, or a reply to the
    wrong request. The connection cannot be trusted after it.
    """


class LocalProtocolError(ProtocolError):
    """You asked to send something the format cannot carry (e.g. a payload over the limit)."""


class FrameTooLarge(ProtocolError):
    """A frame length is above ``max_frame_size`` (or negative in a signed format).

    Raised as soon as the length prefix is decoded, before any payload is buffered.

    Attributes:
        length: the length that was declared (or asked for).
        limit: the largest length allowed.
    """

    def __init__(self, message: str, *, length: int, limit: int) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class IncompleteFrame(ProtocolError):
    """The stream ended in the middle of a frame or message body.

    Attributes:
        expected: bytes the frame (prefix plus payload, or body) needed.
        received: bytes of it that arrived before the end of the stream.
    """

    def __init__(self, message: str, *, expected: int, received: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.received = received


class MalformedFrame(ProtocolError):
    """The bytes break the framing's own rules, whatever their size.

    For example a length field that counts fewer bytes than its header, a varint in more
    bytes than it needs, a netstring whose length has a leading zero or whose payload is
    not followed by its comma, or text that is not valid in its encoding.
    """


class HeaderTooLarge(ProtocolError):
    """A message header frame is larger than ``max_header_size``.

    Attributes:
        length: the length that was declared (``None`` if it was a header to send).
    """

    def __init__(self, message: str, *, length: int | None = None) -> None:
        super().__init__(message)
        self.length = length


class BadHeader(ProtocolError):
    """A message header is not a UTF-8 JSON object with a valid ``size`` (and ``sha256``)."""


class ChecksumMismatch(ProtocolError):
    """A message body's SHA-256 differs from the ``sha256`` its header announced.

    The framing itself is intact, so the stream can carry on with the next message; the
    body that was received must not be trusted.
    """

    terminal: ClassVar[bool] = False

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class InvalidText(ProtocolError):
    """A frame is not valid text in its encoding.

    The framing is intact, so the stream can carry on with the next frame.

    Attributes:
        frame: the frame's bytes.
        encoding: the encoding it was decoded with.
        position: the offset of the first byte that is not valid.
    """

    terminal: ClassVar[bool] = False

    def __init__(self, message: str, *, frame: bytes, encoding: str, position: int) -> None:
        super().__init__(message)
        self.frame = frame
        self.encoding = encoding
        self.position = position


class BufferTooSmall(FramekitError, ValueError):
    """The next frame does not fit in the buffer given to receive it into.

    Raised by :meth:`FramedStream.receive_into <framekit.FramedStream.receive_into>` and
    :meth:`FrameDecoder.take_into <framekit.FrameDecoder.take_into>` as soon as the
    frame's length is known, before any of it is consumed: the frame stays pending, and
    a later call with a buffer of at least :attr:`needed` bytes (or a plain
    ``receive()`` / ``next_frame()``) gets all of it. The stream stays usable.

    Attributes:
        needed: the frame's payload length, in bytes.
        size: the buffer's size, in bytes.
    """

    def __init__(self, message: str, *, needed: int, size: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.size = size


class ConnectError(FramekitError, OSError):
    """Could not open a connection, even after the allowed retries.

    Attributes:
        reason: what went wrong, a stable word for programs: ``name_resolution`` (the
            host name does not resolve), ``refused`` (nothing listens there),
            ``unreachable``, ``timeout`` (no answer), ``tls`` (the TLS handshake failed:
            a certificate, a host name, a protocol version), ``not_tls`` (TLS was asked
            for, but the server answers in plain text), ``tls_required`` (the server
            speaks TLS, and TLS was not asked for), ``no_greeting`` (connected, but no
            framekit greeting came), or ``other``.
        where: the ``host:port`` it was about (``""`` if unknown).
    """

    def __init__(self, message: str, *, reason: str = "other", where: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.where = where


class ListenError(FramekitError, OSError):
    """A server could not listen on its address (in use, not permitted, not local).

    Its message names the address (``tcp://127.0.0.1:9999``); ``errno`` is the
    system's.
    """


class UnsupportedPlatform(FramekitError):
    """This operating system lacks what a part of framekit needs, so it refuses to start.

    Raised at once, before anything is bound or run: by the command server
    (:func:`~framekit.serve`, :func:`~framekit.serve_commands`) where there are no POSIX
    process groups to kill a command's whole process tree (Windows). The codecs, the
    stream wrappers, the client and the UDP echo run everywhere.

    Attributes:
        feature: what cannot run (``"the command server"``).
        platform: the platform it was refused on (``sys.platform``: ``"win32"``).
    """

    def __init__(self, message: str, *, feature: str, platform: str) -> None:
        super().__init__(message)
        self.feature = feature
        self.platform = platform
