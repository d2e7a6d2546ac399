"""Sans-IO rules of the remote-command protocol: message shapes, validation, auth.

Everything here is pure: it builds and checks header dictionaries and computes MACs.
The server connection and the client in this package move them. See
``docs/protocol.md`` for the wire-level description.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from .._errors import FramekitError, RemoteProtocolError

__all__ = [
    "DEFAULT_PORT",
    "FEATURES",
    "FINAL_REPLIES",
    "NAME_MAX",
    "PROTOCOL_VERSION",
    "STDIN_CHUNK_MAX",
    "TEMP_PREFIX",
    "AuthenticationError",
    "ErrorCode",
    "FileRequest",
    "PingRequest",
    "RemoteError",
    "Request",
    "RunRequest",
    "compute_mac",
    "error_header",
    "new_nonce",
    "parse_hello",
    "parse_request",
    "reply_id",
    "validate_name",
]

#: The tutorials' port.
DEFAULT_PORT: Final = 9999

#: Version 1 is the first and only one; a server refuses a client that asks for another.
PROTOCOL_VERSION: Final = 1
#: Domain-separation prefix so a MAC made for framekit cannot be replayed elsewhere.
_MAC_CONTEXT: Final = b"framekit-auth-v1:"
#: 32 random bytes: the nonce is never reused in practice (birthday bound 2**128).
NONCE_BYTES: Final = 32
#: Longest name component, in UTF-8 bytes: NAME_MAX of Linux, macOS and Windows' NTFS.
NAME_MAX: Final = 255
#: Longest whole name, in UTF-8 bytes: PATH_MAX of Linux, less room for the directory.
_NAME_BYTES_MAX: Final = 4000
#: Prefix of the server's temporary upload files: reserved, so no client can name one.
TEMP_PREFIX: Final = ".framekit-upload-"
#: Optional parts of protocol 1 that a server's greeting lists under ``features``.
FEATURES: Final = ("ping", "stdin")
#: Largest body of one ``stdin`` message (a client sends at most 64 KiB at a time).
STDIN_CHUNK_MAX: Final = 1024 * 1024
#: Reply types that end a request (after ``output`` messages, for ``run``).
FINAL_REPLIES: Final = frozenset({"exit", "error", "stored", "file", "pong"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ErrorCode(enum.StrEnum):
    """Stable error codes carried in ``{"type": "error", "code": ...}`` messages."""

    BAD_REQUEST = "bad_request"
    AUTH_FAILED = "auth_failed"
    NOT_ALLOWED = "not_allowed"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    BUSY = "busy"
    NOT_FOUND = "not_found"
    NOT_EXECUTABLE = "not_executable"
    INTERNAL = "internal"


class RemoteError(FramekitError):
    """The server answered a request with an error message.

    Attributes:
        code: one of :class:`ErrorCode` (kept as a plain string if the server sent an
            unknown one).
        request_id: the request it answers, if any.
    """

    def __init__(self, code: str, message: str, *, request_id: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class AuthenticationError(RemoteError):
    """The server refused our token (``auth_failed``) or wants one we do not have."""


def error_header(code: ErrorCode, message: str, request_id: Any = None) -> dict[str, Any]:
    """The header of an error message."""
    header: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
    if request_id is not None:
        header["id"] = request_id
    return header


def new_nonce() -> str:
    """A fresh random challenge, as hex."""
    return secrets.token_hex(NONCE_BYTES)


def compute_mac(token: str, nonce: str) -> str:
    """HMAC-SHA256 of the nonce under the token, as hex: what the client answers."""
    return hmac.new(token.encode(), _MAC_CONTEXT + bytes.fromhex(nonce), hashlib.sha256).hexdigest()


def check_mac(token: str, nonce: str, mac: object) -> bool:
    """Whether ``mac`` answers the challenge (constant-time comparison).

    Anything but 64 lower-case hex digits is simply wrong (never an exception: a client
    may send any JSON value, a lone surrogate included).
    """
    if not isinstance(mac, str) or not _HEX64.fullmatch(mac):
        return False
    return hmac.compare_digest(compute_mac(token, nonce).encode(), mac.encode())


def parse_hello(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check a server's greeting (client side); return it as a plain dict.

    Raises:
        RemoteError: the server refused us instead (``busy``, ...).
        RemoteProtocolError: it is not a protocol-1 greeting, or its challenge is malformed.
    """
    raise_if_error(fields)
    if fields.get("type") != "hello" or fields.get("protocol") != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            f"not a framekit server of protocol {PROTOCOL_VERSION}: it greeted with "
            f"{_preview(fields)}"
        )
    auth = fields.get("auth")
    if auth == "hmac-sha256":
        nonce = fields.get("nonce")
        if not isinstance(nonce, str) or not _HEX64.fullmatch(nonce.lower()):
            raise RemoteProtocolError(
                f"the server's challenge is malformed (nonce {_preview(nonce)}, expected "
                "64 hex digits)"
            )
    elif auth != "none":
        raise RemoteProtocolError(f"the server asks for unknown authentication {_preview(auth)}")
    return dict(fields)


def raise_if_error(fields: Mapping[str, Any]) -> None:
    """Raise the :class:`RemoteError` an ``error`` message stands for; else nothing."""
    if fields.get("type") != "error":
        return
    code = str(fields.get("code", ErrorCode.INTERNAL))
    message = str(fields.get("message", ""))
    cls = AuthenticationError if code == ErrorCode.AUTH_FAILED else RemoteError
    raise cls(code, message, request_id=fields.get("id"))


def _preview(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_utf8(text: str) -> bool:
    """Whether ``text`` can be encoded (JSON admits lone surrogates; argv and paths not)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# -- requests -------------------------------------------------------------------------


class BadRequest(FramekitError):
    """A request that breaks the protocol; becomes a ``bad_request`` error message."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Run a program: ``argv`` without a shell, or ``shell`` (a string) if the server allows it.

    Its stdin is the request's body (``stdin_size`` bytes), or, with ``stdin_stream``,
    the ``stdin`` messages that follow the request while the command runs.
    """

    id: Any
    argv: tuple[str, ...] | None
    shell: str | None
    timeout: float | None
    stdin_size: int
    stdin_stream: bool = False

    @property
    def program(self) -> str:
        """argv[0], or the shell command's first word, for logs and allowlists."""
        if self.argv is not None:
            return self.argv[0]
        assert self.shell is not None
        words = self.shell.split()
        return words[0] if words else ""


@dataclass(frozen=True, slots=True)
class FileRequest:
    """``put`` (upload: the body is the file) or ``get`` (download) of one file by name."""

    id: Any
    kind: Literal["put", "get"]
    name: str
    size: int
    sha256: str | None


@dataclass(frozen=True, slots=True)
class PingRequest:
    """``ping``: answered at once with ``pong`` (a keep-alive, and a round trip through
    the whole connection without starting anything)."""

    id: Any


Request = RunRequest | FileRequest | PingRequest

_ID_OK = (int, str)
_NAME_PART = re.compile(r"[^/\\\x00]+")


def reply_id(header: Mapping[str, Any]) -> int | str | None:
    """The ``id`` to repeat in replies to ``header``: its own if valid, else none."""
    try:
        rid: int | str | None = _request_id(header)
    except BadRequest:
        return None
    return rid


def _request_id(header: Mapping[str, Any]) -> Any:
    rid = header.get("id")
    if rid is None or (isinstance(rid, _ID_OK) and not isinstance(rid, bool)):
        if isinstance(rid, str) and (len(rid) > 200 or not _is_utf8(rid)):
            raise BadRequest("'id' must be valid Unicode of at most 200 characters")
        if isinstance(rid, int) and not -(2**63) <= rid < 2**63:
            raise BadRequest("an integer 'id' must fit in 64 bits")
        return rid
    raise BadRequest(f"'id' must be an integer or a string, not {_preview(rid)}")


def validate_name(name: object) -> str:
    """Check a file name sent by a client: relative, no ``..``, no NUL, no backslash.

    The server also resolves it and checks it stays inside its directory (symlinks);
    this check is the first, pure line of defence.

    Raises:
        BadRequest: the name is unsafe or malformed: absolute, with an empty, ``.`` or
            ``..`` component, a NUL, a backslash, a lone surrogate, a component over
            :data:`NAME_MAX` bytes, or the server's reserved :data:`TEMP_PREFIX`.
    """
    if not isinstance(name, str) or not name:
        raise BadRequest("'name' must be a non-empty string")
    if not _is_utf8(name):
        raise BadRequest(f"file name {name!r} is not valid Unicode (a lone surrogate)")
    if len(name.encode()) > _NAME_BYTES_MAX:
        raise BadRequest(f"'name' is longer than {_NAME_BYTES_MAX} bytes")
    if name.startswith("/"):
        raise BadRequest(
            f"file name {name!r} is absolute; names are relative to the upload directory"
        )
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadRequest(f"file name {name!r} has an empty, '.' or '..' component")
        if not _NAME_PART.fullmatch(part):
            raise BadRequest(f"file name {name!r} has a NUL or backslash")
        if len(part.encode()) > NAME_MAX:
            raise BadRequest(f"file name {_preview(name)} has a component over {NAME_MAX} bytes")
        if part.startswith(TEMP_PREFIX):
            raise BadRequest(f"names starting with {TEMP_PREFIX!r} are reserved for the server")
    return name


def parse_request(header: Mapping[str, Any], *, max_timeout: float) -> Request:
    """Validate a request header from a client.

    Raises:
        BadRequest: unknown type, wrong field types, or values out of range.
    """
    rid = _request_id(header)
    kind = header.get("type")
    size = header.get("size", 0)
    if kind == "run":
        argv = header.get("argv")
        shell = header.get("shell")
        if (argv is None) == (shell is None):
            raise BadRequest("a 'run' request needs exactly one of 'argv' (a list) or 'shell'")
        if argv is not None:
            if (
                not isinstance(argv, list)
                or not argv
                or not all(isinstance(a, str) and "\x00" not in a for a in argv)
            ):
                raise BadRequest("'argv' must be a non-empty list of strings without NUL")
            if not all(_is_utf8(a) for a in argv):
                raise BadRequest(
                    "'argv' holds a string that is not valid Unicode (a lone surrogate)"
                )
            if not argv[0]:
                raise BadRequest("'argv[0]' must not be empty")
        if shell is not None and (
            not isinstance(shell, str)
            or not shell.strip()
            or "\x00" in shell
            or not _is_utf8(shell)
        ):
            raise BadRequest("'shell' must be a non-empty string without NUL, in valid Unicode")
        timeout = header.get("timeout")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise BadRequest(f"'timeout' must be a number of seconds, not {_preview(timeout)}")
            try:
                seconds = float(timeout)
            except OverflowError:  # an integer beyond any float: JSON allows 4300 digits
                seconds = math.inf
            if not (math.isfinite(seconds) and seconds > 0):
                raise BadRequest(
                    f"'timeout' must be a positive number of seconds, not {_preview(timeout)}"
                )
            timeout = min(seconds, max_timeout)
        stdin = header.get("stdin")
        if stdin not in (None, "stream"):
            raise BadRequest(f"'stdin' must be \"stream\" if given, not {_preview(stdin)}")
        if stdin == "stream" and size:
            raise BadRequest("a run request with a streamed stdin has no body")
        return RunRequest(
            id=rid,
            argv=tuple(argv) if argv is not None else None,
            shell=shell,
            timeout=timeout,
            stdin_size=size,
            stdin_stream=stdin == "stream",
        )
    if kind == "ping":
        if size:
            raise BadRequest("a 'ping' request has no body")
        return PingRequest(id=rid)
    if kind in ("put", "get"):
        name = validate_name(header.get("name"))
        if kind == "get" and size:
            raise BadRequest("a 'get' request has no body")
        return FileRequest(id=rid, kind=kind, name=name, size=size, sha256=header.get("sha256"))
    raise BadRequest(
        f"unknown request type {_preview(kind)}; expected 'run', 'put', 'get', 'ping' or 'cancel'"
    )
