"""Server-side file transfer: names confined to one directory, atomic verified uploads.

Every file-system call runs on a worker thread, so a slow or hung disk (an NFS mount
that stopped answering) holds up only the transfer that touches it, never the event
loop and the other connections.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import trio

from ..streams import IncomingMessage
from ._protocol import TEMP_PREFIX, BadRequest, ErrorCode, validate_name

__all__ = ["UploadDirectory", "refusal_for"]

T = TypeVar("T")


async def _in_thread(fn: Callable[..., T], *args: object) -> T:
    # abandon_on_cancel: a cancelled connection (a deadline, a shutdown) does not wait for
    # a call stuck in the kernel; the call's result is simply dropped.
    return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)


#: Errors that mean "this name cannot be used" (a parent that is a file, a directory in
#: the way, a name too long for the file system): the client's to fix.
_UNUSABLE_NAME = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.ELOOP,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.EINVAL,
    }
)


def refusal_for(exc: OSError, name: str, *, storing: bool) -> BadRequest:
    """The error reply for an ``OSError`` met while storing (``put``) or reading file
    ``name``: never ``internal`` for what the name itself causes."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    if code in _UNUSABLE_NAME:
        if storing:
            return BadRequest(f"cannot store a file named {name!r}: {reason}")
        if code == errno.EISDIR:
            return BadRequest(f"{name!r} is a directory, not a file")
        return BadRequest(f"no file named {name!r} in the upload directory", ErrorCode.NOT_FOUND)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BadRequest(
            f"the server may not {'write' if storing else 'read'} {name!r}: {reason}",
            ErrorCode.NOT_ALLOWED,
        )
    if code in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOSPC, errno.EDQUOT):
        return BadRequest(
            f"the server is short of resources ({reason}); try again later", ErrorCode.BUSY
        )
    return BadRequest(f"file error on {name!r}: {reason}", ErrorCode.INTERNAL)


class UploadDirectory:
    """The one directory ``put`` and ``get`` may touch.

    Every name is checked by :func:`~framekit.remote._protocol.validate_name` and then
    resolved: the real path (symlinks followed) must stay inside the directory. Uploads
    go to a temporary file (named with the reserved :data:`TEMP_PREFIX`) in the target's
    directory, are fsynced, and are renamed into place only once their size and SHA-256
    match, so a broken or bad transfer, a crash or a power loss leaves no partial file
    under the final name.

    Open it with :meth:`open`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    async def open(cls, root: str | os.PathLike[str]) -> UploadDirectory:
        """Resolve ``root`` (it must be an existing directory).

        Raises:
            FileNotFoundError / NotADirectoryError: it is missing or not a directory.
        """
        real = await _in_thread(Path(root).resolve, True)
        if not await _in_thread(real.is_dir):
            raise NotADirectoryError(f"upload directory {real} is not a directory")
        return cls(real)

    async def remove_stale_uploads(self) -> list[Path]:
        """Delete temporary files a killed server left behind; return their paths.

        Only one server may use an upload directory: another one's uploads in progress
        would be deleted too.
        """
        return await _in_thread(self._remove_stale)

    def _remove_stale(self) -> list[Path]:
        removed = []
        for folder, _dirs, files in os.walk(self.root):
            for file in files:
                if file.startswith(TEMP_PREFIX):
                    path = Path(folder, file)
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed.append(path)
        return removed

    def _inside(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    async def resolve_for_get(self, name: str) -> Path:
        """The real path of an existing regular file ``name``.

        Raises:
            BadRequest: ``not_found`` if missing, not a regular file or outside the root;
                ``bad_request`` for a name the file system refuses.
        """
        validate_name(name)
        try:
            return await _in_thread(self._resolve_for_get, name)
        except OSError as exc:
            raise refusal_for(exc, name, storing=False) from None

    def _resolve_for_get(self, name: str) -> Path:
        real = (self.root / name).resolve()
        if not self._inside(real) or not real.is_file():
            raise BadRequest(f"no file named {name!r} in the upload directory", ErrorCode.NOT_FOUND)
        return real

    def _prepare_put(self, name: str) -> tuple[Path, int, Path]:
        """(final path, temporary file descriptor, temporary path) for an upload."""
        target = self.root / name
        parent = target.parent.resolve()
        if not self._inside(parent):
            raise BadRequest(
                f"file name {name!r} leads outside the upload directory", ErrorCode.NOT_ALLOWED
            )
        parent.mkdir(parents=True, exist_ok=True)
        parent = target.parent.resolve()  # re-check: mkdir may have met a symlink
        if not self._inside(parent):
            raise BadRequest(
                f"file name {name!r} leads outside the upload directory", ErrorCode.NOT_ALLOWED
            )
        final = parent / target.name
        if final.is_dir():
            raise BadRequest(f"cannot store a file named {name!r}: it is a directory")
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=TEMP_PREFIX)
        return final, fd, Path(tmp)

    async def receive_upload(self, name: str, message: IncomingMessage) -> Path:
        """Write the body of ``message`` to ``name`` atomically.

        The message's decoder enforces the body's ``size`` and verifies its ``sha256``
        (required for uploads) after the last chunk; only then is the temporary file
        fsynced and renamed into place, and the directory fsynced. The caller's deadline
        bounds every wait for the body.

        Raises:
            BadRequest: the name is unsafe or unusable, or the header has no ``sha256``;
                nothing of the body has been read then.
            ChecksumMismatch: the body does not match its ``sha256``; nothing was stored.
        """
        if message.header.sha256 is None:
            raise BadRequest("a 'put' request needs the body's 'sha256'")
        validate_name(name)
        try:
            final, fd, tmp = await _in_thread(self._prepare_put, name)
        except OSError as exc:
            raise refusal_for(exc, name, storing=True) from None
        try:
            async with trio.wrap_file(os.fdopen(fd, "wb")) as out:
                async for chunk in message:
                    await out.write(chunk)
                await out.flush()
                await _in_thread(os.fsync, out.fileno())
            await _in_thread(os.replace, tmp, final)
            await _in_thread(_fsync_directory, final.parent)
        except BaseException:
            with trio.CancelScope(shield=True), contextlib.suppress(OSError):
                await trio.to_thread.run_sync(tmp.unlink)
            raise
        return final


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (where directories can be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
