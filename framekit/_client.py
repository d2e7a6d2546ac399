"""Client side of the remote-command protocol: run, stream, put/get, fan-out."""

from __future__ import annotations

import contextlib
import inspect
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, final

import trio

from ._connect import Retry, open_stream
from ._errors import ConnectError, FramekitError
from ._message_stream import Message, MessageStream, ProgressCallback
from ._protocol import PROTOCOL_VERSION, AuthenticationError, ErrorCode, RemoteError, compute_mac
from ._server import DEFAULT_PORT

__all__ = [
    "Client",
    "CommandResult",
    "FileInfo",
    "HostResult",
    "OutputChunk",
    "fan_out",
    "run_command",
]

#: Seconds to wait for the server's greeting and the answer to our authentication.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


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


def _raise_error(header: Any) -> None:
    if header.get("type") != "error":
        return
    code = str(header.get("code", ErrorCode.INTERNAL))
    message = str(header.get("message", ""))
    cls = AuthenticationError if code == ErrorCode.AUTH_FAILED else RemoteError
    raise cls(code, message, request_id=header.get("id"))


@final
class Client:
    """A connection to a framekit command server.

    Open it with :meth:`connect` (``async with await Client.connect(...) as client``).
    Requests run one at a time on a connection; open several clients for parallelism
    (or use :func:`fan_out`).

    Attributes:
        server_info: the server's greeting (protocol version, features).
    """

    def __init__(self, stream: MessageStream, server_info: dict[str, Any]) -> None:
        self.stream = stream
        self.server_info = server_info
        self._next_id = 0
        self._lock = trio.Lock()

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
            ConnectError: no connection (after ``retry``), or TLS failed.
            AuthenticationError: the server wants a token we lack, or refused ours.
            RemoteError: the server is busy (``busy``) or refused us otherwise.
            FramekitError: the server speaks another protocol version.
            ConnectError: no greeting (or answer) within ``handshake_timeout``.
        """
        transport = await open_stream(
            host, port, ssl_context=ssl_context, server_hostname=server_hostname, retry=retry
        )
        stream = MessageStream(transport)
        try:
            with trio.fail_after(handshake_timeout):
                hello = (await stream.receive_message(max_body_size=0)).header.fields
                _raise_error(hello)
                if hello.get("type") != "hello" or hello.get("protocol") != PROTOCOL_VERSION:
                    raise FramekitError(
                        f"{host}:{port} is not a framekit server of protocol "
                        f"{PROTOCOL_VERSION} (it greeted with {hello!r})"
                    )
                if hello.get("auth") == "hmac-sha256":
                    if token is None:
                        raise AuthenticationError(
                            ErrorCode.AUTH_FAILED,
                            "the server requires a token: pass token= (FRAMEKIT_TOKEN / --token)",
                        )
                    mac = compute_mac(token, str(hello.get("nonce", "")))
                    await stream.send_message({"type": "auth", "mac": mac})
                    answer = (await stream.receive_message(max_body_size=0)).header.fields
                    _raise_error(answer)
        except trio.TooSlowError:
            await trio.aclose_forcefully(stream)
            raise ConnectError(
                f"{host}:{port} did not complete the framekit handshake within "
                f"{handshake_timeout:g} s; is it a framekit server?"
            ) from None
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return cls(stream, hello)

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
        _raise_error(message.header)
        if message.header.get("id") != request_id:
            raise FramekitError(
                f"server answered request {message.header.get('id')!r}, expected {request_id}"
            )
        return message

    async def run(
        self,
        argv: Sequence[str] | None = None,
        *,
        shell: str | None = None,
        stdin: bytes = b"",
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
        collect: bool = True,
    ) -> CommandResult:
        """Run a command on the server and wait for it to end.

        Args:
            argv: program and arguments, run without a shell.
            shell: a shell command string instead (only if the server allows shells).
            stdin: bytes for the command's standard input.
            timeout: seconds before the server kills it (capped by the server's limit).
            on_output: called with each :class:`OutputChunk` as it arrives (may be async).
            collect: keep the output in the result (turn off when streaming big output).

        Raises:
            RemoteError: ``bad_request``, ``not_allowed``, ``not_found``, ``busy``, ...
        """
        if (argv is None) == (shell is None):
            raise ValueError("give exactly one of argv or shell")
        async with self._lock:
            rid = self._new_id()
            header: dict[str, Any] = {"type": "run", "id": rid}
            if argv is not None:
                header["argv"] = list(argv)
            else:
                header["shell"] = shell
            if timeout is not None:
                header["timeout"] = timeout
            await self.stream.send_message(header, stdin)
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
                    raise FramekitError(f"unexpected {kind!r} message during a run")
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
                )

    async def put(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> FileInfo:
        """Upload a file; the server stores it only if its size and SHA-256 match.

        Raises:
            RemoteError: ``not_allowed`` (uploads disabled, or an unsafe name),
                ``too_large``, ``bad_request``.
            OSError: the local file could not be read.
        """
        name = name if name is not None else Path(local_path).name
        async with self._lock:
            rid = self._new_id()
            await self.stream.send_file(
                {"type": "put", "id": rid, "name": name}, local_path, progress=progress
            )
            reply = (await self._receive_reply(rid)).header
            return FileInfo(str(reply["name"]), int(reply["file_size"]), str(reply["file_sha256"]))

    async def get(
        self,
        name: str,
        local_path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> FileInfo:
        """Download a file to ``local_path`` (written to a temporary file, then renamed).

        Raises:
            RemoteError: ``not_found``, ``not_allowed`` (downloads disabled), ...
            ChecksumMismatch: the body did not match its SHA-256; nothing was written.
            FramekitError: the server sent the file without a SHA-256; nothing was written.
        """
        target = Path(local_path)
        async with self._lock:
            rid = self._new_id()
            await self.stream.send_message({"type": "get", "id": rid, "name": name})
            incoming = await self.stream.receive_message_stream()
            _raise_error(incoming.header)
            if incoming.header.sha256 is None:
                await incoming.discard()  # keep the connection in step, store nothing
                raise FramekitError(
                    f"the server sent {name!r} without its sha256 (protocol 1 requires it); "
                    "nothing was written"
                )
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                async with trio.wrap_file(os.fdopen(fd, "wb")) as f:
                    async for chunk in incoming:
                        await f.write(chunk)
                        if progress is not None:
                            progress(incoming.received, incoming.size)
                if incoming.size == 0 and progress is not None:
                    progress(0, 0)
                await trio.to_thread.run_sync(os.replace, tmp_name, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
                raise
            assert incoming.sha256 is not None  # verified against the header by now
            return FileInfo(name, incoming.size, incoming.sha256)


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
) -> CommandResult:
    """Connect, run one command, disconnect: the one-call form of :meth:`Client.run`."""
    async with await Client.connect(
        host, port, token=token, ssl_context=ssl_context, retry=retry
    ) as client:
        return await client.run(
            argv, shell=shell, stdin=stdin, timeout=timeout, on_output=on_output
        )


@dataclass(frozen=True, slots=True)
class HostResult:
    """One host's outcome in a :func:`fan_out`: a result, or the error that stopped it."""

    host: str
    port: int
    result: CommandResult | None
    error: Exception | None

    @property
    def label(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"


async def fan_out(
    targets: Sequence[tuple[str, int]],
    argv: Sequence[str] | None = None,
    *,
    shell: str | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    on_output: Callable[[str, OutputChunk], object] | None = None,
) -> list[HostResult]:
    """Run the same command on many servers at once, in one nursery.

    Each host's result or error is reported separately, in the order of ``targets``: one
    failing host does not cancel the others.

    Args:
        on_output: called with (``"host:port"``, chunk) as output arrives from any host.
    """
    results: list[HostResult | None] = [None] * len(targets)

    async def one(index: int, host: str, port: int) -> None:
        label = f"{host}:{port}"

        def forward(chunk: OutputChunk) -> None:
            if on_output is not None:
                on_output(label, chunk)

        try:
            result = await run_command(
                host,
                port,
                argv,
                shell=shell,
                token=token,
                ssl_context=ssl_context,
                retry=retry,
                timeout=timeout,
                on_output=forward,
            )
        except (FramekitError, OSError, trio.BrokenResourceError, trio.EndOfChannel) as exc:
            results[index] = HostResult(host, port, None, exc)
        else:
            results[index] = HostResult(host, port, result, None)

    async with trio.open_nursery() as nursery:
        for index, (host, port) in enumerate(targets):
            nursery.start_soon(one, index, host, port)
    return [r for r in results if r is not None]
