"""run_command_streaming: output, stdin, limits, cancellation and clean-up, on real processes."""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio

from framekit.remote import _processes as _commands
from framekit.remote._processes import CommandOutcome, run_command_streaming

from ..helpers import process_gone, wait_gone


@pytest.fixture(autouse=True, params=["linux", "portable"])
def platform_calls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs twice: on what Linux offers (epoll itself, a pidfd to wait for the
    exit) and on the fallbacks chosen where it is missing (macOS, the BSDs: a selectors
    selector, a worker thread to wait), with ``os.pidfd_open`` gone so it cannot be
    called by mistake."""
    if request.param == "linux":
        if not (hasattr(select, "epoll") and hasattr(os, "pidfd_open")):
            pytest.skip("no epoll or pidfd_open on this platform")
        monkeypatch.setattr(_commands, "_Pipes", _commands._EpollPipes)
        monkeypatch.setattr(_commands, "_wait_process", _commands._wait_with_pidfd)
    else:
        monkeypatch.setattr(_commands, "_Pipes", _commands._SelectorPipes)
        monkeypatch.setattr(_commands, "_wait_process", _commands._wait_in_thread)
        monkeypatch.delattr(os, "pidfd_open", raising=False)


class Sink:
    """Collects output chunks as the command produces them."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    async def __call__(self, name: str, data: bytes) -> None:
        self.chunks.append((name, data))

    def joined(self, name: str) -> bytes:
        return b"".join(data for stream, data in self.chunks if stream == name)

    def pids(self) -> list[int]:
        return [int(word) for word in self.joined("stdout").split()]


async def test_streams_stdout_and_stderr_and_reports_the_exit_code() -> None:
    sink = Sink()
    outcome = await run_command_streaming(
        ["sh", "-c", "printf out; printf err >&2; exit 3"], sink=sink
    )
    assert sink.joined("stdout") == b"out" and sink.joined("stderr") == b"err"
    assert outcome == CommandOutcome(
        status="exited",
        returncode=3,
        signal=None,
        duration=outcome.duration,
        stdout_bytes=3,
        stderr_bytes=3,
        truncated=False,
    )
    assert outcome.duration > 0


async def test_a_signal_is_reported_as_such() -> None:
    outcome = await run_command_streaming(["sh", "-c", "kill -TERM $$"], sink=Sink())
    assert (outcome.status, outcome.returncode, outcome.signal) == (
        "signaled",
        None,
        signal.SIGTERM,
    )


async def test_stdin_bigger_than_a_pipe_is_fed_while_output_is_read() -> None:
    data = bytes(range(256)) * 1024  # 256 KiB: the pipes fill both ways at once
    sink = Sink()
    outcome = await run_command_streaming(["cat"], sink=sink, stdin=data)
    assert outcome.returncode == 0
    assert sink.joined("stdout") == data


async def test_a_command_that_stops_reading_stdin_is_not_an_error() -> None:
    sink = Sink()
    outcome = await run_command_streaming(["true"], sink=sink, stdin=b"x" * 1_000_000)
    assert outcome.returncode == 0 and sink.chunks == []


async def test_timeout_kills_the_group_and_keeps_the_output_so_far() -> None:
    sink = Sink()
    outcome = await run_command_streaming(
        ["sh", "-c", "echo $$; sleep 30 & echo $!; wait"], sink=sink, timeout=0.5
    )
    assert (outcome.status, outcome.returncode, outcome.signal) == ("timeout", None, 9)
    assert len(sink.pids()) == 2  # printed before the deadline, still delivered
    await wait_gone(sink.pids())


async def test_timeout_holds_for_output_that_never_stops_to_a_slow_reader() -> None:
    # `yes` refills its pipe while the sink waits on its client, so a pipe is ready at
    # every look: the deadline must not wait for a pass that found nothing to read.
    received = 0

    async def slow_client(name: str, data: bytes) -> None:
        nonlocal received
        received += len(data)
        await trio.sleep(0.02)

    with trio.fail_after(10):
        outcome = await run_command_streaming(["yes"], sink=slow_client, timeout=0.3)
    assert (outcome.status, outcome.returncode, outcome.signal) == ("timeout", None, 9)
    assert outcome.duration < 2
    assert received == outcome.stdout_bytes > 0


async def test_output_over_the_limit_is_cut_exactly_and_the_group_killed() -> None:
    sink = Sink()
    outcome = await run_command_streaming(["yes"], sink=sink, max_output=100_000)
    assert outcome.truncated
    assert sum(len(data) for _, data in sink.chunks) == 100_000
    assert outcome.stdout_bytes >= 100_000
    assert outcome.status == "signaled" and outcome.signal == signal.SIGKILL


async def test_a_background_child_holding_the_pipes_is_killed_after_the_leader_exits() -> None:
    sink = Sink()
    with trio.fail_after(10):  # without the leader check this would wait 30 s
        outcome = await run_command_streaming(["sh", "-c", "sleep 30 & echo $!"], sink=sink)
    assert outcome.status == "exited" and outcome.returncode == 0
    await wait_gone(sink.pids())


async def test_a_leader_that_closes_its_output_is_still_waited_for() -> None:
    outcome = await run_command_streaming(
        ["sh", "-c", "exec >&- 2>&-; sleep 0.3; exit 4"], sink=Sink()
    )
    assert outcome.returncode == 4 and outcome.duration >= 0.3


async def test_a_program_that_cannot_start_raises_oserror() -> None:
    with pytest.raises(FileNotFoundError):
        await run_command_streaming(["/nonexistent/framekit-test"], sink=Sink())


@pytest.mark.parametrize("ignores_term", [False, True])
async def test_cancelling_sends_sigterm_then_sigkill_after_the_grace(ignores_term: bool) -> None:
    trap = "trap '' TERM; " if ignores_term else ""
    sink = Sink()
    started = trio.Event()

    async def record(name: str, data: bytes) -> None:
        await sink(name, data)
        if len(sink.pids()) >= 2:
            started.set()

    async with trio.open_nursery() as nursery:

        async def run() -> None:
            with pytest.raises(trio.Cancelled):
                await run_command_streaming(
                    ["sh", "-c", trap + "echo $$; sleep 30 & echo $!; wait"],
                    sink=record,
                    shutdown_grace=0.5,
                )

        nursery.start_soon(run)
        with trio.fail_after(5):
            await started.wait()
        start = trio.current_time()
        nursery.cancel_scope.cancel()
    waited = trio.current_time() - start
    # A shell that obeys SIGTERM ends at once; one that ignores it gets the whole grace.
    assert (waited >= 0.5) == ignores_term
    assert all(process_gone(pid) for pid in sink.pids()[:1])  # the leader was reaped
    await wait_gone(sink.pids())


async def test_a_failing_sink_kills_the_command_and_propagates() -> None:
    pids: list[int] = []

    async def failing(name: str, data: bytes) -> None:
        pids.extend(int(word) for word in data.split())
        raise RuntimeError("the client went away")

    with trio.fail_after(10), pytest.raises(RuntimeError, match="went away"):
        await run_command_streaming(["sh", "-c", "echo $$; exec sleep 30"], sink=failing)
    await wait_gone(pids)


class NurseryCounter(Sink):
    """A sink that also notes how many nurseries the command's task has open, beyond
    those open where it was made (made in the task that runs the command)."""

    def __init__(self) -> None:
        super().__init__()
        self.before = len(trio.lowlevel.current_task().child_nurseries)
        self.open_nurseries: list[int] = []

    async def __call__(self, name: str, data: bytes) -> None:
        now = len(trio.lowlevel.current_task().child_nurseries)
        self.open_nurseries.append(now - self.before)
        await super().__call__(name, data)


async def test_a_long_command_goes_on_in_a_nursery_given_to_on_slow() -> None:
    nurseries: list[trio.Nursery] = []
    helper_ended = trio.Event()

    async def helper() -> None:
        try:
            await trio.sleep_forever()
        finally:
            helper_ended.set()  # cancelled when the command ended

    def on_slow(nursery: trio.Nursery) -> None:
        nurseries.append(nursery)
        nursery.start_soon(helper)

    sink = NurseryCounter()
    outcome = await run_command_streaming(
        ["sh", "-c", "echo early; sleep 0.4; echo late"],
        sink=sink,
        slow_after=0.1,
        on_slow=on_slow,
    )
    assert (outcome.status, outcome.returncode) == ("exited", 0)
    assert len(nurseries) == 1 and helper_ended.is_set()
    assert sink.joined("stdout") == b"early\nlate\n"
    # "late" came after the command was slow, inside its nursery ("early" normally
    # before, outside it: not asserted, a loaded machine may start `sh` late)
    assert sink.open_nurseries[-1] == 1


async def test_a_fast_command_opens_no_nursery_and_is_never_slow() -> None:
    calls: list[trio.Nursery] = []
    sink = NurseryCounter()
    outcome = await run_command_streaming(
        ["echo", "quick"], sink=sink, slow_after=5, on_slow=calls.append
    )
    assert outcome.returncode == 0 and sink.joined("stdout") == b"quick\n"
    assert calls == [] and sink.open_nurseries == [0]


def streamed_stdin(nursery: trio.Nursery, *chunks: bytes) -> trio.MemoryReceiveChannel[bytes]:
    """A command's streamed stdin: ``chunks``, then its end, sent by a task in ``nursery``."""
    send, receive = trio.open_memory_channel[bytes](0)

    async def client() -> None:
        async with send:
            for chunk in chunks:
                await send.send(chunk)

    nursery.start_soon(client)
    return receive


async def test_a_streamed_stdin_is_watched_from_the_start() -> None:
    calls: list[trio.Nursery] = []
    async with trio.open_nursery() as nursery:
        outcome = await run_command_streaming(
            ["cat"], sink=Sink(), stdin_stream=streamed_stdin(nursery, b"in"), on_slow=calls.append
        )
    assert outcome.returncode == 0 and len(calls) == 1


@pytest.mark.parametrize("grace", [5.0, 0.0])
async def test_cancelling_the_slow_nursery_stops_the_command(grace: float) -> None:
    sink = Sink()

    def stop_at_once(nursery: trio.Nursery) -> None:
        nursery.cancel_scope.cancel()  # as the server's watcher does on `cancel`

    with trio.fail_after(10):
        outcome = await run_command_streaming(
            ["sh", "-c", "echo $$; exec sleep 30"],
            sink=sink,
            slow_after=0.1,
            on_slow=stop_at_once,
            shutdown_grace=lambda: grace,
        )
    assert (outcome.status, outcome.returncode) == ("cancelled", None)
    if grace:  # SIGTERM first, and sleep ends at once on it
        assert outcome.signal == signal.SIGTERM
    else:
        assert outcome.signal in (signal.SIGTERM, signal.SIGKILL)
    assert outcome.duration < 10
    await wait_gone(sink.pids())


async def test_on_slow_raising_still_ends_and_reaps_the_command() -> None:
    sink = Sink()

    def broken(nursery: trio.Nursery) -> None:
        raise RuntimeError("the caller's helper failed")

    with trio.fail_after(10), pytest.raises(RuntimeError, match="helper failed"):
        await run_command_streaming(
            ["sh", "-c", "echo $$; exec sleep 30"], sink=sink, slow_after=0.1, on_slow=broken
        )
    await wait_gone(sink.pids())


async def test_streamed_stdin_flows_with_backpressure_and_ends_at_eof() -> None:
    sink = Sink()
    send, receive = trio.open_memory_channel[bytes](0)
    chunk = b"x" * 65536
    sent: list[int] = []

    async def client() -> None:
        async with send:
            for i in range(64):  # 4 MiB, far more than a pipe holds
                await send.send(chunk)  # waits until the pipe took the previous one
                sent.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        outcome = await run_command_streaming(["wc", "-c"], sink=sink, stdin_stream=receive)
    assert outcome.returncode == 0 and sink.joined("stdout").strip() == b"4194304"
    assert len(sent) == 64


async def test_streamed_stdin_to_a_command_that_stops_reading_never_blocks_the_sender() -> None:
    sink = Sink()
    send, receive = trio.open_memory_channel[bytes](0)

    async def endless() -> None:
        async with send:
            while True:
                try:
                    await send.send(b"y\n" * 10_000)
                except trio.BrokenResourceError:
                    return  # the command has ended: its stdin is gone

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(endless)
            outcome = await run_command_streaming(
                ["head", "-c", "5"], sink=sink, stdin_stream=receive
            )
    assert outcome.returncode == 0 and sink.joined("stdout") == b"y\ny\ny"


async def test_cancelling_a_command_with_streamed_stdin_still_gives_its_grace(
    tmp_path: Path,
) -> None:
    # A cancellation through the stdin-feeding nursery once came out as an exception
    # group: the group was SIGKILLed at once, without SIGTERM and the grace period.
    sink = Sink()
    send, receive = trio.open_memory_channel[bytes](0)
    mark = tmp_path / "term"
    script = f"trap 'echo term > {mark}; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
    with trio.move_on_after(5):
        async with send, trio.open_nursery() as nursery:

            async def cancel_when_ready() -> None:
                while b"ready" not in sink.joined("stdout"):
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()

            nursery.start_soon(cancel_when_ready)
            await run_command_streaming(
                ["sh", "-c", script], sink=sink, stdin_stream=receive, shutdown_grace=3
            )
    assert mark.read_text() == "term\n"  # it got SIGTERM, and the time to handle it


def open_descriptors() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_no_descriptor_is_left_open_however_a_command_ends() -> None:
    """The server makes the command's pipes itself: every way a command can end closes
    them all (a server that leaks a descriptor per command runs out of them)."""
    fail = RuntimeError("the client went away")

    async def failing(name: str, data: bytes) -> None:
        raise fail

    async def streamed() -> CommandOutcome:
        async with trio.open_nursery() as nursery:
            stdin = streamed_stdin(nursery, b"abc")
            return await run_command_streaming(["cat"], sink=Sink(), stdin_stream=stdin)

    async def cancelled() -> None:
        with trio.move_on_after(0.2):
            await run_command_streaming(["sleep", "30"], sink=Sink(), shutdown_grace=0.1)

    ways: list[Callable[[], Awaitable[object]]] = [
        partial(run_command_streaming, ["true"], sink=Sink()),
        partial(run_command_streaming, ["cat"], sink=Sink(), stdin=b"input"),
        partial(run_command_streaming, ["sleep", "30"], sink=Sink(), timeout=0.1),
        partial(run_command_streaming, ["yes"], sink=Sink(), max_output=10),
        partial(run_command_streaming, ["sh", "-c", "sleep 0.2"], sink=Sink(), slow_after=0.05),
        partial(run_command_streaming, ["echo", "x"], sink=failing),
        partial(run_command_streaming, ["/nonexistent/framekit-test"], sink=Sink()),
        streamed,
        cancelled,
    ]
    before = open_descriptors()
    for way in ways:
        with contextlib.suppress(RuntimeError, FileNotFoundError):
            await way()
        assert open_descriptors() == before, way
