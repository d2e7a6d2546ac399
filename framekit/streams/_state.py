"""The one state machine every framekit stream wrapper shares.

Like the OK / BROKEN / CLOSED state of trio's ``SSLStream``, but kept per direction, since
a framed connection's two halves fail separately: a send cut off mid-frame leaves the
peer's reply still readable, and a peer that broke the framing can still be told why.

* **closed**: :meth:`close` was called; every later call raises
  :class:`trio.ClosedResourceError`.
* **send broken**: an exception (a failed transport, a cancellation, a body source that
  raised) escaped while bytes of a frame or message may have been written. The peer would
  read whatever comes next as the rest of it, so every later send raises
  :class:`trio.BrokenResourceError`.
* **receive broken**: the transport failed, or the peer broke the framing (a terminal
  :class:`~framekit.ProtocolError`, end of stream mid-frame included); every later receive
  raises it again. A cancelled receive breaks nothing: bytes already read stay decoded.
* **busy**: one task at a time per direction (:class:`trio.BusyResourceError`).

A wrapper checks before it starts and wraps the part that touches the transport in
:attr:`StreamState.sending` / :attr:`StreamState.receiving`, so each rule above is
written once, here.
"""

from __future__ import annotations

from types import TracebackType
from typing import Final, final

import trio

from .._errors import ProtocolError

__all__ = ["StreamState"]


@final
class _SendGuard:
    """``with state.sending:`` (reusable: it holds no state of its own)."""

    __slots__ = ("_state",)

    def __init__(self, state: StreamState) -> None:
        self._state = state

    def __enter__(self) -> None:
        state = self._state
        state.check_send()
        state.busy_sending = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        state = self._state
        state.busy_sending = False
        if exc is not None and state.send_error is None:
            state.send_error = exc


@final
class _ReceiveGuard:
    """``with state.receiving:`` (reusable)."""

    __slots__ = ("_state",)

    def __init__(self, state: StreamState) -> None:
        self._state = state

    def __enter__(self) -> None:
        state = self._state
        state.check_receive()
        state.busy_receiving = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        state = self._state
        state.busy_receiving = False
        if exc is not None and state.receive_error is None and _breaks_receiving(exc):
            state.receive_error = exc


def _breaks_receiving(exc: BaseException) -> bool:
    # Cancelled, EndOfChannel, a closed stream and ChecksumMismatch leave the framing
    # intact; a failed transport or broken framing does not.
    if isinstance(exc, ProtocolError):
        return exc.terminal
    return isinstance(exc, trio.BrokenResourceError | OSError)


@final
class StreamState:
    """Closed / broken / busy, for one wrapped stream (see the module docstring).

    Attributes:
        closed: :meth:`close` was called.
        send_error: why sending is broken, or ``None``.
        receive_error: why receiving is broken, or ``None``.
        busy_sending: a task is inside :attr:`sending`.
        busy_receiving: a task is inside :attr:`receiving`.
        sending: context manager around every write of a frame or message.
        receiving: context manager around every read that may suspend.
    """

    __slots__ = (
        "busy_receiving",
        "busy_sending",
        "closed",
        "name",
        "receive_error",
        "receiving",
        "send_error",
        "sending",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False
        self.send_error: BaseException | None = None
        self.receive_error: BaseException | None = None
        self.busy_sending = False
        self.busy_receiving = False
        self.sending: Final = _SendGuard(self)
        self.receiving: Final = _ReceiveGuard(self)

    @property
    def can_send(self) -> bool:
        """Neither closed nor broken for sending (whether or not a task is sending)."""
        return not self.closed and self.send_error is None

    def check_send_open(self) -> None:
        """Raise unless a send could be started (other tasks may be sending).

        Raises:
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: an earlier send broke off part-way.
        """
        if self.closed:
            raise trio.ClosedResourceError(f"this {self.name} was closed")
        if self.send_error is not None:
            raise trio.BrokenResourceError(
                f"this {self.name} cannot send: an earlier send failed or was cancelled "
                f"part-way ({_describe(self.send_error)}), so the peer would misread what "
                "follows; close it and open a new connection"
            ) from self.send_error

    def check_send(self) -> None:
        """:meth:`check_send_open`, and no other task sending.

        Raises:
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: an earlier send broke off part-way.
        """
        if self.busy_sending:
            raise trio.BusyResourceError(f"another task is already sending on this {self.name}")
        self.check_send_open()

    def check_receive(self) -> None:
        """Raise unless a receive could start now.

        Raises:
            trio.ClosedResourceError: the stream was closed.
            trio.BusyResourceError: another task is receiving.
            ProtocolError: the peer broke the framing earlier (the same error again).
            trio.BrokenResourceError: the transport failed earlier.
        """
        if self.closed:
            raise trio.ClosedResourceError(f"this {self.name} was closed")
        if self.busy_receiving:
            raise trio.BusyResourceError(f"another task is already receiving on this {self.name}")
        error = self.receive_error
        if error is not None:
            if isinstance(error, ProtocolError):
                raise error
            raise trio.BrokenResourceError(
                f"this {self.name} cannot receive: {_describe(error)}"
            ) from error

    def break_send(self, error: BaseException) -> None:
        """Mark sending broken (a frame was started but will never be finished)."""
        if self.send_error is None:
            self.send_error = error

    def close(self) -> None:
        """Mark the stream closed (idempotent)."""
        self.closed = True


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
