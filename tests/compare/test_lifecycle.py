"""The lifecycle lesson: what the OS shows must hold on every run, and never be guessed."""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any, Literal

import pytest
import trio

from framekit.compare import _lifecycle
from framekit.compare._lifecycle import (
    CLOSED,
    LIFECYCLE_SCHEMA,
    LifecycleLesson,
    LifecycleOptions,
    TcpStates,
    run_lifecycle_lesson,
)

from ..conftest import HAS_IPV6

LINUX = sys.platform.startswith("linux")
PROC_READABLE = LINUX and os.access("/proc/net/tcp", os.R_OK)
needs_proc = pytest.mark.skipif(
    not PROC_READABLE,
    reason=(
        "TCP states are read from /proc/net/tcp, which only Linux has (and it is not "
        "readable here); the lesson reports them as not observed, tested below"
    ),
)
Role = Literal["client", "server"]
ROLES: tuple[Role, ...] = ("client", "server")

#: The ``--json`` document's fields, as documented for ``framekit compare``.
TCP_STATES_FIELDS = {
    "moment",
    "observed",
    "client",
    "server",
    "time_wait_left",
    "after_ms",
    "source",
    "reason",
}
DOCUMENT_FIELDS = {"schema", "platform", "options", "handshake", "closes", "rebind", "conditions"}
OPTIONS_FIELDS = {"connects", "host", "timeout"}
HANDSHAKE_FIELDS = {
    "samples_us",
    "min_us",
    "median_us",
    "max_us",
    "before_accept",
    "rtt_us",
    "note",
}
CLOSING_FIELDS = {
    "first_closer",
    "second_closer",
    "client_address",
    "server_address",
    "listener_reuseaddr",
    "established",
    "half_closed",
    "closed",
    "in_time_wait",
    "note",
}
BIND_FIELDS = {
    "port",
    "old_reuseaddr",
    "reuseaddr",
    "time_wait_seen",
    "ok",
    "errno",
    "errno_name",
    "error",
    "note",
}


@pytest.fixture(scope="module")
def lesson() -> LifecycleLesson:
    """One run of the lesson, shared by the tests that only read it."""
    return trio.run(run_lifecycle_lesson, LifecycleOptions(connects=10))


def readings(lesson: LifecycleLesson) -> list[TcpStates]:
    """Every reading of TCP states the lesson took."""
    found = [lesson.handshake.before_accept]
    for run in lesson.closes:
        found += [run.established, run.half_closed, run.closed]
    return found


def test_connect_timings_are_positive_and_ordered(lesson: LifecycleLesson) -> None:
    handshake = lesson.handshake
    assert len(handshake.samples_us) == 10
    assert all(sample > 0 for sample in handshake.samples_us)
    assert 0 < handshake.min_us <= handshake.median_us <= handshake.max_us
    assert f"in {handshake.median_us:.0f} µs (median of 10;" in handshake.note


@needs_proc
def test_the_handshake_is_done_before_accept(lesson: LifecycleLesson) -> None:
    before = lesson.handshake.before_accept
    assert before.observed and before.source == "/proc/net/tcp" and before.reason is None
    assert before.client == before.server == "ESTABLISHED"
    assert "before accept() the OS already listed both ends as ESTABLISHED" in (
        lesson.handshake.note
    )
    assert lesson.handshake.rtt_us is not None and lesson.handshake.rtt_us >= 0
    assert f"(TCP_INFO) was {lesson.handshake.rtt_us} µs" in lesson.handshake.note


@needs_proc
@pytest.mark.parametrize("first", ROLES)
def test_the_first_closer_is_left_in_time_wait(lesson: LifecycleLesson, first: Role) -> None:
    run = lesson.closing(first)
    second = run.second_closer
    assert second != first
    assert run.established.client == run.established.server == "ESTABLISHED"
    # One FIN sent and acknowledged: the first closer waits for the other's FIN, and the
    # other has read b"" but not closed yet.
    assert run.half_closed.state(run.first_closer) == "FIN_WAIT2"
    assert run.half_closed.state(second) == "CLOSE_WAIT"
    # Both closed: the first closer remembers the connection, the other forgot it.
    assert run.closed.state(run.first_closer) == "TIME_WAIT"
    assert run.closed.state(second) == CLOSED
    assert run.in_time_wait == (first,)
    assert run.closed.time_wait_left is not None and 0 < run.closed.time_wait_left <= 60
    assert all(r.observed and r.reason is None for r in (run.established, run.closed))


@needs_proc
@pytest.mark.parametrize("first", ROLES)
def test_each_note_names_the_side_it_measured(lesson: LifecycleLesson, first: Role) -> None:
    run = lesson.closing(first)
    second = run.second_closer
    assert run.note.startswith(f"the {first} closed first: ")
    assert f"the {first} was in FIN_WAIT2 and the {second} in CLOSE_WAIT" in run.note
    assert f"the {first} was in TIME_WAIT and the {second} gone (CLOSED)" in run.note
    assert "the side that closed first is the one left in TIME_WAIT" in run.note


@needs_proc
def test_the_port_is_in_use_without_reuseaddr_and_free_with_it(lesson: LifecycleLesson) -> None:
    without, with_, after_plain = lesson.rebind.attempts
    server_port = int(lesson.closing("server").server_address.rpartition(":")[2])
    assert without.port == with_.port == server_port
    assert without.time_wait_seen and with_.time_wait_seen and after_plain.time_wait_seen
    assert not without.reuseaddr and not without.ok
    assert without.errno_name == "EADDRINUSE" and without.error == "Address already in use"
    assert with_.reuseaddr and with_.ok and with_.errno is None and with_.errno_name is None
    # Linux checks the option on both sockets: the old server's TIME_WAIT inherited it.
    assert not after_plain.old_reuseaddr and after_plain.reuseaddr
    assert not after_plain.ok and after_plain.errno_name == "EADDRINUSE"
    assert "failed: EADDRINUSE (Address already in use)" in without.note
    assert with_.note.endswith(": succeeded")
    assert (
        "without SO_REUSEADDR: EADDRINUSE; with it: bound; with it, after a server without "
        "it: EADDRINUSE"
    ) in lesson.rebind.note


@needs_proc
async def test_no_socket_is_left_open() -> None:
    lesson = await run_lifecycle_lesson(LifecycleOptions(connects=3))
    ports = {a.port for a in lesson.rebind.attempts}
    ports |= {int(run.server_address.rpartition(":")[2]) for run in lesson.closes}
    ports |= {int(run.client_address.rpartition(":")[2]) for run in lesson.closes}
    table = _lifecycle._read_tcp_table(socket.AF_INET)
    left = [
        (local, remote, state)
        for (local, remote), (state, _) in table.items()
        if local[0] == "127.0.0.1" and local[1] in ports and state != "TIME_WAIT"
    ]
    assert not left, left  # nothing listening, nothing open: only the kernel's TIME_WAITs


def test_the_json_document_round_trips_with_the_documented_fields(
    lesson: LifecycleLesson,
) -> None:
    doc = lesson.to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == DOCUMENT_FIELDS
    assert doc["schema"] == LIFECYCLE_SCHEMA == 1
    assert doc["platform"] == sys.platform
    assert doc["options"] == {"connects": 10, "host": "127.0.0.1", "timeout": 5.0}
    assert set(doc["options"]) == OPTIONS_FIELDS
    assert set(doc["handshake"]) == HANDSHAKE_FIELDS
    assert set(doc["handshake"]["before_accept"]) == TCP_STATES_FIELDS
    assert doc["handshake"]["median_us"] == lesson.handshake.median_us
    assert [run["first_closer"] for run in doc["closes"]] == ["client", "server"]
    for run in doc["closes"]:
        assert set(run) == CLOSING_FIELDS
        for moment in ("established", "half_closed", "closed"):
            assert set(run[moment]) == TCP_STATES_FIELDS
            assert run[moment]["moment"] == moment
    assert set(doc["rebind"]) == {"attempts", "note"}
    assert len(doc["rebind"]["attempts"]) == 3
    for attempt in doc["rebind"]["attempts"]:
        assert set(attempt) == BIND_FIELDS
    if PROC_READABLE:
        assert [run["in_time_wait"] for run in doc["closes"]] == [["client"], ["server"]]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"connects": 0}, "connects must be from 1"),
        ({"connects": 10_001}, "connects must be from 1"),
        ({"host": "localhost"}, "loopback address"),
        ({"host": "192.0.2.1"}, "loopback address"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
    ],
)
def test_options_validated(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LifecycleOptions(**options)


def assert_nothing_guessed(lesson: LifecycleLesson, reason: str) -> None:
    for reading in readings(lesson):
        assert not reading.observed, reading
        assert reading.client is None and reading.server is None
        assert reading.time_wait_left is None
        assert reading.source is None and reading.reason is not None
        assert reason in reading.reason
    for run in lesson.closes:
        assert run.in_time_wait is None
        assert run.note == f"the {run.first_closer} closed first; the ends' states were " + (
            f"not observed: {run.closed.reason}"
        )
    assert "ESTABLISHED" not in lesson.handshake.note
    assert f"not observed: {lesson.handshake.before_accept.reason}" in lesson.handshake.note
    for attempt in lesson.rebind.attempts:
        assert attempt.time_wait_seen is None
        assert "TIME_WAIT not observable here" in attempt.note
    doc = lesson.to_dict()
    assert all(run["in_time_wait"] is None for run in doc["closes"])


async def test_an_unreadable_table_is_reported_never_guessed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreadable(family: socket.AddressFamily) -> _lifecycle.TcpTable:
        raise PermissionError(13, "Permission denied", "/proc/net/tcp")

    monkeypatch.setattr(_lifecycle, "_read_tcp_table", unreadable)
    lesson = await run_lifecycle_lesson(LifecycleOptions(connects=2))
    expected = "cannot read /proc/net/tcp: [Errno 13] Permission denied" if LINUX else ""
    assert_nothing_guessed(lesson, expected)
    # The binds are real either way; only what the OS lists was unobservable.
    if LINUX:
        assert [a.ok for a in lesson.rebind.attempts] == [False, True, False]


@pytest.mark.skipif(not LINUX, reason="elsewhere the platform's own reason comes first")
async def test_a_table_that_misses_an_open_connection_is_not_trusted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A table that lists nothing would make every end look CLOSED: it must not be read
    # as "gone", since it did not list the connection while it was open either.
    monkeypatch.setattr(_lifecycle, "_read_tcp_table", lambda family: {})
    lesson = await run_lifecycle_lesson(LifecycleOptions(connects=2))
    for reading in readings(lesson):
        assert not reading.observed and reading.reason is not None
        assert "/proc/net/tcp did not list the open connection's client end" in reading.reason
        assert reading.client is reading.server is None
    for run in lesson.closes:
        assert run.in_time_wait is None and "TIME_WAIT" not in run.note
    # An empty table is a readable one: it simply lists no TIME_WAIT on the port.
    assert [a.time_wait_seen for a in lesson.rebind.attempts] == [False, False, False]


@pytest.mark.parametrize("platform", ["darwin", "win32", "freebsd14", "openbsd7"])
def test_other_systems_say_why_they_show_nothing(platform: str) -> None:
    reason = _lifecycle._unobservable_reason(platform)
    assert reason is not None and "no /proc/net/tcp" in reason
    assert _lifecycle._unobservable_reason("linux") is None


def test_the_proc_table_is_parsed_by_exact_address() -> None:
    def word(ip: str, port: int, family: socket.AddressFamily) -> str:
        packed = socket.inet_pton(family, ip)
        words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
        return "".join(f"{int.from_bytes(w, sys.byteorder):08X}" for w in words) + f":{port:04X}"

    v4, v6 = socket.AF_INET, socket.AF_INET6
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
    rows = [
        f"0: {word('127.0.0.1', 8080, v4)} {word('0.0.0.0', 0, v4)} 0A 0:0 00:00000000 0",
        f"1: {word('127.0.0.1', 8080, v4)} {word('127.0.0.1', 54321, v4)} 06 0:0 03:00001770 0",
        f"2: {word('127.0.0.1', 54321, v4)} {word('127.0.0.1', 8080, v4)} 05 0:0 00:00000000 0",
        f"3: {word('::1', 443, v6)} {word('::1', 40000, v6)} 01 0:0 02:00000010 0",
        f"4: {word('::1', 40000, v6)} {word('::1', 443, v6)} 0C 0:0 00:00000000 0",
    ]
    table = _lifecycle._parse_tcp_table("\n".join([header, *rows, ""]), ticks_per_second=100)
    assert table == {
        (("127.0.0.1", 8080), ("0.0.0.0", 0)): ("LISTEN", None),
        (("127.0.0.1", 8080), ("127.0.0.1", 54321)): ("TIME_WAIT", 60.0),
        (("127.0.0.1", 54321), ("127.0.0.1", 8080)): ("FIN_WAIT2", None),
        (("::1", 443), ("::1", 40000)): ("ESTABLISHED", None),
        (("::1", 40000), ("::1", 443)): ("NEW_SYN_RECV", None),
    }


@needs_proc
@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback on this machine")
async def test_ipv6_loopback_reads_tcp6() -> None:
    lesson = await run_lifecycle_lesson(LifecycleOptions(connects=3, host="::1"))
    assert lesson.handshake.before_accept.source == "/proc/net/tcp6"
    for run in lesson.closes:
        assert run.client_address.startswith("[::1]:")
        assert run.closed.source == "/proc/net/tcp6"
        assert run.in_time_wait == (run.first_closer,)
    assert [a.ok for a in lesson.rebind.attempts] == [False, True, False]


@pytest.mark.parametrize("repeat", range(3))
async def test_repeated_runs_show_the_same_lesson(repeat: int) -> None:
    # Fresh port-0 binds every time: earlier runs' TIME_WAITs (60 s on Linux) never collide.
    lesson = await run_lifecycle_lesson(LifecycleOptions(connects=3))
    assert len(lesson.handshake.samples_us) == 3
    if PROC_READABLE:
        assert [run.in_time_wait for run in lesson.closes] == [("client",), ("server",)]
        assert [a.ok for a in lesson.rebind.attempts] == [False, True, False]
