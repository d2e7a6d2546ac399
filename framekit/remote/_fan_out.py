"""Work on many servers at once: a bounded number at a time, each host's outcome apart."""

from __future__ import annotations

import math
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import trio

from .._errors import FramekitError
from ..streams import Retry, format_address
from ._client import Client, CommandResult, OutputChunk

__all__ = ["DEFAULT_PARALLEL", "HostResult", "HostTimeout", "fan_out", "for_each_host"]

#: Hosts worked on at once by default: pssh's default (-p 32).
DEFAULT_PARALLEL: Final = 32

T = TypeVar("T")


class HostTimeout(FramekitError, TimeoutError):
    """A host did not finish within the ``deadline`` of :func:`for_each_host`."""


@dataclass(frozen=True, slots=True)
class HostResult(Generic[T]):
    """One host's outcome: a result, or the error that stopped it.

    Attributes:
        host: the host, as given.
        port: its port.
        result: what the job returned (a :class:`CommandResult` for :func:`fan_out`),
            or ``None`` if it failed.
        error: the exception that stopped it, or ``None``.
        duration: seconds from the start of this host's turn to its end.
    """

    host: str
    port: int
    result: T | None
    error: Exception | None
    duration: float = 0.0

    @property
    def label(self) -> str:
        """``host:port`` (``[v6]:port``)."""
        return format_address(self.host, self.port)


async def for_each_host(
    targets: Sequence[tuple[str, int]],
    job: Callable[[Client, str], Awaitable[T]],
    *,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    retry: Retry | None = None,
    parallel: int = DEFAULT_PARALLEL,
    deadline: float | None = None,
    on_done: Callable[[HostResult[T]], object] | None = None,
) -> list[HostResult[T]]:
    """Connect to each target and run ``await job(client, label)``, ``parallel`` at a time.

    Each host's result or error is kept apart, in the order of ``targets``: one failing
    host (refused, timed out, a malformed greeting, a broken connection, any exception
    at all) does not cancel the others; its exception is its :attr:`HostResult.error`.

    Args:
        job: the work for one host, given its connected client and ``"host:port"``.
        parallel: most hosts worked on at once (pssh's ``-p``).
        deadline: seconds each host gets, connecting included; a host that takes longer
            is stopped with :class:`HostTimeout`.
        on_done: called with each host's result as soon as it ends (in finishing order).

    Raises:
        ValueError: ``parallel`` is below 1.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    results: list[HostResult[T] | None] = [None] * len(targets)
    limiter = trio.CapacityLimiter(parallel)

    async def one(index: int, host: str, port: int) -> None:
        label = format_address(host, port)
        async with limiter:
            start = trio.current_time()
            outcome: T | None = None
            error: Exception | None = None
            with trio.move_on_after(math.inf if deadline is None else deadline) as scope:
                try:
                    async with await Client.connect(
                        host, port, token=token, ssl_context=ssl_context, retry=retry
                    ) as client:
                        outcome = await job(client, label)
                except Exception as exc:  # one host's failure is that host's result alone
                    error = exc
            if scope.cancelled_caught:
                error = HostTimeout(f"{label} did not finish within {deadline:g} s")
            result = HostResult(host, port, outcome, error, trio.current_time() - start)
        results[index] = result
        if on_done is not None:
            on_done(result)

    async with trio.open_nursery() as nursery:
        for index, (host, port) in enumerate(targets):
            nursery.start_soon(one, index, host, port)
    return [r for r in results if r is not None]


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
    collect: bool = True,
    parallel: int = DEFAULT_PARALLEL,
    deadline: float | None = None,
    on_done: Callable[[HostResult[CommandResult]], object] | None = None,
) -> list[HostResult[CommandResult]]:
    """Run the same command on many servers, ``parallel`` at a time (see
    :func:`for_each_host` for how hosts and failures are handled).

    Args:
        timeout: seconds before each server kills the command.
        on_output: called with (``"host:port"``, chunk) as output arrives from any host.
        collect: keep each host's output in its result (turn off when ``on_output``
            streams it, so memory does not grow with the output).
        parallel: most hosts at once.
        deadline: seconds each host gets, connecting included.
        on_done: called with each host's result as soon as it ends.
    """

    async def run(client: Client, label: str) -> CommandResult:
        def forward(chunk: OutputChunk) -> None:
            if on_output is not None:
                on_output(label, chunk)

        return await client.run(
            argv, shell=shell, timeout=timeout, on_output=forward, collect=collect
        )

    return await for_each_host(
        targets,
        run,
        token=token,
        ssl_context=ssl_context,
        retry=retry,
        parallel=parallel,
        deadline=deadline,
        on_done=on_done,
    )
