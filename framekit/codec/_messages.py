"""Sans-IO header + body messages: the tutorials' "custom header", done carefully.

A message is one frame holding a UTF-8 JSON object with at least ``size`` (the body's byte
count), followed by exactly ``size`` raw body bytes. An optional ``sha256`` (hex) is checked
when the body has been read. Unknown header keys are kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, final

from .._errors import (
    BadHeader,
    ChecksumMismatch,
    FrameTooLarge,
    HeaderTooLarge,
    IncompleteFrame,
    InvalidFormat,
    LocalProtocolError,
    ProtocolError,
)
from .._types import BytesLike, flat_bytes
from ._format import DEFAULT_FORMAT, FrameFormat
from ._frames import END_OF_STREAM, NEED_DATA, FrameDecoder, FrameEncoder, Sentinel

__all__ = [
    "DEFAULT_MAX_HEADER_SIZE",
    "BodyChunk",
    "EndOfMessage",
    "Header",
    "MessageDecoder",
    "MessageEncoder",
]

#: 64 KiB: headers are small JSON objects; anything bigger is a mistake or an attack.
DEFAULT_MAX_HEADER_SIZE: Final = 64 * 1024

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded message header: the JSON object, with ``size`` validated.

    Attributes:
        fields: the whole JSON object, unknown keys included.
    """

    fields: dict[str, Any]

    @property
    def size(self) -> int:
        """The body's length in bytes."""
        size: int = self.fields["size"]
        return size

    @property
    def sha256(self) -> str | None:
        """The announced SHA-256 of the body (lower-case hex), if any."""
        value = self.fields.get("sha256")
        return None if value is None else str(value).lower()

    def get(self, key: str, default: Any = None) -> Any:
        """``fields.get(key, default)``."""
        return self.fields.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


@dataclass(frozen=True, slots=True)
class BodyChunk:
    """Some bytes of the current message's body, in order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The body is complete (and, if announced, its SHA-256 matched).

    Attributes:
        header: the header of the message that just ended.
        sha256: the body's SHA-256 as hex, when one was computed (the header asked for it).
    """

    header: Header
    sha256: str | None = field(default=None)


MessageEvent = Header | BodyChunk | EndOfMessage


def _validate_header(fields: Any, *, max_body_size: int | None) -> Header:
    if not isinstance(fields, dict):
        raise BadHeader(f"message header must be a JSON object, got {type(fields).__name__}")
    if "size" not in fields:
        raise BadHeader("message header has no 'size' key (the body's byte count)")
    size = fields["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadHeader(f"message header 'size' must be a non-negative integer, not {size!r}")
    if max_body_size is not None and size > max_body_size:
        raise FrameTooLarge(
            f"message body of {size} bytes is over max_body_size ({max_body_size} bytes)",
            length=size,
            limit=max_body_size,
        )
    sha = fields.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256_HEX.fullmatch(sha)):
        raise BadHeader(f"message header 'sha256' must be 64 hex digits, not {sha!r}")
    return Header(fields)


@functools.lru_cache(maxsize=64)
def _header_format(format: FrameFormat, limit: int) -> FrameFormat:
    """``format`` with its frame limit replaced by the header limit.

    Raises:
        InvalidFormat: ``format`` is not a plain length prefix (a message's body follows
            its header frame raw, so the header frame must be a bare length + payload).
    """
    if not format.plain:
        raise InvalidFormat(
            "messages need a plain length prefix (no offset, adjust, strip or discarding); "
            f"{format.spec!r} is not one"
        )
    return FrameFormat(
        width=format.width, byteorder=format.byteorder, signed=format.signed, max_frame_size=limit
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads / json.dumps with options construct a new coder on every call.
_JSON_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_JSON_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@final
class MessageEncoder:
    """Encodes headers (and whole messages) for the header + body layer.

    Args:
        format: frame format of the header frame.
        max_header_size: largest encoded header accepted (default 64 KiB).
    """

    __slots__ = ("_frames", "max_header_size")

    def __init__(
        self,
        format: FrameFormat = DEFAULT_FORMAT,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    ) -> None:
        # The header frame is limited by max_header_size, not by the format's frame
        # limit: the same rule MessageDecoder applies on the receiving side.
        self.max_header_size = min(max_header_size, format.field_max)
        self._frames = FrameEncoder(_header_format(format, self.max_header_size))

    def header(self, header: Mapping[str, Any], *, size: int | None = None) -> bytes:
        """The header frame for a body of ``size`` bytes (default: ``header["size"]``).

        Raises:
            LocalProtocolError: no usable ``size``, or the header is not JSON-serialisable.
            HeaderTooLarge: the encoded header is over ``max_header_size``.
        """
        fields = dict(header)
        if size is not None:
            fields["size"] = size
        try:
            _validate_header(fields, max_body_size=None)
        except BadHeader as exc:
            raise LocalProtocolError(f"cannot send this header: {exc}") from None
        try:
            raw = _JSON_ENCODER.encode(fields).encode()
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"message header is not JSON-serialisable: {exc}") from exc
        if len(raw) > self.max_header_size:
            raise HeaderTooLarge(
                f"encoded header is {len(raw)} bytes, over max_header_size "
                f"({self.max_header_size} bytes); move bulky data into the body"
            )
        return self._frames.encode(raw)

    def message(
        self, header: Mapping[str, Any], body: BytesLike = b"", *, checksum: bool = False
    ) -> bytes:
        """A whole message: header frame (``size`` filled in) followed by ``body``.

        Args:
            checksum: add the body's ``sha256`` to the header.
        """
        body = flat_bytes(body, "body")
        fields = dict(header)
        if checksum:
            fields["sha256"] = hashlib.sha256(body).hexdigest()
        return self.header(fields, size=len(body)) + body


@final
class MessageDecoder:
    """Decodes header + body messages from a byte stream fed in any chunking.

    :meth:`next_event` returns, for each message, one :class:`Header`, zero or more
    :class:`BodyChunk`, then :class:`EndOfMessage` - so a body of many gigabytes passes
    through in bounded memory. Protocol errors leave the decoder broken for good, except
    :class:`ChecksumMismatch`, after which the stream can carry on with the next message.

    Args:
        format: frame format of the header frame (its ``max_frame_size`` is ignored).
        max_header_size: largest header frame accepted (default 64 KiB).
        max_body_size: largest ``size`` accepted (default: no limit, bodies are streamed).
    """

    __slots__ = ("_body_left", "_frames", "_hash", "_header", "max_body_size", "max_header_size")

    def __init__(
        self,
        format: FrameFormat = DEFAULT_FORMAT,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_body_size: int | None = None,
    ) -> None:
        header_limit = min(max_header_size, format.field_max)
        self._frames = FrameDecoder(_header_format(format, header_limit))
        self.max_header_size = header_limit
        self.max_body_size = max_body_size
        self._header: Header | None = None  # set while a body is being read
        self._body_left = 0
        self._hash: Any = None

    def receive_data(self, data: BytesLike) -> None:
        """Store received bytes; ``b""`` marks the end of the stream."""
        self._frames.receive_data(data)

    def fail(self, error: ProtocolError) -> ProtocolError:
        """Put the decoder in its error state with ``error`` (for layers built on top)."""
        return self._frames.fail(error)

    @property
    def in_body(self) -> bool:
        """Whether a header has been returned and its body is not finished yet."""
        return self._header is not None

    @property
    def body_remaining(self) -> int:
        """Body bytes of the current message not yet returned."""
        return self._body_left

    @property
    def at_eof(self) -> bool:
        """Whether the end of the stream has been received."""
        return self._frames.at_eof

    def next_event(
        self,
    ) -> MessageEvent | Literal[Sentinel.NEED_DATA, Sentinel.END_OF_STREAM]:
        """The next :class:`Header`, :class:`BodyChunk` or :class:`EndOfMessage`.

        Returns:
            An event, :data:`NEED_DATA`, or :data:`END_OF_STREAM` after a clean end between
            messages.

        Raises:
            HeaderTooLarge: a header frame is over ``max_header_size``.
            BadHeader: a header is not a JSON object with a valid ``size`` / ``sha256``.
            FrameTooLarge: a ``size`` is over ``max_body_size``.
            IncompleteFrame: the stream ended inside a header or a body.
            ChecksumMismatch: a body did not match its announced ``sha256``.
        """
        header = self._header
        if header is None:
            return self._next_header()
        if self._body_left:
            data = self._frames.read_raw(self._body_left)
            if data:
                self._body_left -= len(data)
                if self._hash is not None:
                    self._hash.update(data)
                return BodyChunk(data)
            if not self._frames.at_eof:
                return NEED_DATA
            size = header.size
            got = size - self._body_left
            raise self._frames.fail(
                IncompleteFrame(
                    f"stream ended in a message body after {got} of {size} bytes",
                    expected=size,
                    received=got,
                )
            )
        self._header = None
        digest = None
        if self._hash is not None:
            digest = self._hash.hexdigest()
            self._hash = None
            if digest != header.sha256:
                raise ChecksumMismatch(
                    f"message body SHA-256 is {digest}, but its header announced "
                    f"{header.sha256}; the body was corrupted or tampered with",
                    expected=str(header.sha256),
                    actual=digest,
                )
        return EndOfMessage(header, digest)

    def _next_header(self) -> Header | Literal[Sentinel.NEED_DATA, Sentinel.END_OF_STREAM]:
        frames = self._frames
        if frames._error is not None:  # broken already: the same error again, unchanged
            raise frames._error
        try:
            raw = frames.next_frame()
        except FrameTooLarge as exc:
            what = (
                f"a negative header length ({exc.length})"
                if exc.length < 0
                else f"a {exc.length}-byte message header, over max_header_size "
                f"({self.max_header_size} bytes)"
            )
            raise frames.fail(HeaderTooLarge(f"peer sent {what}", length=exc.length)) from None
        if raw is NEED_DATA or raw is END_OF_STREAM:
            return raw
        try:
            fields = _JSON_DECODER.decode(raw.decode())
        except (ValueError, RecursionError) as exc:
            preview = raw[:40]
            raise self._frames.fail(
                BadHeader(f"message header is not UTF-8 JSON ({exc}); it starts {preview!r}")
            ) from None
        try:
            header = _validate_header(fields, max_body_size=self.max_body_size)
        except (BadHeader, FrameTooLarge) as exc:
            raise self._frames.fail(exc) from None
        self._header = header
        self._body_left = header.size
        self._hash = hashlib.sha256() if header.sha256 is not None else None
        return header
