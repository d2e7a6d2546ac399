"""Opening framed connections: TCP or TLS, with bounded retry and backoff."""

from __future__ import annotations

import errno
import logging
import math
import random
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import trio

from .._errors import ConnectError
from ..codec import DEFAULT_FORMAT, FrameFormat, Framing
from ._address import format_address
from ._framed import FramedStream
from ._message_stream import MessageStream

__all__ = [
    "Retry",
    "open_framed_connection",
    "open_framed_stream",
    "open_message_connection",
    "open_message_stream",
    "open_stream",
    "speaks_tls",
]

log = logging.getLogger("framekit")


@dataclass(frozen=True, slots=True)
class Retry:
    """How long to keep trying to connect: the tutorials' "wait and reconnect", bounded.

    Delays grow from ``initial_delay`` by ``multiplier`` up to ``max_delay``, each with
    +/- ``jitter`` (a fraction) so many clients do not retry in lock-step. Trying stops
    after ``attempts`` tries or ``timeout`` seconds, whichever comes first; at least one
    of the two must be set.

    Args:
        attempts: most connection attempts (``None``: bounded by ``timeout`` only).
        timeout: most seconds spent trying (``None``: bounded by ``attempts`` only).
        initial_delay: seconds before the second attempt.
        max_delay: longest wait between attempts.
        multiplier: growth of the delay after each failure.
        jitter: random spread of each delay, as a fraction of it (0 to 1).
        attempt_timeout: most seconds one connection attempt may take (a host that
            drops packets would otherwise hold it for the OS's ~2 minutes).
    """

    attempts: int | None = 5
    timeout: float | None = None
    initial_delay: float = 0.1
    max_delay: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.1
    attempt_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts is None and self.timeout is None:
            raise ValueError("Retry needs a bound: set attempts, timeout, or both")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"Retry.attempts must be at least 1, not {self.attempts}")
        if self.timeout is not None and not self.timeout >= 0:
            raise ValueError(f"Retry.timeout must be >= 0 seconds, not {self.timeout}")
        if not (self.initial_delay >= 0 and self.max_delay >= 0 and self.multiplier >= 1):
            raise ValueError("Retry delays must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Retry.jitter must be between 0 and 1, not {self.jitter}")
        if not self.attempt_timeout > 0:
            raise ValueError(f"Retry.attempt_timeout must be > 0, not {self.attempt_timeout}")

    @classmethod
    def once(cls) -> Retry:
        """A single attempt, no retry."""
        return cls(attempts=1)

    @classmethod
    def for_seconds(cls, seconds: float) -> Retry:
        """Keep trying for ``seconds`` (the CLI's ``--wait``)."""
        return cls(attempts=None, timeout=seconds)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits between attempts (one fewer than the attempts, or endless)."""
        rng = rng or random.Random()
        delay = self.initial_delay
        count = math.inf if self.attempts is None else self.attempts - 1
        i = 0
        while i < count:
            spread = delay * self.jitter
            yield max(0.0, delay + rng.uniform(-spread, spread))
            delay = min(self.max_delay, delay * self.multiplier)
            i += 1


def _innermost(error: OSError) -> BaseException:
    """The per-address error inside trio's "all attempts to connect failed"."""
    cause: BaseException | None = error.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    return cause if isinstance(cause, OSError) else error


_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})


def _connect_failure(error: OSError, where: str, attempts: int, elapsed: float) -> ConnectError:
    inner = _innermost(error)
    tried = f" after {attempts} attempts in {elapsed:.1f} s" if attempts > 1 else ""
    if isinstance(inner, socket.gaierror):
        return ConnectError(
            f"cannot resolve the host name of {where} ({inner.strerror}){tried}",
            reason="name_resolution",
            where=where,
        )
    words = getattr(inner, "strerror", None) or str(inner)
    # trio's own strerror repeats the address as a Python tuple: keep the system's words
    # ("Error connecting to ('127.0.0.1', 1): Connection refused").
    if words.startswith("Error connecting to (") and "): " in words:
        words = words.split("): ", 1)[1]
    if isinstance(inner, TimeoutError):
        reason, hint = "timeout", "is the host up, and the port open in its firewall?"
    elif getattr(inner, "errno", None) == errno.ECONNREFUSED:
        reason, hint = "refused", "is the server running there?"
    elif getattr(inner, "errno", None) in _UNREACHABLE:
        reason, hint = "unreachable", "check the address and the network"
    else:
        reason, hint = "other", "is the server running there?"
    return ConnectError(
        f"could not connect to {where}{tried}: {words}; {hint}", reason=reason, where=where
    )


def _tls_failure(exc: BaseException, where: str) -> ConnectError:
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError) and cause.reason in _PLAINTEXT_PEER:
        return ConnectError(
            f"{where} does not speak TLS (it answered in plain text); connect without TLS",
            reason="not_tls",
            where=where,
        )
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message or cause.reason or str(cause)
        return ConnectError(
            f"the TLS certificate of {where} was not accepted: {detail}",
            reason="tls",
            where=where,
        )
    detail = (cause.reason if isinstance(cause, ssl.SSLError) else None) or str(cause or exc)
    return ConnectError(f"TLS handshake with {where} failed: {detail}", reason="tls", where=where)


#: OpenSSL's words for a peer whose first bytes are not a TLS record (plain text).
_PLAINTEXT_PEER = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG"}
)


async def open_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    retry: Retry | None = None,
) -> trio.abc.Stream:
    """Open a TCP (or TLS) stream, retrying while the server is not up yet.

    Connection errors (refused, unreachable, name lookup) are retried under ``retry``;
    TLS failures (bad certificate, wrong host name) are not: they will not heal.

    Raises:
        ConnectError: no connection within the retry bounds, or the TLS handshake failed.
            Its message says what was tried and the last error, and its ``reason`` the
            kind of failure (``name_resolution``, ``refused``, ``tls``, ``not_tls``...).
    """
    retry = retry or Retry.once()
    where = format_address(host, port)
    start = trio.current_time()
    deadline = start + retry.timeout if retry.timeout is not None else math.inf
    delays = retry.delays()
    attempt = 0
    while True:
        attempt += 1
        opened: trio.abc.Stream | None = None
        error: OSError | None = None
        with trio.move_on_at(min(deadline, trio.current_time() + retry.attempt_timeout)):
            try:
                opened = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                error = exc
        if opened is not None:
            stream = opened
            break
        if error is None:
            error = TimeoutError(f"no answer within {retry.attempt_timeout:g} s")
        elapsed = trio.current_time() - start
        delay = next(delays, None)
        if delay is not None and trio.current_time() + delay > deadline:
            delay = None
        if delay is None:
            raise _connect_failure(error, where, attempt, elapsed) from error
        log.debug("connect to %s:%s failed (%s); retrying in %.2f s", host, port, error, delay)
        await trio.sleep(delay)
    if ssl_context is None:
        return stream
    tls = trio.SSLStream(stream, ssl_context, server_hostname=server_hostname or host)
    try:
        with trio.fail_after(retry.attempt_timeout):
            await tls.do_handshake()
    except BaseException as exc:
        # Cancelled or failed, the socket is ours to close: nothing else holds it yet.
        await trio.aclose_forcefully(stream)
        if isinstance(exc, trio.BrokenResourceError):
            raise _tls_failure(exc, where) from exc
        if isinstance(exc, trio.TooSlowError):
            raise ConnectError(
                f"TLS handshake with {where} got no answer within "
                f"{retry.attempt_timeout:g} s; does it speak TLS?",
                reason="timeout",
                where=where,
            ) from None
        raise
    return tls


async def open_framed_stream(
    host: str,
    port: int,
    *,
    format: Framing = DEFAULT_FORMAT,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    retry: Retry | None = None,
) -> FramedStream:
    """Connect to ``host:port`` and return a :class:`FramedStream` over it.

    See :func:`open_stream` for TLS and retry.

    Raises:
        ConnectError: could not connect (see :func:`open_stream`).
    """
    stream = await open_stream(
        host, port, ssl_context=ssl_context, server_hostname=server_hostname, retry=retry
    )
    return FramedStream(stream, format=format)


async def open_message_stream(
    host: str,
    port: int,
    *,
    format: FrameFormat = DEFAULT_FORMAT,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    retry: Retry | None = None,
) -> MessageStream:
    """Connect to ``host:port`` and return a :class:`MessageStream` over it.

    Raises:
        ConnectError: could not connect (see :func:`open_stream`).
    """
    stream = await open_stream(
        host, port, ssl_context=ssl_context, server_hostname=server_hostname, retry=retry
    )
    return MessageStream(stream, format=format)


#: The earlier name of :func:`open_framed_stream`, kept as an alias.
open_framed_connection = open_framed_stream
#: The earlier name of :func:`open_message_stream`, kept as an alias.
open_message_connection = open_message_stream


async def speaks_tls(host: str, port: int, *, timeout: float = 2.0) -> bool:
    """Whether the server at ``host:port`` answers a TLS handshake (certificate unchecked).

    For diagnosing a plain-text client that gets no answer: a TLS server waits for the
    client to speak first. Never raises; ``False`` when unsure.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
            tls = trio.SSLStream(stream, context, server_hostname=host)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as exc:
                # An alert or a ServerHello came back: TLS. Plain text did not.
                cause = exc.__cause__
                return isinstance(cause, ssl.SSLError) and cause.reason not in _PLAINTEXT_PEER
            finally:
                await trio.aclose_forcefully(tls)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError):
        return False
    return True
