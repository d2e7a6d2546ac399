"""Running one command on many servers at once, each host's outcome kept apart."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from ..streams import Retry, format_address
from ._client import CommandResult, OutputChunk, run_command

__all__ = ["HostResult", "fan_out"]


@dataclass(frozen=True, slots=True)
class HostResult:
    """One host's outcome in a :func:`fan_out`: a result, or the error that stopped it."""

    host: str
    port: int
    result: CommandResult | None
    error: Exception | None

    @property
    def label(self) -> str:
        """``host:port`` (``[v6]:port``)."""
        return format_address(self.host, self.port)


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
) -> list[HostResult]:
    """Run the same command on many servers at once, in one nursery.

    Each host's result or error is reported separately, in the order of ``targets``: one
    failing host (refused, timed out, a malformed greeting, a broken connection, any
    exception at all) does not cancel the others; its exception is its
    :attr:`HostResult.error`.

    Args:
        on_output: called with (``"host:port"``, chunk) as output arrives from any host.
        collect: keep each host's output in its result (turn off when ``on_output``
            streams it, so memory does not grow with the output).
    """
    results: list[HostResult | None] = [None] * len(targets)

    async def one(index: int, host: str, port: int) -> None:
        label = format_address(host, port)

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
                collect=collect,
            )
        except Exception as exc:  # whatever one host does is that host's result alone
            results[index] = HostResult(host, port, None, exc)
        else:
            results[index] = HostResult(host, port, result, None)

    async with trio.open_nursery() as nursery:
        for index, (host, port) in enumerate(targets):
            nursery.start_soon(one, index, host, port)
    return [r for r in results if r is not None]
