"""A TCP connection's life, measured on loopback: handshake, close, TIME_WAIT, rebinding.

The fifth tutorial's lessons (the three-way handshake, the four-way close, TIME_WAIT,
"Address already in use" and ``SO_REUSEADDR``) shown with real sockets instead of told:

* how long ``connect()`` takes, and that the kernel has finished the handshake before
  the server program calls ``accept()``;
* the TCP states of both ends of a connection, read from the OS while it closes, once
  with the client closing first and once with the server: the side that closes first
  is the one left in TIME_WAIT;
* ``bind()`` to the port of a server whose socket is in TIME_WAIT, without and with
  ``SO_REUSEADDR``.

TCP states are read from ``/proc/net/tcp`` (``/proc/net/tcp6`` for IPv6), which only
Linux has. On other systems, when the table cannot be read, or when it does not list a
connection known to be open, a reading says ``observed=False`` and why: no state is
ever inferred. Everything is returned as a :class:`LifecycleLesson`; nothing is printed.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import trio

from ..streams._address import require_loopback
from ._conditions import Conditions, observe_conditions
from ._experiment import json_ready

__all__ = [
    "CLOSED",
    "LIFECYCLE_SCHEMA",
    "PROC_TCP_TABLES",
    "BindAttempt",
    "ClosingRun",
    "HandshakeResult",
    "LifecycleLesson",
    "LifecycleOptions",
    "RebindResult",
    "TcpStates",
    "run_lifecycle_lesson",
]

#: Version of the ``--json`` document; bumped when a field changes meaning.
LIFECYCLE_SCHEMA: Final = 1
#: Where Linux lists the TCP sockets of the caller's network namespace, per family.
PROC_TCP_TABLES: Final[dict[socket.AddressFamily, str]] = {
    socket.AF_INET: "/proc/net/tcp",
    socket.AF_INET6: "/proc/net/tcp6",
}
#: The state of an end the OS no longer lists: no connection state at all (RFC 9293).
CLOSED: Final = "CLOSED"
#: Linux's TCP state numbers (include/net/tcp_states.h), as ``/proc/net/tcp`` prints them.
_STATE_NAMES: Final = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: CLOSED,
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
#: ``/proc/net/tcp``'s ``tr`` field for a TIME_WAIT entry: its ``tm->when`` is the time left.
_TIME_WAIT_TIMER: Final = 3
#: Seconds between readings while a close completes (a delayed ACK takes a few ms).
_POLL: Final = 0.002
#: Offset of ``tcpi_rtt`` (microseconds) in Linux's ``struct tcp_info``.
_TCPI_RTT_OFFSET: Final = 68

Role = Literal["client", "server"]
Moment = Literal["before_accept", "established", "half_closed", "closed"]
Address = tuple[str, int]
#: ``{(local, remote): (state, seconds left on its TIME_WAIT timer or None)}``.
TcpTable = dict[tuple[Address, Address], tuple[str, float | None]]

_OTHER: Final[dict[Role, Role]] = {"client": "server", "server": "client"}


@dataclass(frozen=True, slots=True)
class LifecycleOptions:
    """Knobs of the lesson.

    Attributes:
        connects: connections to time (each a full three-way handshake).
        host: the loopback address to use, given as an address: ``127.0.0.1`` or ``::1``.
        timeout: seconds allowed for each wait (a connect, an accept, an end of stream, a
            close to complete).
    """

    connects: int = 20
    host: str = "127.0.0.1"
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.connects <= 10_000:
            raise ValueError("connects must be from 1 to 10000")
        require_loopback(self.host)
        if not self.timeout > 0:
            raise ValueError("timeout must be more than 0 seconds")


@dataclass(frozen=True, slots=True)
class TcpStates:
    """Both ends of one connection as the OS lists them, at one moment.

    Attributes:
        moment: ``before_accept`` (``connect`` returned, ``accept`` not called yet),
            ``established``, ``half_closed`` (one side closed, the other read the end of
            the stream) or ``closed`` (both sides closed).
        observed: the OS's table was read, and it listed this connection while it was
            known to be open. When ``False``, the states below are ``None``.
        client: the client end's TCP state (``ESTABLISHED``, ``FIN_WAIT2``, ``TIME_WAIT``,
            ...; ``CLOSED``: the OS no longer lists it).
        server: the server end's state (the accepted socket's).
        time_wait_left: seconds before the kernel forgets the end in TIME_WAIT (the
            timer the table shows; the client's if both are); ``None`` when none is.
        after_ms: milliseconds from the event (``connect`` returning, a close) to the
            start of the reading (reading the table itself can take a few ms).
        source: the table read, e.g. ``/proc/net/tcp``; ``None`` when not observed.
        reason: why nothing was observed; ``None`` when observed.
    """

    moment: Moment
    observed: bool
    client: str | None
    server: str | None
    time_wait_left: float | None
    after_ms: float
    source: str | None
    reason: str | None

    def state(self, role: Role) -> str | None:
        """The state of one end."""
        return self.client if role == "client" else self.server

    @property
    def in_time_wait(self) -> tuple[Role, ...] | None:
        """The ends in TIME_WAIT (``None``: not observed)."""
        if not self.observed:
            return None
        return tuple(role for role in _OTHER if self.state(role) == "TIME_WAIT")


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What ``connect()`` costs: a SYN, a SYN-ACK and an ACK on loopback.

    Attributes:
        samples_us: how long each ``connect()`` took, in microseconds, in order.
        before_accept: both ends of the first connection once ``connect`` had returned
            and before the server called ``accept``.
        rtt_us: the kernel's smoothed round-trip estimate for the connection (Linux
            ``TCP_INFO`` ``tcpi_rtt``), median over the connections; ``None`` where the
            OS does not offer it.
        note: one line on what was measured.
    """

    samples_us: tuple[float, ...]
    before_accept: TcpStates
    rtt_us: int | None
    note: str

    @property
    def min_us(self) -> float:
        """The fastest ``connect()``."""
        return min(self.samples_us)

    @property
    def median_us(self) -> float:
        """The median ``connect()``."""
        return statistics.median(self.samples_us)

    @property
    def max_us(self) -> float:
        """The slowest ``connect()`` (usually the first: cold caches)."""
        return max(self.samples_us)


@dataclass(frozen=True, slots=True)
class ClosingRun:
    """One connection closed by one side first, its ends read from the OS as it closes.

    Attributes:
        first_closer: the side that called ``close()`` first (the active closer).
        client_address: the client end, ``host:port``.
        server_address: the server end (the listening port), ``host:port``.
        listener_reuseaddr: the listening socket had ``SO_REUSEADDR`` (as the tutorials'
            server has).
        established: both ends before anyone closed (the check that the OS lists this
            connection at all).
        half_closed: after the first close, once the other side had read the end of the
            stream and the first FIN was acknowledged.
        closed: after both had closed.
        note: one line on what was read.
    """

    first_closer: Role
    client_address: str
    server_address: str
    listener_reuseaddr: bool
    established: TcpStates
    half_closed: TcpStates
    closed: TcpStates
    note: str

    @property
    def second_closer(self) -> Role:
        """The side that closed after reading the end of the stream (the passive closer)."""
        return _OTHER[self.first_closer]

    @property
    def in_time_wait(self) -> tuple[Role, ...] | None:
        """The ends in TIME_WAIT once both had closed (``None``: not observed)."""
        return self.closed.in_time_wait


@dataclass(frozen=True, slots=True)
class BindAttempt:
    """One ``bind()`` (and ``listen()``) on a port whose server closed its connection first.

    Attributes:
        port: the port, a server's listening port a moment before.
        old_reuseaddr: that server's listening socket had ``SO_REUSEADDR``.
        reuseaddr: the new socket set ``SO_REUSEADDR`` before ``bind()``.
        time_wait_seen: just before the attempt the OS listed a socket on the port in
            TIME_WAIT; ``None``: not observable here.
        ok: ``bind()`` and ``listen()`` succeeded (the socket was closed at once).
        errno: the error number when it failed (it differs between systems).
        errno_name: its symbolic name, e.g. ``EADDRINUSE``.
        error: the system's message, e.g. ``Address already in use``.
        note: one line on what happened.
    """

    port: int
    old_reuseaddr: bool
    reuseaddr: bool
    time_wait_seen: bool | None
    ok: bool
    errno: int | None
    errno_name: str | None
    error: str | None
    note: str


@dataclass(frozen=True, slots=True)
class RebindResult:
    """Restarting a server on its port while its old connection is in TIME_WAIT.

    Attributes:
        attempts: without ``SO_REUSEADDR``, then with it, on the port of a server that had
            it; then with it, on the port of a server that did not.
        note: one line on what happened.
    """

    attempts: tuple[BindAttempt, ...]
    note: str


@dataclass(frozen=True, slots=True)
class LifecycleLesson:
    """The whole lesson: the handshake, both closing orders, and the rebind."""

    options: LifecycleOptions
    platform: str
    handshake: HandshakeResult
    closes: tuple[ClosingRun, ...]
    rebind: RebindResult
    #: The OS and socket settings the figures depend on.
    conditions: Conditions | None = None
    schema: int = field(default=LIFECYCLE_SCHEMA)

    def closing(self, first_closer: Role) -> ClosingRun:
        """The run in which ``first_closer`` closed first."""
        return next(run for run in self.closes if run.first_closer == first_closer)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the documented ``--json`` schema)."""
        handshake = asdict(self.handshake) | {
            "min_us": self.handshake.min_us,
            "median_us": self.handshake.median_us,
            "max_us": self.handshake.max_us,
        }
        closes = [
            asdict(run) | {"second_closer": run.second_closer, "in_time_wait": run.in_time_wait}
            for run in self.closes
        ]
        doc: dict[str, Any] = json_ready(
            {
                "schema": self.schema,
                "platform": self.platform,
                "options": asdict(self.options),
                "handshake": handshake,
                "closes": closes,
                "rebind": asdict(self.rebind),
                "conditions": None if self.conditions is None else asdict(self.conditions),
            }
        )
        return doc


# --- reading the OS's table ---------------------------------------------------------


def _unobservable_reason(platform: str) -> str | None:
    """Why TCP states cannot be read on ``platform`` (``None``: they can, from /proc)."""
    if platform.startswith("linux"):
        return None
    if platform == "darwin":
        return (
            "macOS has no /proc/net/tcp: it shows TCP states only through tools such as "
            "`netstat -an -p tcp`, whose output this lesson does not parse"
        )
    if platform == "win32":
        return (
            "Windows has no /proc/net/tcp: it shows TCP states only through `netstat -an` "
            "or the GetExtendedTcpTable API, which this lesson does not use"
        )
    return f"{platform} has no /proc/net/tcp, the only socket table this lesson reads"


def _proc_address(text: str) -> Address:
    """``0100007F:1F90`` (``/proc/net/tcp``'s notation) as ``("127.0.0.1", 8080)``."""
    host, _, port = text.partition(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word of the address as a native-endian integer.
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    packed = b"".join(w[::-1] if sys.byteorder == "little" else w for w in words)
    family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, packed), int(port, 16)


def _parse_tcp_table(text: str, ticks_per_second: int) -> TcpTable:
    """Parse ``/proc/net/tcp`` or ``/proc/net/tcp6`` (the header line, then one per socket)."""
    table: TcpTable = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        code = int(fields[3], 16)
        state = _STATE_NAMES.get(code, f"state {code}")
        timer, _, when = fields[5].partition(":")
        left = None
        if state == "TIME_WAIT" and int(timer, 16) == _TIME_WAIT_TIMER:
            left = int(when, 16) / ticks_per_second
        table[(_proc_address(fields[1]), _proc_address(fields[2]))] = (state, left)
    return table


def _read_tcp_table(family: socket.AddressFamily) -> TcpTable:
    """The OS's TCP sockets of one family (Linux only; raises ``OSError``)."""
    path = PROC_TCP_TABLES[family]
    with open(path, encoding="ascii") as f:
        text = f.read()
    return _parse_tcp_table(text, os.sysconf("SC_CLK_TCK"))  # /proc's timers are in USER_HZ


def _table_or_reason(family: socket.AddressFamily) -> TcpTable | str:
    """The table, or why it cannot be had."""
    reason = _unobservable_reason(sys.platform)
    if reason is not None:
        return reason
    try:
        return _read_tcp_table(family)
    except (OSError, ValueError) as exc:
        return f"cannot read {PROC_TCP_TABLES[family]}: {exc}"


def _unobserved(moment: Moment, reason: str, after_ms: float = 0.0) -> TcpStates:
    return TcpStates(moment, False, None, None, None, after_ms, None, reason)


def _take_reading(
    moment: Moment,
    family: socket.AddressFamily,
    client: Address,
    server: Address,
    since: float,
) -> TcpStates:
    """Both ends of the connection ``client`` <-> ``server``, matched by exact addresses."""
    after_ms = (time.perf_counter() - since) * 1000
    table = _table_or_reason(family)
    if isinstance(table, str):
        return _unobserved(moment, table, after_ms)
    client_state, client_left = table.get((client, server), (CLOSED, None))
    server_state, server_left = table.get((server, client), (CLOSED, None))
    left = client_left if client_state == "TIME_WAIT" else server_left
    return TcpStates(
        moment=moment,
        observed=True,
        client=client_state,
        server=server_state,
        time_wait_left=left if "TIME_WAIT" in (client_state, server_state) else None,
        after_ms=after_ms,
        source=PROC_TCP_TABLES[family],
        reason=None,
    )


def _confirm_listed(reading: TcpStates, client: Address, server: Address) -> TcpStates:
    """A reading of an open connection: if the table misses an end, trust none of it."""
    missing = [role for role in _OTHER if reading.state(role) == CLOSED]
    if not reading.observed or not missing:
        return reading
    ends = {"client": _show(client), "server": _show(server)}
    reason = (
        f"{reading.source} did not list the open connection's {missing[0]} end "
        f"({ends[missing[0]]}), so what it lists after the close would prove nothing"
    )
    return _unobserved(reading.moment, reason, reading.after_ms)


async def _settled_reading(
    moment: Moment,
    family: socket.AddressFamily,
    client: Address,
    server: Address,
    since: float,
    settled: Callable[[TcpStates], bool],
    timeout: float,
) -> TcpStates:
    """Read until ``settled`` (a close is a few segments: it takes a few ms) or the time
    limit; the last reading is returned as read, settled or not."""
    reading = await trio.to_thread.run_sync(_take_reading, moment, family, client, server, since)
    with trio.move_on_after(timeout):
        while reading.observed and not settled(reading):
            await trio.sleep(_POLL)
            reading = await trio.to_thread.run_sync(
                _take_reading, moment, family, client, server, since
            )
    return reading


def _time_wait_on_port(family: socket.AddressFamily, local: Address) -> bool | None:
    """Whether the OS lists a socket bound to ``local`` in TIME_WAIT (``None``: unknown)."""
    table = _table_or_reason(family)
    if isinstance(table, str):
        return None
    return any(key[0] == local and state == "TIME_WAIT" for key, (state, _) in table.items())


# --- the lesson ------------------------------------------------------------------------


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def _address(sockname: Any) -> Address:
    return str(sockname[0]), int(sockname[1])


def _show(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tcp_info_rtt(sock: socket.socket) -> int | None:
    """The kernel's smoothed RTT estimate in microseconds (Linux ``TCP_INFO``), or None."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    rtt: int = struct.unpack_from("=I", info, _TCPI_RTT_OFFSET)[0]
    return rtt


def _time_connects(opts: LifecycleOptions) -> HandshakeResult:
    """Time ``opts.connects`` blocking connects to one listener (runs in a thread: each
    wait is bounded by the sockets' timeout, as a thread cannot be cancelled)."""
    family = _family(opts.host)
    samples: list[float] = []
    rtts: list[int] = []
    before_accept: TcpStates | None = None
    with socket.socket(family) as listener:
        listener.settimeout(opts.timeout)
        listener.bind((opts.host, 0))
        listener.listen(1)
        server_address = _address(listener.getsockname())
        for _ in range(opts.connects):
            with socket.socket(family) as client:
                client.settimeout(opts.timeout)
                start = time.perf_counter_ns()
                client.connect(server_address)  # returns once the SYN-ACK is in
                samples.append((time.perf_counter_ns() - start) / 1000)
                returned = time.perf_counter()
                client_address = _address(client.getsockname())
                if before_accept is None:  # the server program has done nothing yet
                    reading = _take_reading(
                        "before_accept", family, client_address, server_address, returned
                    )
                    before_accept = _confirm_listed(reading, client_address, server_address)
                if (rtt := _tcp_info_rtt(client)) is not None:
                    rtts.append(rtt)
                server, _ = listener.accept()
                with server:
                    client.close()  # the client closes first, as clients usually do
    assert before_accept is not None  # connects >= 1
    rtt_us = round(statistics.median(rtts)) if rtts else None
    return HandshakeResult(
        samples_us=tuple(samples),
        before_accept=before_accept,
        rtt_us=rtt_us,
        note=_handshake_note(samples, before_accept, rtt_us),
    )


def _handshake_note(samples: list[float], before_accept: TcpStates, rtt_us: int | None) -> str:
    note = (
        f"connect() returned in {statistics.median(samples):.0f} µs (median of {len(samples)}; "
        f"{min(samples):.0f} to {max(samples):.0f} µs): SYN, SYN-ACK and ACK, with no help "
        "from the server program"
    )
    if not before_accept.observed:
        note += f"; the ends' states were not observed: {before_accept.reason}"
    elif before_accept.client == before_accept.server == "ESTABLISHED":
        note += (
            "; before accept() the OS already listed both ends as ESTABLISHED: accept() only "
            "takes a finished connection from the queue"
        )
    else:
        note += (
            f"; before accept() the OS listed the client as {before_accept.client} and the "
            f"server as {before_accept.server}"
        )
    if rtt_us is not None:
        note += f"; the kernel's round-trip estimate (TCP_INFO) was {rtt_us} µs"
    return note


def _in(state: str | None) -> str:
    return "gone (CLOSED)" if state == CLOSED else f"in {state}"


def _closing_note(first: Role, half_closed: TcpStates, closed: TcpStates) -> str:
    second = _OTHER[first]
    note = f"the {first} closed first"
    if not closed.observed:
        return f"{note}; the ends' states were not observed: {closed.reason}"
    if half_closed.observed:
        note += (
            f": after its FIN the {first} was {_in(half_closed.state(first))} and the "
            f"{second} {_in(half_closed.state(second))}"
        )
    note += (
        f"; once both had closed, the {first} was {_in(closed.state(first))} and the "
        f"{second} {_in(closed.state(second))}"
    )
    if closed.in_time_wait == (first,):
        note += ": the side that closed first is the one left in TIME_WAIT"
        if closed.time_wait_left is not None:
            note += f", for another {closed.time_wait_left:.0f} s"
    elif closed.in_time_wait == (second,):
        note += f": the {second}, which closed second, is the one in TIME_WAIT"
    elif not closed.in_time_wait:
        note += ": neither end is in TIME_WAIT"
    return note


async def _closing_run(
    opts: LifecycleOptions, first: Role, *, listener_reuseaddr: bool
) -> ClosingRun:
    """Connect, close from ``first``'s side, let the other side read the end of the
    stream and close too, reading both ends from the OS along the way."""
    family = _family(opts.host)
    second = _OTHER[first]
    with ExitStack() as stack:
        listener = stack.enter_context(trio.socket.socket(family))
        if listener_reuseaddr:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await listener.bind((opts.host, 0))
        listener.listen(1)
        client = stack.enter_context(trio.socket.socket(family))
        with trio.fail_after(opts.timeout):
            await client.connect(listener.getsockname())
            server, _ = await listener.accept()
        stack.enter_context(server)
        listener.close()  # only the connection is left on the port
        client_address = _address(client.getsockname())
        server_address = _address(server.getsockname())
        ends = {"client": client, "server": server}

        async def read(
            moment: Moment, since: float, settled: Callable[[TcpStates], bool]
        ) -> TcpStates:
            return await _settled_reading(
                moment, family, client_address, server_address, since, settled, opts.timeout
            )

        established = await read("established", time.perf_counter(), lambda r: True)
        established = _confirm_listed(established, client_address, server_address)

        ends[first].close()  # FIN from the first closer; the other's kernel ACKs it
        since = time.perf_counter()
        with trio.fail_after(opts.timeout):
            if await ends[second].recv(1):  # b"": the end of the stream (the FIN)
                raise RuntimeError("data arrived on a connection nothing was sent on")
        if established.observed:  # wait for the ACK of the FIN (it may be delayed)
            half_closed = await read("half_closed", since, lambda r: r.state(first) != "FIN_WAIT1")
        else:
            half_closed = _unobserved("half_closed", str(established.reason))

        ends[second].close()  # FIN from the second closer; the first's kernel ACKs it
        since = time.perf_counter()
        if established.observed:
            closed = await read(
                "closed",
                since,
                lambda r: all(s in ("TIME_WAIT", CLOSED) for s in (r.client, r.server)),
            )
        else:
            # Nothing to watch: give loopback's last ACK a moment before the next step.
            await trio.sleep(0.05)
            closed = _unobserved("closed", str(established.reason))
    return ClosingRun(
        first_closer=first,
        client_address=_show(client_address),
        server_address=_show(server_address),
        listener_reuseaddr=listener_reuseaddr,
        established=established,
        half_closed=half_closed,
        closed=closed,
        note=_closing_note(first, half_closed, closed),
    )


def _try_bind(
    opts: LifecycleOptions, port: int, old_reuseaddr: bool, reuseaddr: bool
) -> BindAttempt:
    """``bind()`` and ``listen()`` on ``port``, then close at once: no port is left bound."""
    family = _family(opts.host)
    time_wait_seen = _time_wait_on_port(family, (opts.host, port))
    error: OSError | None = None
    with socket.socket(family) as sock:
        if reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((opts.host, port))
            sock.listen(1)
        except OSError as exc:
            error = exc
    number = error.errno if error is not None else None
    name = errno.errorcode.get(number) if number is not None else None
    message = (error.strerror or str(error)) if error is not None else None
    old = "with" if old_reuseaddr else "without"
    new = "with" if reuseaddr else "without"
    if time_wait_seen is None:
        where = (
            f"port {port}, just left by a server {old} SO_REUSEADDR that closed its "
            "connection first (TIME_WAIT not observable here)"
        )
    elif time_wait_seen:
        where = f"port {port}, where a server {old} SO_REUSEADDR left its socket in TIME_WAIT"
    else:
        where = f"port {port}, where the OS listed no socket in TIME_WAIT"
    outcome = "succeeded" if error is None else f"failed: {name or number} ({message})"
    return BindAttempt(
        port=port,
        old_reuseaddr=old_reuseaddr,
        reuseaddr=reuseaddr,
        time_wait_seen=time_wait_seen,
        ok=error is None,
        errno=number,
        errno_name=name,
        error=message,
        note=f"bind() {new} SO_REUSEADDR on {where}: {outcome}",
    )


def _rebind_note(attempts: tuple[BindAttempt, ...], platform: str) -> str:
    without, with_, after_plain = attempts
    parts = [
        f"without SO_REUSEADDR: {'bound' if without.ok else without.errno_name or 'failed'}",
        f"with it: {'bound' if with_.ok else with_.errno_name or 'failed'}",
        "with it, after a server without it: "
        + ("bound" if after_plain.ok else after_plain.errno_name or "failed"),
    ]
    note = f"rebinding a port whose server closed first ({'; '.join(parts)})"
    if not without.ok and with_.ok:
        note += (
            ": SO_REUSEADDR, set before bind(), lets a server restart while its old "
            "connection waits out TIME_WAIT"
        )
    if with_.ok and not after_plain.ok:
        note += "; the old server's socket must have had it too"
    if platform == "win32":
        note += (
            "; on Windows SO_REUSEADDR also lets a socket bind a port another socket is "
            "using, and servers use SO_EXCLUSIVEADDRUSE instead"
        )
    return note


async def _rebind(opts: LifecycleOptions, server_first: ClosingRun) -> RebindResult:
    port = int(server_first.server_address.rpartition(":")[2])
    old = server_first.listener_reuseaddr
    # In a thread: each attempt first reads the OS's table, which can take a few ms.
    without = await trio.to_thread.run_sync(_try_bind, opts, port, old, False)
    with_ = await trio.to_thread.run_sync(_try_bind, opts, port, old, True)
    # The same, after a server that did not set SO_REUSEADDR itself.
    plain = await _closing_run(opts, "server", listener_reuseaddr=False)
    plain_port = int(plain.server_address.rpartition(":")[2])
    after_plain = await trio.to_thread.run_sync(_try_bind, opts, plain_port, False, True)
    attempts = (without, with_, after_plain)
    return RebindResult(attempts=attempts, note=_rebind_note(attempts, sys.platform))


async def run_lifecycle_lesson(options: LifecycleOptions | None = None) -> LifecycleLesson:
    """Measure a loopback connection's life and return what the OS showed.

    Times ``connect()``; closes one connection from the client's side first and one
    from the server's, reading both ends' TCP states as they close; then binds the
    server's port again without and with ``SO_REUSEADDR``. Every socket is closed before
    this returns (sockets in TIME_WAIT are closed sockets the kernel still remembers).

    Raises:
        trio.TooSlowError: a connect, accept or end of stream took longer than
            ``options.timeout``.
    """
    opts = options or LifecycleOptions()
    handshake = await trio.to_thread.run_sync(_time_connects, opts)
    client_first = await _closing_run(opts, "client", listener_reuseaddr=True)
    server_first = await _closing_run(opts, "server", listener_reuseaddr=True)
    rebind = await _rebind(opts, server_first)
    return LifecycleLesson(
        options=opts,
        platform=sys.platform,
        handshake=handshake,
        closes=(client_first, server_first),
        rebind=rebind,
        conditions=await observe_conditions(host=opts.host, read_size=None, nagle=None),
    )
