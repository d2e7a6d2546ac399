"""Server-side file transfer: names confined to one directory, atomic verified uploads."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Final

import trio

from ._errors import FramekitError
from ._message_stream import IncomingMessage
from ._protocol import BadRequest, ErrorCode

__all__ = ["BodyStalled", "UploadDirectory"]

#: Prefix of temporary upload files: hidden, and recognisable if a crash leaves one.
TEMP_PREFIX: Final = ".framekit-upload-"


class BodyStalled(FramekitError):
    """A client stopped sending in the middle of a message body; the connection is closed."""


class UploadDirectory:
    """The one directory ``put`` and ``get`` may touch.

    Every name is checked by :func:`~framekit._protocol.validate_name` and then resolved:
    the real path (symlinks followed) must stay inside the directory. Uploads go to a
    temporary file in the target's directory and are renamed into place only once their
    size and SHA-256 match, so a broken or bad transfer leaves nothing behind.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"upload directory {self.root} is not a directory")

    def _inside(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    def resolve_for_get(self, name: str) -> Path:
        """The real path of an existing file ``name``.

        Raises:
            BadRequest: ``not_found`` if missing, not a regular file, or outside the root.
        """
        real = (self.root / name).resolve()
        if not self._inside(real) or not real.is_file():
            raise BadRequest(f"no file named {name!r} in the upload directory", ErrorCode.NOT_FOUND)
        return real

    def _parent_for_put(self, name: str) -> Path:
        target = self.root / name
        parent = target.parent.resolve()
        if not self._inside(parent):
            raise BadRequest(
                f"file name {name!r} leads outside the upload directory", ErrorCode.NOT_ALLOWED
            )
        return parent

    async def receive_upload(
        self, name: str, message: IncomingMessage, *, stall_timeout: float = math.inf
    ) -> Path:
        """Write the body of ``message`` to ``name`` atomically.

        The message's decoder enforces the body's ``size`` and verifies its ``sha256``
        (required for uploads) after the last chunk; only then is the temporary file
        renamed into place. The body is consumed even when the name is refused, so the
        connection stays in step.

        Raises:
            BadRequest: the name is unsafe or the header has no ``sha256``.
            ChecksumMismatch: the body does not match its ``sha256``; nothing was stored.
            BodyStalled: no body bytes for ``stall_timeout`` seconds; nothing was stored.
        """
        try:
            if message.header.sha256 is None:
                raise BadRequest("a 'put' request needs the body's 'sha256'")
            parent = self._parent_for_put(name)
            await trio.Path(parent).mkdir(parents=True, exist_ok=True)
            parent = self._parent_for_put(name)  # re-check: mkdir may have met a symlink
        except BadRequest:
            await message.discard()
            raise
        final = parent / Path(name).name
        fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=TEMP_PREFIX)
        tmp = Path(tmp_name)
        try:
            async with trio.wrap_file(os.fdopen(fd, "wb")) as out:
                while True:
                    with trio.move_on_after(stall_timeout) as stall:
                        chunk = await anext(message, None)
                    if stall.cancelled_caught:
                        raise BodyStalled(f"upload stalled: no data for {stall_timeout:g} s")
                    if chunk is None:
                        break
                    await out.write(chunk)
            await trio.to_thread.run_sync(os.replace, tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()  # noqa: ASYNC240 (one unlink on the error path; must not be cancelled)
            raise
        return final
