"""Client side of the remote-command protocol: run, stream, put/get."""

from __future__ import annotations

import contextlib
import inspect
import os
import ssl
import tempfile
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, final

import trio
from trio.lowlevel import checkpoint_if_cancelled

from .._errors import ConnectError, FramekitError, RemoteProtocolError
from ..streams import (
    IncomingMessage,
    Message,
    MessageStream,
    Retry,
    format_address,
    open_stream,
    speaks_tls,
)
from ..streams._groups import raise_single
from ..streams._message_stream import ProgressCallback
from ._protocol import (
    DEFAULT_PORT,
    FINAL_REPLIES,
    AuthenticationError,
    ErrorCode,
    RemoteError,
    compute_mac,
    parse_hello,
    raise_if_error,
)

__all__ = [
    "Client",
    "CommandResult",
    "FileInfo",
    "OutputChunk",
    "run_command",
]

#: Seconds to wait for the server's greeting and the answer to our authentication.
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds a cancelled request may spend telling the server to stop its command.
_CANCEL_SEND_TIMEOUT: Final = 1.0
#: A framekit server greets within milliseconds; a plain-text client still waiting after
#: this long checks whether the server is waiting for a TLS handshake instead.
_TLS_PROBE_AFTER: Final = 1.0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


#: Bytes of stdin per ``stdin`` message: what one pipe read gives.
_STDIN_CHUNK: Final = 64 * 1024


class _StdinFeeder:
    """Sends a command's streamed stdin as ``stdin`` messages, then ``eof``.

    :meth:`stop` (the command ended) cancels only the wait for the source's next chunk:
    a message being sent is finished, so the connection never carries half a message;
    if the server stops reading, that send is cut after ``linger`` seconds.
    """

    def __init__(
        self, stream: MessageStream, rid: int, source: AsyncIterable[bytes], linger: float
    ) -> None:
        self.stream = stream
        self.rid = rid
        self.source = source
        self.linger = linger
        self.stopped = False
        self.reading = trio.CancelScope()
        self.sending = trio.CancelScope()

    def stop(self) -> None:
        self.stopped = True
        self.reading.cancel()
        self.sending.deadline = trio.current_time() + self.linger

    async def run(self) -> None:
        chunks = aiter(self.source)
        try:
            with self.sending:
                while not self.stopped:
                    self.reading = trio.CancelScope()  # one scope per wait: stop() ends it
                    with self.reading:
                        chunk = await anext(chunks, None)
                    if self.reading.cancelled_caught:
                        return
                    if chunk is None:
                        await self.stream.send_message(
                            {"type": "stdin", "id": self.rid, "eof": True}
                        )
                        return
                    view = memoryview(chunk)
                    for start in range(0, len(view), _STDIN_CHUNK):
                        piece = view[start : start + _STDIN_CHUNK]
                        await self.stream.send_message({"type": "stdin", "id": self.rid}, piece)
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True):
                    await aclose()


@final
class _RequestLock:
    """One request at a time on a connection, in arrival order (a :class:`trio.Lock`),
    taken without a scheduling pass when it is free.

    Every request then waits for its reply, a full checkpoint, so a free lock needs only
    the cancellation check; ``trio.Lock.acquire`` would add a pass (~6 µs of CPU) to
    every request.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def __aenter__(self) -> None:
        await checkpoint_if_cancelled()
        try:
            self._lock.acquire_nowait()  # refuses while others wait: the order is kept
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


async def _greeting(stream: MessageStream, host: str, port: int, *, tls: bool) -> Message:
    """The server's first message. A plain-text client that gets none within
    ``_TLS_PROBE_AFTER`` asks whether the server speaks TLS, to say so at once instead
    of waiting for the whole handshake timeout.

    Raises:
        ConnectError: ``tls_required``: the server speaks TLS.
    """
    if not tls:
        with trio.move_on_after(_TLS_PROBE_AFTER):
            return await stream.receive_message(max_body_size=0)  # cancel-safe: nothing lost
        if await speaks_tls(host, port):
            where = format_address(host, port)
            raise ConnectError(
                f"{where} speaks TLS; connect with TLS",
                reason="tls_required",
                where=where,
            )
    return await stream.receive_message(max_body_size=0)


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """Some output of a running command, as it arrived."""

    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a remote command ended, with its output.

    Attributes:
        argv: what was run (a list, or the shell string).
        status: ``exited``, ``signaled``, ``timeout`` or ``cancelled``.
        returncode: exit code if it exited.
        signal: terminating signal number if it was killed.
        stdout: collected stdout (empty if it was only streamed to a callback).
        stderr: collected stderr (likewise).
        duration: seconds the command ran, measured by the server.
        truncated: output went over the server's limit and was cut.
        stdout_bytes: stdout bytes the command produced.
        stderr_bytes: stderr bytes the command produced.
        timeout_limit: the timeout the server applied, in seconds: what was asked for, or
            the server's own ``command_timeout`` if that is lower (``None`` from a server
            that does not say).
        reason: for ``cancelled``, who stopped it: ``client`` or ``shutdown`` (the server
            was stopped); else ``None``.
    """

    argv: tuple[str, ...] | str
    status: str
    returncode: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    duration: float
    truncated: bool
    stdout_bytes: int
    stderr_bytes: int
    timeout_limit: float | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """It exited with code 0."""
        return self.status == "exited" and self.returncode == 0

    @property
    def exit_code(self) -> int:
        """A local exit code mirroring the remote one, as ssh does.

        The exit code itself; 128 + N for signal N; 124 for a timeout (like
        ``timeout(1)``); 130 when cancelled.
        """
        if self.status == "exited" and self.returncode is not None:
            return self.returncode
        if self.status == "timeout":
            return 124
        if self.signal is not None:
            return 128 + self.signal
        return 130


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file transferred: its name on the server, size and verified SHA-256."""

    name: str
    size: int
    sha256: str


OutputCallback = Callable[[OutputChunk], Awaitable[object] | object]


@final
class Client:
    """A connection to a framekit command server.

    Open it with :meth:`connect` (``async with await Client.connect(...) as client``).
    Requests run one at a time on a connection; open several clients for parallelism
    (or use :func:`fan_out`).

    Cancellation: a request cancelled while its command runs asks the server to stop
    the command (a ``cancel`` message, within a second); the next request first reads
    and drops the rest of the cancelled one's replies, so the connection stays in step.
    A request cancelled half-way through sending its own bytes (an upload, a big stdin)
    leaves the connection unusable: later calls raise :class:`trio.BrokenResourceError`
    and the client should be closed.

    Attributes:
        server_info: the server's greeting (protocol version, features).
    """

    def __init__(
        self,
        stream: MessageStream,
        server_info: dict[str, Any],
        *,
        reply_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.stream = stream
        self.server_info = server_info
        self._next_id = 0
        self._lock = _RequestLock()
        self._reply_timeout = reply_timeout
        # The id of a request abandoned before its final reply, if any.
        self._unfinished: int | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        retry: Retry | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> Client:
        """Connect, read the greeting and answer the token challenge.

        Raises:
            ConnectError: no connection (after ``retry``), TLS failed, or no greeting (or
                answer) within ``handshake_timeout``.
            AuthenticationError: the server wants a token we lack, or refused ours.
            RemoteError: the server is busy (``busy``) or refused us otherwise.
            RemoteProtocolError: not a framekit server of this protocol version, or a
                malformed greeting.
        """
        transport = await open_stream(
            host, port, ssl_context=ssl_context, server_hostname=server_hostname, retry=retry
        )
        where = format_address(host, port)
        stream = MessageStream(transport)
        try:
            with trio.fail_after(handshake_timeout):
                greeting = await _greeting(stream, host, port, tls=ssl_context is not None)
                hello = parse_hello(greeting.header.fields)
                if hello.get("auth") == "hmac-sha256":
                    if token is None:
                        raise AuthenticationError(
                            ErrorCode.AUTH_FAILED,
                            "the server requires a token, and none was given",
                        )
                    mac = compute_mac(token, str(hello.get("nonce", "")))
                    await stream.send_message({"type": "auth", "mac": mac})
                    answer = (await stream.receive_message(max_body_size=0)).header.fields
                    raise_if_error(answer)
                    if answer.get("type") != "ready":
                        raise RemoteProtocolError(
                            f"expected 'ready' after authenticating, got {answer.get('type')!r}"
                        )
        except trio.TooSlowError:
            await trio.aclose_forcefully(stream)
            raise ConnectError(
                f"{where} did not complete the framekit handshake within "
                f"{handshake_timeout:g} s; is it a framekit server?",
                reason="no_greeting",
                where=where,
            ) from None
        except trio.EndOfChannel:
            await trio.aclose_forcefully(stream)
            raise ConnectError(
                f"{where} closed the connection before its greeting; is it a framekit server?",
                reason="no_greeting",
                where=where,
            ) from None
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return cls(stream, hello, reply_timeout=handshake_timeout)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection."""
        await self.stream.aclose()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def _receive_reply(self, request_id: int) -> Message:
        message = await self.stream.receive_message()
        if message.header.get("id") != request_id and message.header.get("id") is not None:
            raise RemoteProtocolError(
                f"server answered request {message.header.get('id')!r}, expected {request_id}"
            )
        raise_if_error(message.header.fields)
        return message

    async def _resynchronise(self) -> None:
        """Drop the replies still due to an abandoned request, up to its final one.

        Raises:
            trio.BrokenResourceError: an earlier request was cut off while being sent.
        """
        self.stream._state.check_send_open()
        rid = self._unfinished
        if rid is None:
            return
        try:
            with trio.fail_after(self._reply_timeout):
                while True:
                    incoming = await self.stream.receive_message_stream()
                    fields = incoming.header.fields
                    await incoming.discard()
                    if fields.get("id") not in (rid, None):
                        raise RemoteProtocolError(
                            f"server answered request {fields.get('id')!r} while the "
                            f"replies to request {rid} were still due"
                        )
                    if fields.get("type") in FINAL_REPLIES:
                        break
        except trio.TooSlowError:
            await trio.aclose_forcefully(self.stream)
            raise FramekitError(
                f"the server did not finish cancelled request {rid} within "
                f"{self._reply_timeout:g} s; this client is closed, open a new one"
            ) from None
        self._unfinished = None

    async def _abandon(self, request_id: int, *, cancel: bool) -> None:
        """Remember that ``request_id`` was left unfinished; for a running command, ask the
        server to stop it (bounded, and shielded: the caller is being cancelled)."""
        self._unfinished = request_id
        if not cancel or not self.stream._state.can_send:
            return
        with trio.move_on_after(_CANCEL_SEND_TIMEOUT, shield=True):
            try:
                await self.stream.send_message({"type": "cancel", "id": request_id})
            except (trio.BrokenResourceError, trio.ClosedResourceError, FramekitError):
                pass  # the connection is gone or broken: the next call will say so

    async def run(
        self,
        argv: Sequence[str] | None = None,
        *,
        shell: str | None = None,
        stdin: bytes | AsyncIterable[bytes] = b"",
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
        collect: bool = True,
    ) -> CommandResult:
        """Run a command on the server and wait for it to end.

        Args:
            argv: program and arguments, run without a shell.
            shell: a shell command string instead (only if the server allows shells).
            stdin: the command's standard input: bytes (sent with the request, up to the
                server's ``max_stdin``), or an async iterable of chunks, streamed while
                the command runs, of any length and in bounded memory (a command that
                reads slowly slows the iteration). The iteration stops, and what it had
                not yet sent is dropped, when the command ends.
            timeout: seconds before the server kills it (capped by the server's limit).
            on_output: called with each :class:`OutputChunk` as it arrives (may be async).
            collect: keep the output in the result (turn off when streaming big output).

        Raises:
            RemoteError: ``bad_request``, ``not_allowed``, ``not_found``, ``busy``, ...
            FramekitError: a streamed stdin, and a server that cannot take one.
        """
        if (argv is None) == (shell is None):
            raise ValueError("give exactly one of argv or shell")
        streamed = not isinstance(stdin, bytes | bytearray | memoryview)
        if streamed and "stdin" not in self.server_info.get("features", ()):
            raise FramekitError(
                "this server cannot take a streamed stdin (it predates the 'stdin' feature); "
                "send stdin as bytes"
            )
        async with self._lock:
            await self._resynchronise()
            rid = self._new_id()
            header: dict[str, Any] = {"type": "run", "id": rid}
            if argv is not None:
                header["argv"] = list(argv)
            else:
                header["shell"] = shell
            if timeout is not None:
                header["timeout"] = timeout
            if streamed:
                header["stdin"] = "stream"
                await self.stream.send_message(header)
            else:
                await self.stream.send_message(header, stdin)
            try:
                if not streamed:
                    return await self._run_replies(rid, argv, shell, on_output, collect)
                async with trio.open_nursery() as nursery:
                    feeder = _StdinFeeder(self.stream, rid, stdin, self._reply_timeout)  # type: ignore[arg-type]
                    nursery.start_soon(feeder.run)
                    try:
                        return await self._run_replies(rid, argv, shell, on_output, collect)
                    finally:
                        feeder.stop()
            except BaseExceptionGroup as group:
                try:
                    raise_single(group)
                except BaseException as exc:
                    if not isinstance(exc, RemoteError | RemoteProtocolError):
                        await self._abandon(rid, cancel=True)
                    raise
            except BaseException as exc:
                if not isinstance(exc, RemoteError | RemoteProtocolError):
                    await self._abandon(rid, cancel=True)
                raise

    async def _run_replies(
        self,
        rid: int,
        argv: Sequence[str] | None,
        shell: str | None,
        on_output: OutputCallback | None,
        collect: bool,
    ) -> CommandResult:
        out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        while True:
            message = await self._receive_reply(rid)
            fields = message.header.fields
            kind = fields.get("type")
            if kind == "output":
                name: Literal["stdout", "stderr"] = (
                    "stderr" if fields.get("stream") == "stderr" else "stdout"
                )
                if collect:
                    out[name].append(message.body)
                if on_output is not None:
                    result = on_output(OutputChunk(name, message.body))
                    if inspect.isawaitable(result):
                        await result
                continue
            if kind != "exit":
                raise RemoteProtocolError(f"unexpected {kind!r} message during a run")
            return CommandResult(
                argv=tuple(argv) if argv is not None else str(shell),
                status=str(fields.get("status")),
                returncode=fields.get("returncode"),
                signal=fields.get("signal"),
                stdout=b"".join(out["stdout"]),
                stderr=b"".join(out["stderr"]),
                duration=float(fields.get("duration", 0.0)),
                truncated=bool(fields.get("truncated")),
                stdout_bytes=int(fields.get("stdout_bytes", 0)),
                stderr_bytes=int(fields.get("stderr_bytes", 0)),
                timeout_limit=_number(fields.get("timeout_limit")),
                reason=_text(fields.get("reason")),
            )

    async def ping(self) -> float:
        """One round trip through the server (``ping`` / ``pong``); its time in seconds.

        Raises:
            RemoteError: the server does not know ``ping`` (``bad_request``).
        """
        async with self._lock:
            await self._resynchronise()
            rid = self._new_id()
            start = trio.current_time()
            await self.stream.send_message({"type": "ping", "id": rid})
            try:
                reply = await self._receive_reply(rid)
            except BaseException as exc:
                if not isinstance(exc, RemoteError | RemoteProtocolError):
                    await self._abandon(rid, cancel=False)
                raise
            if reply.header.get("type") != "pong":
                raise RemoteProtocolError(f"expected 'pong', got {reply.header.get('type')!r}")
            return trio.current_time() - start

    def _check_files(self) -> None:
        if not self.server_info.get("files"):
            raise RemoteError(
                ErrorCode.NOT_ALLOWED,
                "file transfer is disabled on this server (its greeting says so; start it "
                "with an upload directory)",
            )

    async def put(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> FileInfo:
        """Upload a file; the server stores it only if its size and SHA-256 match.

        The server's answer is read while the file is sent: a refusal that arrives
        early (``too_large``, ``not_allowed``) stops the upload and is raised as such.

        Raises:
            RemoteError: ``not_allowed`` (uploads disabled: refused before sending
                anything; or an unsafe name), ``too_large``, ``bad_request``.
            OSError: the local file could not be read.
        """
        name = name if name is not None else Path(local_path).name
        self._check_files()
        async with self._lock:
            await self._resynchronise()
            rid = self._new_id()
            header = {"type": "put", "id": rid, "name": name}
            reply: Message | None = None
            refusal: RemoteError | None = None
            send_error: trio.BrokenResourceError | None = None
            sent = False

            async def send() -> None:
                nonlocal send_error, sent
                try:
                    await self.stream.send_file(header, local_path, progress=progress)
                except trio.BrokenResourceError as exc:
                    send_error = exc  # the server may have said why: that is read below
                else:
                    sent = True

            try:
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(send)
                        try:
                            reply = await self._receive_reply(rid)
                        except RemoteError as exc:
                            # A refusal can come before the body is all sent: the server
                            # then skips a small body or closes; either ends the send.
                            refusal = exc
                        nursery.cancel_scope.deadline = trio.current_time() + self._reply_timeout
                except BaseExceptionGroup as group:
                    raise_single(group)
            except BaseException as exc:
                if (
                    sent
                    and reply is None
                    and refusal is None
                    and not isinstance(exc, RemoteProtocolError)
                ):
                    await self._abandon(rid, cancel=False)
                raise
            if refusal is not None:
                raise refusal
            if reply is None:
                assert send_error is not None
                raise send_error
            fields = reply.header.fields
            return FileInfo(
                str(fields["name"]), int(fields["file_size"]), str(fields["file_sha256"])
            )

    async def get(
        self,
        name: str,
        local_path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> FileInfo:
        """Download a file to ``local_path``, through a temporary file beside it that is
        renamed into place only once the SHA-256 matched. A directory ``local_path`` gets
        the file under its own name (the last component of ``name``).

        Raises:
            RemoteError: ``not_found``, ``not_allowed`` (downloads disabled), ...
            ChecksumMismatch: the body did not match its SHA-256; nothing was written.
            RemoteProtocolError: the server sent the file without a SHA-256; nothing was
                written.
            OSError: the local file could not be written (its error names
                ``local_path``, never the temporary file).
        """
        target = Path(local_path)
        if await trio.Path(target).is_dir():
            target = target / Path(name).name
        fd, tmp_name = await trio.to_thread.run_sync(_temporary_beside, target)
        try:
            async with trio.wrap_file(os.fdopen(fd, "wb")) as f:
                info = await self.download(name, f.write, progress=progress)
            await trio.to_thread.run_sync(os.replace, tmp_name, target)
        except BaseException:
            with trio.CancelScope(shield=True), contextlib.suppress(OSError):
                await trio.to_thread.run_sync(os.unlink, tmp_name)
            raise
        return info

    async def download(
        self,
        name: str,
        write: Callable[[bytes], Awaitable[object] | object],
        *,
        progress: ProgressCallback | None = None,
    ) -> FileInfo:
        """Download a file, passing each chunk to ``write`` (sync or async) as it comes.

        The SHA-256 is checked after the last chunk: until this returns, what was
        written must not be trusted (:meth:`get` writes a temporary file for that).

        Raises:
            RemoteError: ``not_found``, ``not_allowed`` (downloads disabled), ...
            ChecksumMismatch: the body did not match its SHA-256.
            RemoteProtocolError: the server sent the file without a SHA-256 (nothing was
                passed to ``write``).
        """
        self._check_files()
        async with self._lock:
            await self._resynchronise()
            rid = self._new_id()
            await self.stream.send_message({"type": "get", "id": rid, "name": name})
            try:
                incoming = await self.stream.receive_message_stream()
            except BaseException as exc:
                if not isinstance(exc, RemoteProtocolError):
                    await self._abandon(rid, cancel=False)
                raise
            # The reply has arrived: if we stop reading its body now, the next receive
            # skips the rest, and the connection stays in step.
            self._check_file_reply(rid, name, incoming)
            if incoming.header.sha256 is None:
                await incoming.discard()  # keep the connection in step, store nothing
                raise RemoteProtocolError(
                    f"the server sent {name!r} without its sha256 (protocol 1 requires it); "
                    "nothing was written"
                )
            async for chunk in incoming:
                result = write(chunk)
                if inspect.isawaitable(result):
                    await result
                if progress is not None:
                    progress(incoming.received, incoming.size)
            if incoming.size == 0 and progress is not None:
                progress(0, 0)
            assert incoming.sha256 is not None  # verified against the header by now
            return FileInfo(name, incoming.size, incoming.sha256)

    @staticmethod
    def _check_file_reply(rid: int, name: str, incoming: IncomingMessage) -> None:
        fields = incoming.header.fields
        if fields.get("id") != rid:
            raise RemoteProtocolError(
                f"server answered request {fields.get('id')!r}, expected {rid}"
            )
        raise_if_error(fields)
        if fields.get("type") != "file":
            raise RemoteProtocolError(f"unexpected {fields.get('type')!r} message for a get")


def _temporary_beside(target: Path) -> tuple[int, str]:
    """A temporary file in ``target``'s directory; its errors name ``target``."""
    try:
        return tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target)) from None


async def run_command(
    host: str,
    port: int = DEFAULT_PORT,
    argv: Sequence[str] | None = None,
    *,
    shell: str | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    stdin: bytes = b"",
    on_output: OutputCallback | None = None,
    collect: bool = True,
) -> CommandResult:
    """Connect, run one command, disconnect: the one-call form of :meth:`Client.run`.

    With ``collect=False`` the output only goes to ``on_output``, so memory stays flat
    however much the command prints.
    """
    async with await Client.connect(
        host, port, token=token, ssl_context=ssl_context, retry=retry
    ) as client:
        return await client.run(
            argv, shell=shell, stdin=stdin, timeout=timeout, on_output=on_output, collect=collect
        )
