"""One connection of the command server: handshake, requests, and its one deadline.

Every byte this connection reads or writes goes through one
:class:`~framekit.DeadlineStream`. The connection only names its phase and the time the
phase allows (:meth:`DeadlineStream.enter`); the stream enforces it on every wait:

=================================  ====================================================
phase                              rule
=================================  ====================================================
TLS handshake, hello, auth         all of it within ``handshake_timeout`` of accepting
waiting for a request              the whole header within ``idle_timeout``
reading a body (stdin, upload,     each read within ``idle_timeout`` (progress)
discarding a refused body)
running a command                  output sends within ``idle_timeout`` (progress); the
                                   client may stay silent (the command's own timeout)
sending a reply or a file          each 256 KiB within ``idle_timeout`` (progress)
closing (an error, then linger)    within ``CLOSING_TIME``
=================================  ====================================================

A peer that misses one gets :class:`~framekit.StreamTimeout`: a ``timeout`` error if it
can still be told, one log line, and the connection closed.
"""

from __future__ import annotations

import errno
import logging
import math
import ssl
from collections.abc import Sequence
from typing import Any, Final

import trio

from .._errors import ChecksumMismatch, FramekitError, FrameTooLarge, HeaderTooLarge, ProtocolError
from .._version import __version__
from ..streams import DeadlineStream, IncomingMessage, MessageStream, StreamTimeout
from ._files import UploadDirectory, refusal_for
from ._log_text import escape, shell_words, show
from ._processes import CommandOutcome, run_command_streaming
from ._protocol import (
    FEATURES,
    PROTOCOL_VERSION,
    STDIN_CHUNK_MAX,
    BadRequest,
    ErrorCode,
    FileRequest,
    PingRequest,
    RunRequest,
    check_mac,
    error_header,
    new_nonce,
    parse_request,
    reply_id,
)
from ._shared import SharedState

__all__ = ["Connection"]

log = logging.getLogger("framekit.server")

#: Seconds a command runs before the server starts watching its client for ``cancel``
#: or a hang-up: most commands end sooner, and a watcher task costs ~0.15 ms of CPU.
WATCH_AFTER: Final = 0.05
#: Body bytes the server reads and drops to answer a refused request and keep the
#: connection; a refused body larger than this is not read: the connection is closed
#: after the error. 2 MiB, as Tomcat's maxSwallowSize.
MAX_DISCARD: Final = 2 * 1024 * 1024
#: Seconds for last words: an error message to a peer that is being dropped, and the
#: lingering read after it (so the peer's unread data does not reset the connection
#: before it reads the error).
CLOSING_TIME: Final = 2.0
#: Bytes read and dropped while lingering.
_LINGER_BYTES: Final = 4 * 1024 * 1024
#: Errors starting a command that mean the server is short of descriptors, memory or
#: processes, not that the program is wrong: ``busy``, as for files.
_SPAWN_SHORTAGE: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN})


def _looks_like_tls(length: int | None) -> bool:
    """Whether a declared header length is really the start of a TLS record (handshake
    record type 0x16, protocol major version 3)."""
    return length is not None and length >> 24 == 0x16 and (length >> 16) & 0xFF == 0x03


def _tls_reason(error: ssl.SSLError) -> str:
    if error.reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        return "the client does not speak TLS (it sent plain text)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate not accepted ({error.verify_message})"
    if error.reason == "UNEXPECTED_EOF_WHILE_READING":
        return "the client closed the connection during the handshake"
    return error.reason or str(error)


def _cancelled_exit(
    request: RunRequest, elapsed: float, reason: str, limit: float | None
) -> dict[str, Any]:
    """The ``exit`` message of a command that was stopped before it ended."""
    return {
        "type": "exit",
        "id": request.id,
        "status": "cancelled",
        "reason": reason,
        "returncode": None,
        "signal": None,
        "duration": round(elapsed, 6),
        "stdout_bytes": 0,
        "stderr_bytes": 0,
        "truncated": False,
        "timeout_limit": limit,
    }


class _Logged(FramekitError):
    """The connection ends, and its one log line has been written already."""


class _CloseAfterReply(FramekitError):
    """A refused request whose body is too big to skip: reply, then close."""


class Connection:
    """One client connection, from accept to close (see the module docstring).

    Attributes:
        peer: ``host:port`` of the client, for logs.
        host: the client's address, for the authentication throttle.
        authenticated: the handshake succeeded.
        scope: cancels the handshake, to drop this connection for a newer one.
        evicted: closed to make room for a newer unauthenticated connection.
    """

    __slots__ = (
        "authenticated",
        "config",
        "counted",
        "deadline",
        "evicted",
        "host",
        "peer",
        "pending",
        "scope",
        "server",
        "stream",
    )

    def __init__(
        self, server: SharedState, transport: trio.abc.Stream, peer: str, host: str
    ) -> None:
        self.server = server
        self.config = config = server.config
        self.deadline = DeadlineStream(transport)
        self.stream = MessageStream(self.deadline, max_header_size=config.max_header_size)
        self.peer = peer
        self.host = host
        self.authenticated = False
        self.evicted = False
        #: counted in the server's connections (see SharedState.admit / release)
        self.counted = False
        self.scope = trio.CancelScope()
        #: a request read while a command ran (pipelined): served next
        self.pending: IncomingMessage | None = None

    # -- the whole connection ----------------------------------------------------------

    async def serve(self) -> None:
        """Admit, serve until the client leaves, times out or breaks the protocol; close.

        Never raises for anything a client does: each ending is one log line.

        One coroutine holds the whole connection (admission, handshake, request loop)
        and one cancel scope, ``scope``: it evicts an unauthenticated connection, and an
        idle connection's wait for its next request moves its deadline rather than
        opening a scope of its own. A server holding 10,000 idle connections keeps each
        in ~7 KB (see docs/reliability.md).
        """
        server = self.server
        try:
            if not server.admit(self):
                limit = self.config.max_connections
                log.warning("refusing %s: %d connections already", self.peer, limit)
                await self._last_words(
                    ErrorCode.BUSY,
                    f"server is at its limit of {limit} connections; try again later",
                    linger=False,
                )
                return
            try:
                with self.scope:
                    if await self._handshake() and not self.evicted:
                        self.authenticated = True
                        server.unauthenticated.pop(self, None)
                        # The request loop, inline: while a connection is idle this
                        # frame waits right above the message stream's.
                        idle = self.config.idle_timeout
                        deadline = self.deadline
                        while True:
                            message, self.pending = self.pending, None
                            if message is None:
                                deadline.enter(
                                    "waiting for a request",
                                    timeout=idle,
                                    within=idle,
                                    scope=self.scope,
                                )
                                try:
                                    message = await self.stream.receive_message_stream()
                                except trio.EndOfChannel:
                                    log.info("%s closed the connection", self.peer)
                                    break
                            deadline.enter("receiving a request", timeout=idle)
                            await self._request(message)
                if self.scope.cancelled_caught and not self.evicted:
                    # the deadline of "waiting for a request" (the scope's only other use)
                    raise self.deadline.timeout_error()
            except Exception as exc:  # every ending, mapped in one place
                await self._end_with(exc)
            if self.evicted:
                log.warning(
                    "%s dropped before authenticating: %d other connections were "
                    "authenticating (max_unauthenticated)",
                    self.peer,
                    self.config.max_unauthenticated,
                )
                await self._last_words(
                    ErrorCode.BUSY,
                    "too many connections are authenticating; try again",
                    linger=False,  # it sent nothing we left unread
                )
        finally:
            try:
                await self._close()
            finally:
                server.release(self)

    async def _close(self) -> None:
        self.deadline.enter("closing", timeout=CLOSING_TIME, within=CLOSING_TIME)
        with trio.CancelScope(shield=True):
            await self.stream.aclose()

    async def _end_with(self, exc: Exception) -> None:
        """One log line for how the connection ended, and the client told if it can be."""
        peer = self.peer
        if isinstance(exc, trio.EndOfChannel):
            if self.authenticated:
                log.info("%s closed the connection", peer)
            else:
                log.info("%s closed the connection before authenticating", peer)
        elif isinstance(exc, StreamTimeout):
            level = logging.INFO if self.authenticated else logging.WARNING
            log.log(level, "%s timed out: %s", peer, escape(str(exc)))
            if exc.direction == "receive":
                await self._last_words(ErrorCode.TIMEOUT, f"{exc}; closing")
        elif isinstance(exc, HeaderTooLarge) and _looks_like_tls(exc.length):
            # 0x16 0x03 0x0N: a TLS ClientHello read as a length prefix.
            log.warning(
                "%s started a TLS handshake, but this server does not speak TLS "
                "(serve with a certificate, or connect without TLS)",
                peer,
            )
        elif isinstance(exc, HeaderTooLarge | FrameTooLarge):
            log.warning("%s sent an oversized message: %s", peer, escape(str(exc)))
            await self._last_words(ErrorCode.TOO_LARGE, str(exc))
        elif isinstance(exc, ProtocolError | BadRequest):
            log.warning("%s broke the protocol: %s", peer, escape(str(exc)))
            await self._last_words(ErrorCode.BAD_REQUEST, str(exc))
        elif isinstance(exc, _CloseAfterReply):
            await self._linger()
        elif isinstance(exc, _Logged):
            pass
        elif isinstance(exc.__cause__, ssl.SSLError) and not self.authenticated:
            log.warning("%s: TLS handshake failed: %s", peer, _tls_reason(exc.__cause__))
        elif isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError | OSError):
            log.info("%s connection lost: %s", peer, escape(str(exc)) or type(exc).__name__)
        else:
            log.error("internal error serving %s", peer, exc_info=exc)
            await self._last_words(ErrorCode.INTERNAL, "internal server error; see the server log")

    async def _last_words(self, code: ErrorCode, message: str, *, linger: bool = True) -> None:
        """Send one error, if the stream can still carry it, within ``CLOSING_TIME``."""
        if not self.stream._state.can_send:
            return
        self.deadline.enter("sending a last error", timeout=CLOSING_TIME, within=CLOSING_TIME)
        try:
            await self.stream.send_message(error_header(code, message))
        except (trio.BrokenResourceError, trio.ClosedResourceError, FramekitError):
            return
        if linger:
            await self._linger()

    async def _linger(self) -> None:
        """Read and drop what the client still sends, for ``CLOSING_TIME`` at most.

        Closing a socket with unread data resets the connection, and a reset can
        destroy the error message still in the client's receive buffer.
        """
        transport = self.deadline.transport_stream
        if isinstance(transport, trio.SocketStream):
            try:
                await transport.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
        self.deadline.enter("closing", timeout=CLOSING_TIME, within=CLOSING_TIME)
        dropped = 0
        try:
            while dropped < _LINGER_BYTES:
                data = await self.deadline.receive_some(64 * 1024)
                if not data:
                    return
                dropped += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return

    # -- handshake ---------------------------------------------------------------------

    async def _handshake(self) -> bool:
        config = self.config
        self.deadline.enter(
            "the TLS handshake and authentication",
            timeout=math.inf,
            within=config.handshake_timeout,
        )
        hello: dict[str, Any] = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "server": f"framekit/{__version__}",
            "auth": "none",
            "shell": config.allow_shell,
            "files": config.upload_dir is not None,
            "features": list(FEATURES),
        }
        token = config.token
        if token is None:
            await self.stream.send_message(hello)
            return True
        nonce = new_nonce()
        hello.update(auth="hmac-sha256", nonce=nonce)
        await self.stream.send_message(hello)
        answer = await self.stream.receive_message(max_body_size=0)
        fields = answer.header.fields
        # Anything but an 'auth' message is a wrong answer (nothing runs before auth).
        mac = fields.get("mac") if fields.get("type") == "auth" else None
        verdict = await self.server.auth.check(self.host, lambda: check_mac(token, nonce, mac))
        if verdict == "ok":
            await self.stream.send_message({"type": "ready"})
            return True
        if verdict == "blocked":
            log.info("%s: authentication refused unchecked (its address is blocked)", self.peer)
            message = "too many wrong tokens from this address; try again later"
        else:
            log.warning("%s: authentication failed (wrong token)", self.peer)
            message = "wrong token: check FRAMEKIT_TOKEN / --token"
        await self._last_words(ErrorCode.AUTH_FAILED, message)
        return False

    # -- requests ----------------------------------------------------------------------

    async def _request(self, message: IncomingMessage) -> None:
        fields = message.header.fields
        request_id = reply_id(fields)
        if fields.get("type") in ("cancel", "stdin"):
            # For a command that has already ended (a cancel, or the tail of its stdin,
            # that crossed its exit message on the wire): nothing to do or answer.
            await self._discard(message)
            return
        try:
            try:
                request = parse_request(fields, max_timeout=self.config.command_timeout)
                if isinstance(request, PingRequest):
                    await message.discard()  # size 0: only its end is pending
                    await self.stream.send_message({"type": "pong", "id": request.id})
                elif isinstance(request, RunRequest):
                    await self._run(request, message)
                elif request.kind == "put":
                    await self._put(request, message)
                else:
                    await self._get(request, message)
            except OSError as exc:
                if not self.stream._state.can_send:
                    raise  # a file failed part-way through a reply: nothing more to say
                name = str(fields.get("name", ""))
                raise refusal_for(exc, name, storing=fields.get("type") == "put") from exc
        except BadRequest as exc:
            await self._refuse(exc, request_id, message)
        except ChecksumMismatch as exc:
            log.warning("%s request %s: %s", self.peer, show(request_id), escape(str(exc)))
            await self.stream.send_message(
                error_header(ErrorCode.BAD_REQUEST, str(exc), request_id)
            )

    async def _refuse(self, exc: BadRequest, request_id: Any, message: IncomingMessage) -> None:
        """Answer a refused request, then skip its body or, if it is too big, close."""
        level = logging.ERROR if exc.code == ErrorCode.INTERNAL else logging.WARNING
        log.log(
            level,
            "%s request %s refused (%s): %s",
            self.peer,
            show(request_id),
            exc.code,
            escape(str(exc)),
        )
        left = message.size - message.received
        if left > MAX_DISCARD:
            await self.stream.send_message(
                error_header(
                    exc.code,
                    f"{exc} (its {left}-byte body was not read: closing the connection)",
                    request_id,
                )
            )
            raise _CloseAfterReply(str(exc))
        await self.stream.send_message(error_header(exc.code, str(exc), request_id))
        await self._discard(message)

    async def _discard(self, message: IncomingMessage) -> None:
        """Read and drop the rest of a body (bounded: MAX_DISCARD, under the deadline)."""
        if message.size - message.received > MAX_DISCARD:
            raise _CloseAfterReply("body too large to skip")
        self.deadline.enter("skipping a request body", timeout=self.config.idle_timeout)
        try:
            await message.discard()
        except ChecksumMismatch:
            pass  # it was refused anyway

    # -- run ---------------------------------------------------------------------------

    def _check_run(self, request: RunRequest) -> None:
        config = self.config
        if request.shell is not None and not config.allow_shell:
            raise BadRequest(
                "this server does not run shell strings; send 'argv' (or start the server "
                "with allow_shell / --allow-shell)",
                ErrorCode.NOT_ALLOWED,
            )
        if config.allow is not None:
            if request.shell is not None:
                raise BadRequest(
                    "this server has an allowlist, which a shell string would bypass; send 'argv'",
                    ErrorCode.NOT_ALLOWED,
                )
            # Exact match only: "echo" admits argv[0] "echo" (found on the server's
            # PATH), not "./echo" or "/tmp/x/echo"; list absolute paths to allow them.
            if request.program not in config.allow:
                raise BadRequest(
                    f"program {request.program!r} is not in this server's allowlist",
                    ErrorCode.NOT_ALLOWED,
                )
        if request.stdin_size > config.max_stdin:
            raise BadRequest(
                f"stdin of {request.stdin_size} bytes is over the server's limit "
                f"of {config.max_stdin}",
                ErrorCode.TOO_LARGE,
            )

    async def _run(self, request: RunRequest, message: IncomingMessage) -> None:
        config = self.config
        self._check_run(request)
        stdin = await message.read_all(max_size=config.max_stdin) if request.stdin_size else b""
        if not request.stdin_size:
            await message.discard()  # no body: only the end-of-message event is pending
        slots = self.server.processes
        try:
            slots.acquire_nowait()  # the common case: a slot is free, no timer needed
        except trio.WouldBlock:
            with trio.move_on_after(config.queue_timeout) as queue_scope:
                await slots.acquire()
            if queue_scope.cancelled_caught:
                raise BadRequest(
                    f"all {config.max_processes} process slots stayed busy for "
                    f"{config.queue_timeout:g} s; try again later",
                    ErrorCode.BUSY,
                ) from None
        try:
            await self._run_process(request, stdin)
        finally:
            slots.release()

    async def _run_process(self, request: RunRequest, stdin: bytes) -> None:
        config = self.config
        stream = self.stream
        outcome: CommandOutcome | None = None
        stopped_by: str | None = None  # "cancel" or "gone", if the client stopped it
        violation: ProtocolError | None = None  # what the client broke while it ran
        start_error: OSError | None = None
        args: Sequence[str] | str = (
            request.shell if request.shell is not None else (request.argv or ())
        )
        described = (
            shell_words(["sh", "-c", request.shell])
            if request.shell is not None
            else shell_words(request.argv or ())
        )
        # While it runs, the client may stay silent (the command's timeout bounds it);
        # output must still be read within idle_timeout.
        self.deadline.enter(
            "sending the command's output", timeout=config.idle_timeout, receive_timeout=math.inf
        )
        start = trio.current_time()
        limit = request.timeout or config.command_timeout  # already capped at the latter
        # The nursery a command still running after WATCH_AFTER goes on in (a fast one
        # pays for none): the client watcher runs there, and cancelling it stops the
        # command (run_command_streaming then reports it "cancelled").
        helpers: trio.Nursery | None = None
        # A streamed stdin: the watcher hands each chunk over as the pipe takes it.
        stdin_in: trio.MemorySendChannel[bytes] | None = None
        stdin_out: trio.MemoryReceiveChannel[bytes] | None = None
        if request.stdin_stream:
            stdin_in, stdin_out = trio.open_memory_channel[bytes](0)

        def stop(reason: str) -> None:
            nonlocal stopped_by
            stopped_by = stopped_by or reason
            assert helpers is not None  # only the watcher stops a command
            helpers.cancel_scope.cancel()

        async def sink(name: str, data: bytes) -> None:
            await stream.send_message({"type": "output", "id": request.id, "stream": name}, data)

        async def watch_client() -> None:
            # While a command runs the client may send its stdin, `cancel` it, pipeline
            # its next request (served after this one), or hang up. Cancelled (by the
            # nursery) when the command ends.
            nonlocal violation
            while True:
                try:
                    incoming = await stream.receive_message_stream()
                    fields = incoming.header.fields
                    kind, own = fields.get("type"), fields.get("id") == request.id
                    if kind == "stdin" and own and stdin_in is not None:
                        await self._pass_stdin(incoming, stdin_in)
                        continue
                except (trio.EndOfChannel, trio.BrokenResourceError):
                    stop("gone")
                    return
                except ProtocolError as exc:
                    violation = exc
                    stop("gone")
                    return
                if kind not in ("cancel", "stdin") or incoming.size:
                    self.pending = incoming  # served when this one has ended
                    return
                await incoming.discard()  # size 0: only its end is pending
                if kind == "cancel" and own:
                    stop("cancel")
                    return

        def start_watching(nursery: trio.Nursery) -> None:
            nonlocal helpers
            helpers = nursery
            nursery.start_soon(watch_client)

        # The command runs in this task (one task fewer per request).
        try:
            outcome = await run_command_streaming(
                args,
                sink=sink,
                stdin=stdin,
                stdin_stream=stdin_out,
                shell=request.shell is not None,
                cwd=config.workdir,
                env=self.server.command_env,
                timeout=limit,
                max_output=config.max_output,
                # a vanished client's command is killed at once; on server
                # shutdown (or a `cancel`) it gets SIGTERM and the grace period first
                shutdown_grace=lambda: 0 if stopped_by == "gone" else config.shutdown_grace,
                slow_after=WATCH_AFTER,
                on_slow=start_watching,
            )
        except OSError as exc:
            start_error = exc
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            # The output could not be sent: the client left, or stopped reading
            # (StreamTimeout). The group was killed at once.
            why = f"timed out: {exc}" if isinstance(exc, StreamTimeout) else "left"
            log.info(
                "%s %s, during request %s (%s); killed it",
                self.peer,
                why,
                show(request.id),
                described,
            )
            raise _Logged(str(exc)) from exc
        except trio.Cancelled:
            # Not the watcher's stop() (its nursery absorbs that): the server is stopping.
            log.info(
                "%s request %s (%s) stopped: the server is shutting down",
                self.peer,
                show(request.id),
                described,
            )
            await self._last_exit(request, trio.current_time() - start)
            raise
        elapsed = trio.current_time() - start
        self.deadline.enter("sending a reply", timeout=config.idle_timeout)
        if start_error is not None:
            reason = start_error.strerror or str(start_error)
            if start_error.errno in _SPAWN_SHORTAGE:
                raise BadRequest(
                    f"the server is short of resources to run {request.program!r} "
                    f"({reason}); try again later",
                    ErrorCode.BUSY,
                )
            missing = start_error.errno in (errno.ENOENT, errno.ENOTDIR)
            raise BadRequest(
                f"cannot run {request.program!r}: {reason}",
                ErrorCode.NOT_FOUND if missing else ErrorCode.NOT_EXECUTABLE,
            )
        if violation is not None:
            raise violation
        if stopped_by == "gone":
            log.info(
                "%s left during request %s (%s); killed it", self.peer, show(request.id), described
            )
            raise _Logged("the client disconnected during a command")
        if stopped_by is not None or outcome is None:
            log.info(
                "%s request %s (%s) cancelled after %.3f s",
                self.peer,
                show(request.id),
                described,
                elapsed,
            )
            await stream.send_message(_cancelled_exit(request, elapsed, "client", limit))
            return
        log.info(
            "%s request %s (%s): %s rc=%s signal=%s in %.3f s%s",
            self.peer,
            show(request.id),
            described,
            outcome.status,
            outcome.returncode,
            outcome.signal,
            outcome.duration,
            " (output truncated)" if outcome.truncated else "",
        )
        await stream.send_message(
            {"type": "exit", "id": request.id, **outcome.to_fields(), "timeout_limit": limit}
        )

    async def _last_exit(self, request: RunRequest, elapsed: float) -> None:
        """The server is stopping: tell the client its command was cancelled, if that can
        be said within ``CLOSING_TIME`` (the connection is being cancelled)."""
        if not self.stream._state.can_send:
            return
        with trio.move_on_after(CLOSING_TIME, shield=True):
            try:
                await self.stream.send_message(_cancelled_exit(request, elapsed, "shutdown", None))
            except (trio.BrokenResourceError, trio.ClosedResourceError, FramekitError):
                pass

    async def _pass_stdin(
        self, incoming: IncomingMessage, to_command: trio.MemorySendChannel[bytes]
    ) -> None:
        """One ``stdin`` message: its bytes to the command (waiting until the pipe took
        them, so a command that reads slowly slows the client, never grows memory), or,
        with ``eof``, the end of the command's input."""
        if incoming.header.get("eof"):
            await incoming.discard()
            await to_command.aclose()
            return
        data = await incoming.read_all(max_size=STDIN_CHUNK_MAX)  # FrameTooLarge beyond
        if data:
            try:
                await to_command.send(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the command's input is closed (it ended, or after eof): dropped

    # -- files -------------------------------------------------------------------------

    def _uploads_or_refuse(self) -> UploadDirectory:
        uploads = self.server.uploads
        if uploads is None:
            raise BadRequest(
                "file transfer is disabled on this server (start it with an upload directory)",
                ErrorCode.NOT_ALLOWED,
            )
        return uploads

    async def _put(self, request: FileRequest, message: IncomingMessage) -> None:
        uploads = self._uploads_or_refuse()
        if request.size > self.config.max_upload:
            raise BadRequest(
                f"upload of {request.size} bytes is over the server's limit "
                f"of {self.config.max_upload}",
                ErrorCode.TOO_LARGE,
            )
        await uploads.receive_upload(request.name, message)
        log.info("%s put %s (%d bytes)", self.peer, show(request.name), request.size)
        self.deadline.enter("sending a reply", timeout=self.config.idle_timeout)
        await self.stream.send_message(
            {
                "type": "stored",
                "id": request.id,
                "name": request.name,
                "file_size": request.size,
                "file_sha256": message.sha256,
            }
        )

    async def _get(self, request: FileRequest, message: IncomingMessage) -> None:
        uploads = self._uploads_or_refuse()
        await message.discard()
        real = await uploads.resolve_for_get(request.name)
        self.deadline.enter("sending a file", timeout=self.config.idle_timeout)
        await self.stream.send_file({"type": "file", "id": request.id, "name": request.name}, real)
        log.info("%s get %s", self.peer, show(request.name))
