"""Running one command for the server: its own process group, streamed output, limits.

The process runs in a new session (so it leads its own process group). Whatever ends
the command - normal exit, timeout, output limit, the client leaving, server shutdown -
the whole group is killed afterwards, so nothing it started is left behind.

Everything happens in the calling Trio task, with no worker thread: the process is
started with ``subprocess.Popen`` in the Trio thread (as asyncio does; on Linux it is a
``vfork``, so the loop pauses only until the program is exec'd), then one epoll set (a
selector where there is no epoll) holding the command's pipes is awaited through its own
file descriptor, so a single task forwards stdout and stderr, feeds stdin and watches the
deadline. Measured here for
``true``: a thread handoff per command cost more CPU than the spawn itself (see
``docs/performance.md``).

What the platform offers is decided once, at import, never by an ``AttributeError``
mid-command: process groups (POSIX only: without them :func:`require_process_groups`
refuses, so the server never starts on Windows), epoll (else a ``selectors`` selector:
kqueue on macOS) and ``os.pidfd_open`` (Linux; else a worker thread waits for the exit).
"""

from __future__ import annotations

import math
import os
import select
import selectors
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import trio

from .._errors import UnsupportedPlatform
from ..streams._groups import raise_single

__all__ = [
    "PROCESS_GROUPS",
    "CommandOutcome",
    "OutputSink",
    "kill_group",
    "require_process_groups",
    "run_command_streaming",
]

#: Bytes read from a pipe at once: the pipe's default capacity on Linux is 64 KiB.
_PIPE_READ: Final = 64 * 1024
#: How often the loop checks whether the leader exited while a background child still
#: holds its pipes open (then the group is killed so the pipes reach end of file).
_LEADER_POLL: Final = 0.05

Status = Literal["exited", "signaled", "timeout", "cancelled"]

#: ``await sink(stream_name, data)``: where output chunks go, in order per stream.
OutputSink = Callable[[str, bytes], Awaitable[None]]

#: Whether this platform has POSIX process groups: a command started in a new session
#: (``start_new_session``) leads its own group, and ``os.killpg`` ends the whole tree it
#: started. Windows has neither, so the command server refuses to start there
#: (:func:`require_process_groups`) instead of failing halfway through a command.
PROCESS_GROUPS: Final = hasattr(os, "killpg") and hasattr(os, "setsid")
#: POSIX's SIGKILL. Windows has no such signal (nor a command server to send it).
_SIGKILL: Final[int] = getattr(signal, "SIGKILL", 9)
#: sys.platform as people say it, for the refusal.
_PLATFORM_NAMES: Final = {"win32": "Windows", "cygwin": "Cygwin", "emscripten": "Emscripten"}


def require_process_groups(feature: str = "the command server") -> None:
    """Refuse at once where commands cannot be run safely (no POSIX process groups).

    Raises:
        UnsupportedPlatform: on Windows (any platform without ``os.killpg``), with one
            line saying what is unsupported, why, and what does work there.
    """
    if PROCESS_GROUPS:
        return
    name = _PLATFORM_NAMES.get(sys.platform, sys.platform)
    raise UnsupportedPlatform(
        f"{feature} is not supported on {name}: it needs POSIX process groups "
        "(os.killpg) to kill a command's whole process tree; the library, the client "
        "(framekit send), framekit compare and the UDP echo (framekit.serve_udp_echo) "
        "work here",
        feature=feature,
        platform=sys.platform,
    )


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """How a command ended.

    Attributes:
        status: ``exited`` (see ``returncode``), ``signaled`` (see ``signal``), ``timeout``
            (killed at its deadline) or ``cancelled`` (the client left or the server shut
            down).
        returncode: exit code when it exited, else ``None``.
        signal: number of the terminating signal, else ``None``.
        duration: seconds from start to end.
        stdout_bytes: stdout bytes produced (and sent, up to the limit).
        stderr_bytes: stderr bytes produced (and sent, up to the limit).
        truncated: output went over the limit; the process was killed and the rest dropped.
    """

    status: Status
    returncode: int | None
    signal: int | None
    duration: float
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool

    def to_fields(self) -> dict[str, Any]:
        """The outcome as JSON-ready fields for the protocol's ``exit`` message."""
        return {
            "status": self.status,
            "returncode": self.returncode,
            "signal": self.signal,
            "duration": round(self.duration, 6),
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
            "truncated": self.truncated,
        }


def kill_group(pid: int, sig: int = _SIGKILL) -> None:
    """Send ``sig`` to process group ``pid``; a group that is already gone is fine."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _wait_in_thread(proc: subprocess.Popen[bytes]) -> int:
    """Reap ``proc`` on a worker thread (cancellable: the thread is abandoned, and the
    process can be waited again)."""
    returncode = proc.poll()
    if returncode is not None:
        return returncode
    return await trio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)


async def _wait_with_pidfd(proc: subprocess.Popen[bytes]) -> int:
    """Reap ``proc`` through a pidfd the event loop watches: no thread (Linux >= 5.3)."""
    returncode = proc.poll()
    if returncode is not None:
        return returncode
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # a kernel older than 5.3 (ENOSYS), or out of descriptors
        return await _wait_in_thread(proc)
    try:
        await trio.lowlevel.wait_readable(pidfd)  # readable once the process has exited
    finally:
        os.close(pidfd)
    return proc.wait()


#: Reap ``proc`` without blocking the loop (cancellable; it can be waited again): with a
#: pidfd where the os module has ``pidfd_open`` (Linux), else on a thread (macOS, BSD).
_wait_process: Callable[[subprocess.Popen[bytes]], Awaitable[int]] = (
    _wait_with_pidfd if hasattr(os, "pidfd_open") else _wait_in_thread
)


class _EpollPipes:
    """A command's pipes, waitable as one file descriptor: ``select.epoll`` itself.

    The ``selectors`` wrapper around the same epoll cost ~7% of the server's CPU per
    command (keys, lookups, a mapping per call); this keeps only what the pump uses.
    """

    __slots__ = ("_epoll", "_names")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._names: dict[int, str] = {}

    def add(self, fd: int, name: str, *, write: bool = False) -> None:
        self._epoll.register(fd, select.EPOLLOUT if write else select.EPOLLIN)
        self._names[fd] = name

    def remove(self, fd: int) -> None:
        self._epoll.unregister(fd)
        del self._names[fd]

    def ready(self) -> list[tuple[int, str]]:
        """The pipes ready now (an end of file or an error counts), without waiting."""
        names = self._names
        return [(fd, names[fd]) for fd, _ in self._epoll.poll(0)]

    def fileno(self) -> int:
        return self._epoll.fileno()

    def close(self) -> None:
        self._epoll.close()

    def __bool__(self) -> bool:
        return bool(self._names)


class _SelectorPipes:
    """The same as :class:`_EpollPipes` through ``selectors`` (kqueue on macOS and BSD)."""

    __slots__ = ("_selector",)

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def add(self, fd: int, name: str, *, write: bool = False) -> None:
        self._selector.register(fd, selectors.EVENT_WRITE if write else selectors.EVENT_READ, name)

    def remove(self, fd: int) -> None:
        self._selector.unregister(fd)

    def ready(self) -> list[tuple[int, str]]:
        """The pipes ready now, without waiting."""
        return [(key.fd, key.data) for key, _ in self._selector.select(0)]

    def fileno(self) -> int:
        return self._selector.fileno()

    def close(self) -> None:
        self._selector.close()

    def __bool__(self) -> bool:
        return bool(self._selector.get_map())


_PipeSet = _EpollPipes | _SelectorPipes
#: The pipe set: epoll itself where the select module has it (Linux), else a selector.
_Pipes: type[_PipeSet] = _EpollPipes if hasattr(select, "epoll") else _SelectorPipes


@dataclass(slots=True)
class _CommandPipes:
    """The server's ends of a command's pipes, as descriptors (-1: none, or closed).

    Made here rather than by ``Popen(stdout=PIPE, ...)``, which wraps each end in a
    buffered file object the pump never uses and opens ``/dev/null`` through more
    layers: about a fifth of what spawning ``true`` cost the server (see
    ``docs/performance.md``).
    """

    stdout: int = -1
    stderr: int = -1
    stdin: int = -1  # the write end of the command's stdin, when it has input

    @classmethod
    def spawn(cls, with_input: bool, **popen: Any) -> tuple[subprocess.Popen[bytes], _CommandPipes]:
        """``Popen(**popen)`` with its stdin, stdout and stderr on new pipes (stdin on
        ``/dev/null`` without input). Nothing is left open if it raises."""
        pipes = cls()
        child: list[int] = []  # the command's ends: closed here once it has them
        try:
            pipes.stdout, out = os.pipe()
            child.append(out)
            pipes.stderr, err = os.pipe()
            child.append(err)
            if with_input:
                inp, pipes.stdin = os.pipe()
            else:
                inp = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            child.append(inp)
            proc = subprocess.Popen(stdin=inp, stdout=out, stderr=err, **popen)
        except BaseException:
            pipes.close()
            raise
        finally:
            for fd in child:
                os.close(fd)
        return proc, pipes

    def take_stdin(self) -> int:
        """Hand the stdin write end over to the caller, who closes it from now on."""
        fd, self.stdin = self.stdin, -1
        return fd

    def close_stdin(self) -> None:
        if self.stdin >= 0:
            os.close(self.take_stdin())

    def close(self) -> None:
        fds = (self.stdin, self.stdout, self.stderr)
        self.stdin = self.stdout = self.stderr = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)


@dataclass(slots=True)
class _Pump:
    """The state of one running command, as its task moves output and watches limits.

    :meth:`open` sets up the pipes, :meth:`run` moves bytes (it can stop at a given time
    and be called again), :meth:`close` lets go of the pipe set.
    """

    proc: subprocess.Popen[bytes]
    sink: OutputSink
    budget: int  # output bytes still allowed; -1: no limit
    counts: dict[str, int]
    stdin: memoryview
    fds: _CommandPipes
    truncated: bool = False
    timed_out: bool = False
    pipes: _PipeSet | None = None
    leader_gone: bool = False  # the leader exited; a background child holds the pipes
    next_poll: float = math.inf  # when to check that again

    def open(self) -> None:
        """Put the command's pipes in one waitable set (stdin too if there is input)."""
        fds = self.fds
        pipes = self.pipes = _Pipes()
        for name, fd in (("stdout", fds.stdout), ("stderr", fds.stderr)):
            os.set_blocking(fd, False)
            pipes.add(fd, name)
        if fds.stdin >= 0 and self.stdin:
            os.set_blocking(fds.stdin, False)
            pipes.add(fds.stdin, "stdin", write=True)
        self.next_poll = trio.current_time() + _LEADER_POLL

    def close(self) -> None:
        if self.pipes is not None:
            self.pipes.close()

    async def run(self, deadline: float, until: float = math.inf) -> int | None:
        """Move bytes until both output pipes are closed, then reap: the exit status.

        ``None`` if ``until`` came while the pipes were still open: call again to go on.
        """
        proc = self.proc
        pipes = self.pipes
        assert pipes is not None
        while pipes:
            ready = pipes.ready()
            if not ready:
                wake = min(
                    math.inf if self.timed_out else deadline,
                    math.inf if self.leader_gone else self.next_poll,
                    until,
                )
                with trio.move_on_at(wake):
                    await trio.lowlevel.wait_readable(pipes.fileno())
                ready = pipes.ready()
            # Checked on every pass, not only after a wait: a command whose output never
            # stops, read by a slow client, always has a pipe ready.
            now = trio.current_time()
            if not self.timed_out and now >= deadline:
                self.timed_out = True
                kill_group(proc.pid)  # the pipes now close; their output so far is sent
            if not ready and not self.leader_gone and now >= self.next_poll:
                if proc.poll() is not None:
                    # The leader exited but a background child holds the pipes
                    # open: kill the rest of the group so they close.
                    self.leader_gone = True
                    kill_group(proc.pid)
                self.next_poll = now + _LEADER_POLL
            for fd, name in ready:
                await self._move(pipes, fd, name)
            if now >= until and pipes:
                return None
        # The pipes are closed, but the leader may still run (it closed its output).
        returncode = proc.poll()
        if returncode is not None:
            return returncode  # the usual case: no timeout scope needed
        if self.timed_out:
            return await _wait_process(proc)
        with trio.move_on_at(deadline):
            return await _wait_process(proc)
        self.timed_out = True
        kill_group(proc.pid)
        return await _wait_process(proc)

    async def run_or_stop(
        self, deadline: float, until: float, shutdown_grace: float | Callable[[], float]
    ) -> int | None:
        """:meth:`run`; if that raises, the command is stopped first: a cancellation gets
        SIGTERM and ``shutdown_grace`` seconds before SIGKILL, anything else SIGKILL."""
        try:
            return await self.run(deadline, until)
        except BaseException as exc:
            proc = self.proc
            with trio.CancelScope(shield=True):
                if isinstance(exc, trio.Cancelled):  # asked to stop: SIGTERM and a grace first
                    kill_group(proc.pid, signal.SIGTERM)
                    grace = shutdown_grace() if callable(shutdown_grace) else shutdown_grace
                    with trio.move_on_after(grace):
                        await _wait_process(proc)
                kill_group(proc.pid)
                await _wait_process(proc)
            raise

    async def _move(self, pipes: _PipeSet, fd: int, name: str) -> None:
        """Feed stdin, or read one chunk of output and pass it on, for one ready pipe."""
        if name == "stdin":
            try:
                self.stdin = self.stdin[os.write(fd, self.stdin) :]
            except BlockingIOError:
                return
            except OSError:
                self.stdin = self.stdin[:0]  # it stopped reading: its business
            if not self.stdin:
                pipes.remove(fd)
                self.fds.close_stdin()  # the command sees the end of its input
            return
        try:
            data = os.read(fd, _PIPE_READ)
        except BlockingIOError:
            return
        if not data:
            pipes.remove(fd)
            return
        self.counts[name] += len(data)
        if self.budget >= 0:
            if len(data) > self.budget:
                data = data[: self.budget]
                if not self.truncated:
                    self.truncated = True
                    kill_group(self.proc.pid)
            self.budget -= len(data)
        if data:
            await self.sink(name, data)


async def _feed(pipe: trio.lowlevel.FdStream, source: trio.MemoryReceiveChannel[bytes]) -> None:
    """Write each chunk from ``source`` to the command's stdin as the pipe takes it (one
    chunk in flight: the sender waits, so memory stays bounded); close the pipe at the
    source's end. A command that stops reading its stdin gets the rest dropped, so the
    sender is never left waiting."""
    async with pipe, source:
        reading = True
        async for chunk in source:
            if not reading:
                continue
            try:
                await pipe.send_all(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                reading = False  # it closed its stdin (or exited): its business


async def run_command_streaming(
    args: Sequence[str] | str,
    *,
    sink: OutputSink,
    stdin: bytes = b"",
    stdin_stream: trio.MemoryReceiveChannel[bytes] | None = None,
    shell: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    max_output: int | None = None,
    shutdown_grace: float | Callable[[], float] = 5.0,
    slow_after: float = math.inf,
    on_slow: Callable[[trio.Nursery], object] = lambda helpers: None,
) -> CommandOutcome:
    """Run a command, passing its output to ``sink`` as it is produced.

    Its stdin is ``stdin`` (fed as the pipe takes it), or each chunk received from
    ``stdin_stream`` until that channel is closed (streamed input of any length, with
    backpressure: a chunk is taken only once the previous one was written), or nothing.

    At ``timeout`` the group is killed and the status is ``timeout``. If the caller is
    cancelled (client gone, server stopping), the group gets SIGTERM, up to
    ``shutdown_grace`` seconds to exit, then SIGKILL; ``Cancelled`` propagates once the
    command is gone. ``shutdown_grace`` may be a callable, asked at that moment (so the
    caller can say 0 when its client vanished). If ``sink`` raises, the group is killed
    at once and the exception propagates.

    A command still running ``slow_after`` seconds after it started (or from the start,
    with ``stdin_stream``) runs on inside a nursery, and ``on_slow(nursery)`` is called
    once: it may start tasks there (the server watches its client), which are cancelled
    when the command ends. Most commands end sooner, and pay for no nursery. Cancelling
    that nursery's scope (``nursery.cancel_scope.cancel()``) stops the command as a
    cancellation of the caller does (SIGTERM, ``shutdown_grace``, SIGKILL), and the
    outcome's status is then ``cancelled``.

    Raises:
        OSError: the program could not be started (not found, not executable).
    """
    start = trio.current_time()
    # Started in the Trio thread on purpose (see the module docstring): the loop pauses
    # only for the vfork/exec, and no thread handoff is paid per command.
    proc, fds = _CommandPipes.spawn(
        bool(stdin) or stdin_stream is not None,
        args=args,
        shell=shell,
        start_new_session=True,
        cwd=cwd,
        env=env,
    )
    pump = _Pump(
        proc,
        sink,
        budget=max_output if max_output is not None else -1,
        counts={"stdout": 0, "stderr": 0},
        stdin=memoryview(stdin),
        fds=fds,
    )
    deadline = math.inf if timeout is None else start + timeout
    stopped = False
    try:
        pump.open()
        returncode: int | None = None
        if stdin_stream is None:
            returncode = await pump.run_or_stop(deadline, start + slow_after, shutdown_grace)
        if returncode is None:  # still running (or fed from a stream): the rest is watched
            try:
                async with trio.open_nursery() as helpers:
                    if stdin_stream is not None:
                        write_end = trio.lowlevel.FdStream(fds.take_stdin())  # closes it
                        helpers.start_soon(_feed, write_end, stdin_stream)
                    on_slow(helpers)
                    returncode = await pump.run_or_stop(deadline, math.inf, shutdown_grace)
                    helpers.cancel_scope.cancel()  # the command ended, and so does their work
            except BaseExceptionGroup as group:
                raise_single(group)  # a cancellation stays a Cancelled (grace, then kill)
            if returncode is None:  # a helper cancelled the nursery: the command was stopped
                stopped = True
                returncode = proc.returncode  # reaped by run_or_stop
    except BaseException:
        # run_or_stop has stopped and reaped it; anything raised around it (setting up
        # the pipes, on_slow) leaves that to here.
        with trio.CancelScope(shield=True):
            kill_group(proc.pid)
            await _wait_process(proc)
        raise
    finally:
        pump.close()
        kill_group(proc.pid)  # whatever is left of the group, on every path
        fds.close()
    duration = trio.current_time() - start
    assert returncode is not None
    status: Status = "cancelled" if stopped else "timeout" if pump.timed_out else "exited"
    sig: int | None = None
    code: int | None = returncode
    if returncode < 0:
        sig, code = -returncode, None
        if status == "exited":
            status = "signaled"
    if status in ("timeout", "cancelled"):
        code = None
    return CommandOutcome(
        status=status,
        returncode=code,
        signal=sig,
        duration=duration,
        stdout_bytes=pump.counts["stdout"],
        stderr_bytes=pump.counts["stderr"],
        truncated=pump.truncated,
    )
