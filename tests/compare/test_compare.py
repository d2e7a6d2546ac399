"""framekit compare's framing lesson: the lesson it shows must hold on every run, at any
size, and every sentence it prints must agree with its own figures."""

from __future__ import annotations

import itertools
import json
import socket

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import framekit
from framekit import CompareOptions, Piece, run_compare, run_compare_repeated
from framekit.compare import _experiment
from framekit.compare._experiment import _merged_and_split, attribute

from ..server_helpers import start_server

FAST = {"sleep": 0.001, "burst": 300}


async def test_embedded_run_shows_the_lesson() -> None:
    report = await run_compare(CompareOptions(**FAST))  # type: ignore[arg-type]
    raw = report.way("raw")
    # the late receiver reads after every send: merged and split, deterministically
    assert raw.reader == "late"
    assert raw.received == (1024, 1024, 1024, 593)
    assert not raw.boundaries_kept and raw.merged == 3 and raw.split == 2
    framed = report.way("framed")
    assert framed.boundaries_kept and framed.received == framed.sent
    assert framed.merged == framed.split == 0
    sleep = report.way("sleep")
    assert sleep.received == raw.received  # read on the same schedule: sleeping changed nothing
    assert sleep.elapsed >= 0.001 * len(sleep.sent)
    udp = report.way("udp")
    assert udp.received == (5, 12, 1024, 7, 40, 600, 1)  # whole datagrams, one truncated
    assert udp.boundaries_kept and udp.truncated == 1 and udp.lost == 0
    assert udp.bytes_lost == 3000 - 1024 and udp.merged == udp.split == 0
    assert report.burst is not None and report.burst.sent == 300
    assert report.burst.received + report.burst.lost == 300
    assert report.skipped == {}


@pytest.mark.parametrize("repeat", range(3))
async def test_raw_merges_and_framed_never_does_on_every_run(repeat: int) -> None:
    report = await run_compare(CompareOptions(sleep=0, burst=0))
    assert report.way("raw").merged > 0
    assert report.way("framed").boundaries_kept
    assert report.burst is None


async def test_an_eager_reader_lets_the_sleep_hack_keep_small_messages_apart() -> None:
    opts = CompareOptions(sizes=(5, 12, 7, 40), sleep=0.02, burst=0)
    late = (await run_compare(opts)).way("sleep")
    eager = (await run_compare(CompareOptions(**{**_fields(opts), "reader": "eager"}))).way("sleep")
    assert late.merged > 0 and "did not keep them apart" in late.note
    assert eager.reader == "eager" and eager.boundaries_kept
    assert "only because the receiver read in between" in eager.note


async def test_no_sleep_keeps_a_long_message_whole() -> None:
    opts = CompareOptions(sizes=(3000, 5), sleep=0.02, reader="eager", burst=0)
    sleep = (await run_compare(opts)).way("sleep")
    assert sleep.split == 1
    assert "no sleep keeps a message longer than one read in one piece" in sleep.note


async def test_the_ack_hack_is_cut_by_long_messages_and_says_why() -> None:
    ack = (await run_compare(CompareOptions(burst=0, sleep=0))).way("ack")
    assert ack.reader == "eager"  # it answers every read: it cannot read late
    assert ack.split >= 1
    assert "acknowledges each read, not each message" in ack.note
    short = (await run_compare(CompareOptions(sizes=(5, 12, 7), burst=0, sleep=0))).way("ack")
    assert short.boundaries_kept and "costs a round trip per message" in short.note


async def test_a_single_message_says_the_receiver_kept_up_not_that_tcp_promised() -> None:
    raw = (await run_compare(CompareOptions(sizes=(10,), burst=0, sleep=0))).way("raw")
    assert raw.boundaries_kept
    assert raw.note == (
        "the one read returned the whole message: the receiver kept up this time, "
        "which TCP does not promise"
    )


async def test_notes_state_their_own_figures() -> None:
    report = await run_compare(CompareOptions(sleep=0, burst=0, read_size=100))
    for way in report.ways:
        if way.merged:
            assert f"{way.merged:,} of {len(way.received):,} reads" in way.note
        if way.split:
            assert f"{way.split:,} message" in way.note and "100-byte reads" in way.note
        if way.boundaries_kept and way.transport == "tcp" and way.key != "framed":
            assert "one whole message" in way.note
    framed = report.way("framed")
    assert f"{framed.transport_reads:,} reads of up to 100 B" in framed.note
    assert "sleeping 0 ms kept" not in report.way("sleep").note


async def test_truncation_and_loss_are_their_own_columns_not_broken_boundaries() -> None:
    # late receiver + more datagrams than the receive buffer holds: some are lost
    opts = CompareOptions(sizes=(2000,) * 400, read_size=1024, burst=0, sleep=0)
    udp = (await run_compare(opts)).way("udp")
    assert udp.boundaries_kept and udp.merged == udp.split == 0
    assert udp.truncated == len(udp.received)  # every arrival longer than the read size
    assert udp.lost == 400 - len(udp.received) > 0
    assert udp.bytes_lost == 400 * 2000 - sum(udp.received)
    assert f"{len(udp.received):,} of 400 datagrams arrived" in udp.note
    assert f"{udp.lost:,} datagrams never arrived" in udp.note
    assert udp.note.endswith("boundaries are kept, delivery is not")
    assert all(len(read) == 1 for read in udp.pieces)  # one datagram per receive


@pytest.mark.parametrize(
    ("sizes", "burst"),
    [
        ((3000,) * 100, 2000),  # all hung before: both socket buffers filled
        ((65000,) * 5, 0),
        ((1000,) * 1000, 2000),
    ],
)
async def test_sizes_that_hung_complete(sizes: tuple[int, ...], burst: int) -> None:
    with trio.fail_after(60):
        report = await run_compare(CompareOptions(sizes=sizes, burst=burst))
    for way in report.ways:
        if way.transport == "tcp":
            assert sum(way.received) == sum(sizes), way.key
    assert report.way("framed").received == sizes
    if len(sizes) * 0.02 > _experiment.MAX_SLEEPING:
        assert "sleep" in report.skipped and "would sleep 20 s" in report.skipped["sleep"]


async def test_small_reads_of_large_messages_do_not_deadlock_the_ack_hack() -> None:
    # 3,000 acks per message: the sender must drain them, or the receiver blocks on them
    with trio.fail_after(60):
        report = await run_compare(CompareOptions(sizes=(3000,) * 20, read_size=1, burst=0))
    ack = report.way("ack")
    assert sum(ack.received) == 60000 and max(ack.received) == 1


async def test_a_message_over_a_datagram_skips_udp_and_says_why() -> None:
    report = await run_compare(CompareOptions(sizes=(70000, 5), sleep=0, burst=0))
    assert [w.key for w in report.ways] == ["raw", "sleep", "ack", "framed"]
    assert "65,507" in report.skipped["udp"]
    with pytest.raises(KeyError):
        report.way("udp")


async def test_rates_only_for_runs_long_enough_to_mean_something() -> None:
    report = await run_compare(CompareOptions(sleep=0.02, burst=0))
    assert report.way("framed").messages_per_second is None  # well under 0.1 s
    sleep = report.way("sleep")
    assert sleep.elapsed >= 0.1
    assert sleep.messages_per_second == pytest.approx(7 / sleep.elapsed)


async def test_nodelay_reaches_the_raw_senders(monkeypatch: pytest.MonkeyPatch) -> None:
    last: dict[trio.SocketStream, int] = {}  # final TCP_NODELAY per stream (trio sets 1)
    real = trio.SocketStream.setsockopt

    def record(self: trio.SocketStream, level: int, option: int, value: object) -> None:
        if option == socket.TCP_NODELAY:
            last[self] = int(value)  # type: ignore[call-overload]
        real(self, level, option, value)  # type: ignore[arg-type]

    monkeypatch.setattr(trio.SocketStream, "setsockopt", record)
    await run_compare(CompareOptions(nodelay=False, sleep=0, burst=0, sizes=(10, 20)))
    # the four TCP senders (raw, sleep, ack, framed) run with Nagle on; receivers without
    assert sorted(last.values()) == [0, 0, 0, 0, 1, 1, 1, 1]


async def test_against_existing_echo_servers(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, tcp_echo_port=0)
    assert addrs.tcp_echo
    opts = CompareOptions(tcp_echo=addrs.tcp_echo[0], udp_echo=addrs.udp[0], **FAST)  # type: ignore[arg-type]
    report = await run_compare(opts)
    for way in ("raw", "sleep", "ack"):
        assert sum(report.way(way).received) == sum(opts.sizes)  # every byte came back
    assert report.way("raw").merged > 0 or report.way("raw").split > 0
    assert report.way("framed").boundaries_kept
    assert report.way("udp").received == (5, 12, 1024, 7, 40, 600, 1)


async def test_large_messages_through_an_echo_server_complete(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, tcp_echo_port=0)
    assert addrs.tcp_echo
    opts = CompareOptions(tcp_echo=addrs.tcp_echo[0], sizes=(200_000,) * 3, burst=0, sleep=0)
    with trio.fail_after(60):
        report = await run_compare(opts)
    for way in report.ways:
        assert sum(way.received) == 600_000, way.key


async def test_repeat_counts_each_outcome() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await run_compare_repeated(None, 0)
    repeated = await run_compare_repeated(CompareOptions(sleep=0, burst=0), 3)
    assert repeated.runs == 3 and [w.key for w in repeated.ways][:1] == ["raw"]
    raw, framed, udp = repeated.way("raw"), repeated.way("framed"), repeated.way("udp")
    assert (raw.merged, raw.exact, raw.kept) == (3, 0, 0)
    assert (framed.exact, framed.kept, framed.merged, framed.split) == (3, 3, 0, 0)
    assert (udp.kept, udp.lossy, udp.exact) == (3, 3, 0)  # one datagram cut on every run
    assert len(framed.elapsed) == 3
    low, mid, high = framed.elapsed_spread
    assert low <= mid <= high
    doc = repeated.to_dict()
    assert json.loads(json.dumps(doc)) == doc and doc["runs"] == 3
    assert doc["ways"][0]["elapsed_median"] == raw.elapsed_spread[1]


def test_attribute_maps_reads_onto_messages() -> None:
    assert attribute([3, 2, 4], [4, 5]) == (
        (Piece(0, 3), Piece(1, 1)),
        (Piece(1, 1), Piece(2, 4)),
    )
    assert attribute([5], [2, 2, 1]) == ((Piece(0, 2),), (Piece(0, 2),), (Piece(0, 1),))


@given(st.lists(st.integers(1, 50), min_size=1, max_size=20), st.data())
def test_merged_and_split_agree_with_the_picture(sent: list[int], data: st.DataObject) -> None:
    total = sum(sent)
    cuts = sorted(data.draw(st.sets(st.integers(1, total - 1)))) if total > 1 else []
    points = [0, *cuts, total]
    received = [b - a for a, b in itertools.pairwise(points)]
    pieces = attribute(sent, received)
    merged = sum(1 for read in pieces if len({p.message for p in read}) > 1)
    reads_of = [sum(1 for read in pieces for p in read if p.message == i) for i in range(len(sent))]
    assert _merged_and_split(sent, received) == (merged, sum(1 for n in reads_of if n > 1))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sizes": ()}, "at least one message"),
        ({"sizes": (0,)}, "at least 1 byte"),
        ({"sizes": (16 * 1024 * 1024 + 1,)}, "at most 16777216 bytes"),
        ({"sizes": (1,) * 100_001}, "at most 100,000 messages"),
        ({"sizes": (16 * 1024 * 1024,) * 17}, "over 268,435,456"),
        ({"sizes": (600_000,) * 2, "read_size": 1}, "over 1,000,000 reads"),
        ({"read_size": 0}, "read_size"),
        ({"reader": "lazy"}, "reader must be 'late' or 'eager'"),
        ({"burst": -1}, "burst"),
    ],
)
def test_options_validated(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CompareOptions(**options)  # type: ignore[arg-type]


def test_report_dict_is_json_ready() -> None:
    report = trio.run(run_compare, CompareOptions(sleep=0, burst=10))
    doc = report.to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["schema"] == framekit.COMPARE_SCHEMA == 2
    assert doc["skipped"] == {} and doc["options"]["reader"] == "late"
    for way, result in zip(doc["ways"], report.ways, strict=True):
        assert "origins" not in way
        assert way["pieces"] == [[[p.message, p.length] for p in read] for read in result.pieces]
        assert way["messages_per_second"] == result.messages_per_second


def test_cycle_sizes() -> None:
    from framekit import cycle_sizes

    assert cycle_sizes((1, 2, 3), 7) == (1, 2, 3, 1, 2, 3, 1)
    with pytest.raises(ValueError, match="count of at least 1"):
        cycle_sizes((1,), 0)


def _fields(opts: CompareOptions) -> dict[str, object]:
    return {name: getattr(opts, name) for name in opts.__dataclass_fields__}
