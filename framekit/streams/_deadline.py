"""A stream on which no send or receive waits past its deadline without progress."""

from __future__ import annotations

import math
import os
from collections.abc import Coroutine
from typing import Any, Final, final

import trio
from trio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled

from .._errors import FramekitError
from .._types import BytesLike, flat_bytes
from ._direct import DIRECT_WRITE, write_error

__all__ = ["SEND_PIECE", "DeadlineStream", "StreamTimeout"]

#: ``send_all`` hands the transport this many bytes at a time, each under a fresh
#: deadline: a peer that reads at least this much per ``send_timeout`` is making
#: progress. 256 KiB keeps the extra calls below 0.1 s per GiB here.
SEND_PIECE: Final = 256 * 1024


class StreamTimeout(FramekitError, trio.BrokenResourceError):
    """A send or receive made no progress before its deadline.

    It is a :class:`trio.BrokenResourceError` too: the peer is treated as gone, and a
    wrapper that was sending is broken for sending.

    Attributes:
        phase: what the connection was doing (``"waiting for a request"``, ...).
        direction: ``"send"`` or ``"receive"``.
        seconds: the time allowed.
    """

    def __init__(self, message: str, *, phase: str, direction: str, seconds: float) -> None:
        super().__init__(message)
        self.phase = phase
        self.direction = direction
        self.seconds = seconds


@final
class DeadlineStream(trio.abc.Stream):
    """Wraps a stream so no ``send_all`` or ``receive_some`` waits too long.

    Every ``receive_some`` must return within ``receive_timeout`` seconds; ``send_all``
    must hand each :data:`SEND_PIECE` bytes to the transport within ``send_timeout``
    seconds; and no wait of either kind may go past ``deadline``, an absolute
    :func:`trio.current_time` (for "the whole handshake within 10 s"). The owner changes
    them with :meth:`enter` as its phase changes, naming the phase so that the
    :class:`StreamTimeout` says what was being waited for. ``math.inf`` means no limit.

    Wrapped around a :class:`trio.SSLStream`, the TLS handshake (which runs inside the
    first send or receive) is bounded the same way.

    Each wait normally opens a cancel scope of its own. A phase entered with
    ``scope=`` moves the deadline of the owner's scope instead (see :meth:`enter`): a
    server holding thousands of idle connections then keeps one scope per connection
    rather than one per wait.

    Args:
        transport_stream: the stream to wrap.
        send_timeout: seconds a send may go without progress.
        receive_timeout: seconds a receive may wait for data.
        deadline: absolute time no wait may pass.
        phase: words for what the connection is doing, used in errors.

    Attributes:
        transport_stream: the wrapped stream.
    """

    __slots__ = (
        "_deadline_seconds",
        "_scope",
        "_sending",
        "deadline",
        "phase",
        "receive_timeout",
        "send_timeout",
        "transport_stream",
    )

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        *,
        send_timeout: float = math.inf,
        receive_timeout: float = math.inf,
        deadline: float = math.inf,
        phase: str = "talking to the peer",
    ) -> None:
        self.transport_stream = transport_stream
        self.send_timeout = send_timeout
        self.receive_timeout = receive_timeout
        self.deadline = deadline
        self.phase = phase
        self._deadline_seconds = math.inf  # what enter(within=...) allowed, for messages
        self._scope: trio.CancelScope | None = None  # the owner's, enforcing this phase
        self._sending = False

    def enter(
        self,
        phase: str,
        *,
        timeout: float,
        receive_timeout: float | None = None,
        within: float | None = None,
        scope: trio.CancelScope | None = None,
    ) -> None:
        """Start a new phase: its name, and the waits it allows.

        Args:
            phase: what the owner is doing now, for the error message.
            timeout: seconds a send (and, unless ``receive_timeout`` is given, a
                receive) may go without progress; ``math.inf`` for no limit.
            receive_timeout: seconds a receive may wait, if not ``timeout``.
            within: if given, no wait may end later than this many seconds from now,
                however much progress is made (for "the whole handshake in 10 s").
            scope: a cancel scope the caller holds entered around this phase's waits
                (in the task that waits). Its deadline is set here to ``within``'s, and
                put back to ``math.inf`` by the next :meth:`enter`; the phase's waits
                then open no scope of their own. When it fires, the wait raises
                ``Cancelled`` and ``scope`` absorbs it: the caller checks
                ``scope.cancelled_caught`` and reports :meth:`timeout_error`. For
                phases bounded by ``within`` alone (timeouts no shorter than it).

        Raises:
            ValueError: ``scope`` without ``within``, or with a shorter timeout.
        """
        receive = timeout if receive_timeout is None else receive_timeout
        if scope is not None and (within is None or min(timeout, receive) < within):
            raise ValueError("scope= enforces `within` alone: give it, and no shorter timeout")
        if self._scope is not None:
            self._scope.deadline = math.inf
            self._scope = None
        self.phase = phase
        self.send_timeout = timeout
        self.receive_timeout = receive
        if within is None:
            self.deadline = math.inf
        else:
            self.deadline = trio.current_time() + within
            self._deadline_seconds = within
        if scope is not None:
            scope.deadline = self.deadline
            self._scope = scope

    def _limit(self, timeout: float) -> float:
        deadline = self.deadline
        if timeout == math.inf:
            return deadline
        return min(trio.current_time() + timeout, deadline)

    def timeout_error(self) -> StreamTimeout:
        """What a receive that waited past this phase's deadline reports (for an owner
        whose ``scope`` fired; see :meth:`enter`)."""
        return self._expired("receive", self.receive_timeout)

    def _expired(self, direction: str, timeout: float) -> StreamTimeout:
        if trio.current_time() >= self.deadline:
            seconds = self._deadline_seconds
            message = f"the peer did not finish {self.phase} within {seconds:g} s"
        else:
            seconds = timeout
            verb = "sent nothing" if direction == "receive" else "read nothing"
            message = f"the peer {verb} for {seconds:g} s while {self.phase}"
        return StreamTimeout(message, phase=self.phase, direction=direction, seconds=seconds)

    def receive_some(self, max_bytes: int | None = None) -> Coroutine[Any, Any, bytes | bytearray]:
        """``transport_stream.receive_some`` within ``receive_timeout`` and ``deadline``.

        (A plain method returning the coroutine to await: when the owner's scope or no
        limit applies, the transport's own, with no frame of this stream's kept alive
        under every idle connection.)

        Raises:
            StreamTimeout: nothing arrived in time.
            trio.BrokenResourceError: the transport failed (and its other errors).
        """
        if self._scope is None:
            timeout = self.receive_timeout
            limit = self._limit(timeout)
            if limit != math.inf:
                return self._receive_within(limit, timeout, max_bytes)
        return self.transport_stream.receive_some(max_bytes)

    async def _receive_within(
        self, limit: float, timeout: float, max_bytes: int | None
    ) -> bytes | bytearray:
        with trio.CancelScope(deadline=limit):
            return await self.transport_stream.receive_some(max_bytes)
        raise self._expired("receive", timeout)

    async def send_all(self, data: BytesLike) -> None:
        """``transport_stream.send_all``, each :data:`SEND_PIECE` within ``send_timeout``.

        Raises:
            StreamTimeout: the peer stopped reading (no piece went out in time).
            trio.BrokenResourceError: the transport failed (and its other errors).
        """
        timeout = self.send_timeout
        if timeout == math.inf and self.deadline == math.inf:
            await self.transport_stream.send_all(data)
            return
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        view = flat_bytes(data, "data")
        size = len(view)
        if size <= SEND_PIECE:
            transport = self.transport_stream
            # A small send on plain TCP is written at once when the kernel has room:
            # no cancel scope is opened, so none is left in Trio's deadline heap (at
            # 10,000 connections, ~200 bytes each).
            if DIRECT_WRITE and type(transport) is trio.SocketStream:
                self._sending = True
                try:
                    sent = await _write_now(transport, view)
                finally:
                    self._sending = False
                if sent == size:
                    return
                view = memoryview(view)[sent:]
            with trio.CancelScope(deadline=self._limit(timeout)):
                await self.transport_stream.send_all(view)
                return
            raise self._expired("send", timeout)
        if not isinstance(view, memoryview):
            view = memoryview(view)
        for start in range(0, size, SEND_PIECE):
            with trio.CancelScope(deadline=self._limit(timeout)):
                await self.transport_stream.send_all(view[start : start + SEND_PIECE])
                continue
            raise self._expired("send", timeout)

    async def wait_send_all_might_not_block(self) -> None:
        """The transport's, within ``send_timeout`` and ``deadline``."""
        timeout = self.send_timeout
        with trio.CancelScope(deadline=self._limit(timeout)):
            await self.transport_stream.wait_send_all_might_not_block()
            return
        raise self._expired("send", timeout)

    async def aclose(self) -> None:
        """Close the transport stream, forcefully if a graceful close cannot finish in time.

        (A TLS close sends ``close_notify``, which waits on a peer that stopped reading.)
        """
        limit = self._limit(self.send_timeout)
        with trio.CancelScope(deadline=limit) as scope:
            await self.transport_stream.aclose()
        if scope.cancelled_caught:
            await trio.aclose_forcefully(self.transport_stream)


async def _write_now(stream: trio.SocketStream, data: BytesLike) -> int:
    """Write what the kernel takes of ``data`` at once; a full checkpoint, like
    ``send_all``, and the same errors. Returns the bytes written (0: no room)."""
    await checkpoint_if_cancelled()
    sock = stream.socket
    if sock.did_shutdown_SHUT_WR:
        raise trio.ClosedResourceError("can't send data after sending EOF")
    fd = sock.fileno()
    if fd < 0:
        raise trio.ClosedResourceError("this socket was already closed")
    try:
        sent = os.write(fd, data)
    except BlockingIOError:
        sent = 0
    except OSError as exc:
        raise write_error(sock, exc) from exc
    await cancel_shielded_checkpoint()
    return sent
