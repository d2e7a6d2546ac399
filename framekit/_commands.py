"""Running one command for the server: its own process group, streamed output, limits.

The process runs in a new session (so it leads its own process group). Whatever ends
the command - normal exit, timeout, output limit, the client leaving, server shutdown -
the whole group is killed afterwards, so nothing it started is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import trio

__all__ = ["CommandOutcome", "OutputSink", "kill_group", "run_command_streaming"]

log = logging.getLogger("framekit.server")

#: Bytes read from a pipe at once: the pipe's default capacity on Linux is 64 KiB.
_PIPE_READ = 64 * 1024

Status = Literal["exited", "signaled", "timeout", "cancelled"]

#: ``await sink(stream_name, data)``: where output chunks go, in order per stream.
OutputSink = Callable[[str, bytes], Awaitable[None]]


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


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to process group ``pid``; a group that is already gone is fine."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def run_command_streaming(
    args: Sequence[str] | str,
    *,
    sink: OutputSink,
    stdin: bytes = b"",
    shell: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    max_output: int | None = None,
    shutdown_grace: float = 5.0,
) -> CommandOutcome:
    """Run a command, passing its output to ``sink`` as it is produced.

    If the caller is cancelled (client gone, server stopping), the group gets SIGTERM,
    up to ``shutdown_grace`` seconds to exit, then SIGKILL; ``Cancelled`` propagates.

    Raises:
        OSError: the program could not be started (not found, not executable).
    """
    start = trio.current_time()
    proc = await trio.lowlevel.open_process(
        args,
        shell=shell,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd=cwd,
        env=env,
    )
    counts = {"stdout": 0, "stderr": 0}
    state = {"truncated": False}
    budget = [max_output if max_output is not None else -1]

    async def pump(pipe: trio.abc.ReceiveStream, name: str) -> None:
        while True:
            data = bytes(await pipe.receive_some(_PIPE_READ))
            if not data:
                return
            counts[name] += len(data)
            if budget[0] >= 0:
                if len(data) > budget[0]:
                    data = data[: budget[0]]
                    state["truncated"] = True
                budget[0] -= len(data)
            if data:
                await sink(name, data)
            if state["truncated"]:
                kill_group(proc.pid)
                return

    async def feed(pipe: trio.abc.SendStream) -> None:
        try:
            await pipe.send_all(stdin)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the program did not read all of its stdin; that is its business
        finally:
            await pipe.aclose()

    status: Status = "exited"
    try:
        async with trio.open_nursery() as nursery:
            assert proc.stdout is not None and proc.stderr is not None
            if proc.stdin is not None:
                nursery.start_soon(feed, proc.stdin)
            nursery.start_soon(pump, proc.stdout, "stdout")
            nursery.start_soon(pump, proc.stderr, "stderr")
            with trio.move_on_after(timeout if timeout is not None else float("inf")) as deadline:
                await proc.wait()
            if deadline.cancelled_caught:
                status = "timeout"
            # The leader is gone (or timed out): kill the rest of its group, which also
            # closes any pipe a background child still held, so the pumps reach EOF.
            kill_group(proc.pid)
    except BaseException:
        with trio.CancelScope(shield=True):
            kill_group(proc.pid, signal.SIGTERM)
            with trio.move_on_after(shutdown_grace):
                await proc.wait()
            kill_group(proc.pid)
            await proc.wait()
        raise
    returncode = await proc.wait()
    duration = trio.current_time() - start
    sig: int | None = None
    code: int | None = returncode
    if returncode < 0:
        sig, code = -returncode, None
        if status == "exited":
            status = "signaled"
    if status == "timeout":
        code = None
    return CommandOutcome(
        status=status,
        returncode=code,
        signal=sig,
        duration=duration,
        stdout_bytes=counts["stdout"],
        stderr_bytes=counts["stderr"],
        truncated=state["truncated"],
    )
