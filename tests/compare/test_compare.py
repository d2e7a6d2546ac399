"""framekit compare's experiment: the lesson it shows must hold on every run."""

from __future__ import annotations

import pytest
import trio

import framekit
from framekit import CompareOptions, Piece, run_compare
from framekit.compare._experiment import attribute

from ..server_helpers import start_server

FAST = {"sleep": 0.001, "burst": 300}


async def test_embedded_run_shows_the_lesson() -> None:
    report = await run_compare(CompareOptions(**FAST))  # type: ignore[arg-type]
    raw = report.way("raw")
    # all sends land before the first recv(1024): merged and split, deterministically
    assert raw.received == (1024, 1024, 1024, 593)
    assert not raw.boundaries_kept and raw.merged == 3 and raw.split == 2
    framed = report.way("framed")
    assert framed.boundaries_kept and framed.received == framed.sent
    assert framed.merged == framed.split == 0
    sleep = report.way("sleep")
    assert sleep.merged == 0 and sleep.split == 1  # sleeping separates, cannot stop a split
    assert sleep.elapsed >= 0.001 * len(sleep.sent)
    udp = report.way("udp")
    assert udp.received == (5, 12, 1024, 7, 40, 600, 1)  # whole datagrams, one truncated
    assert udp.bytes_lost == 3000 - 1024 and udp.merged == udp.split == 0
    assert report.burst is not None and report.burst.sent == 300
    assert report.burst.received + report.burst.lost == 300


@pytest.mark.parametrize("repeat", range(3))
async def test_raw_merges_and_framed_never_does_on_every_run(repeat: int) -> None:
    report = await run_compare(CompareOptions(sleep=0, burst=0))
    assert report.way("raw").merged > 0
    assert report.way("framed").boundaries_kept
    assert report.burst is None


async def test_nagle_option_applies() -> None:
    report = await run_compare(CompareOptions(nodelay=False, sleep=0, burst=0, sizes=(10, 20)))
    assert report.options.nodelay is False
    assert report.way("framed").received == (10, 20)


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


def test_attribute_maps_reads_onto_messages() -> None:
    assert attribute([3, 2, 4], [4, 5]) == (
        (Piece(0, 3), Piece(1, 1)),
        (Piece(1, 1), Piece(2, 4)),
    )
    assert attribute([5], [2, 2, 1]) == ((Piece(0, 2),), (Piece(0, 2),), (Piece(0, 1),))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sizes": ()}, "at least one message"),
        ({"sizes": (0,)}, "at least 1 byte"),
        ({"sizes": (70000,)}, "at most 65507"),
        ({"read_size": 0}, "read_size"),
        ({"burst": -1}, "burst"),
    ],
)
def test_options_validated(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CompareOptions(**options)  # type: ignore[arg-type]


def test_report_dict_is_json_ready() -> None:
    report = trio.run(run_compare, CompareOptions(sleep=0, burst=10))
    doc = report.to_dict()
    import json

    assert json.loads(json.dumps(doc)) == doc
    assert doc["schema"] == framekit.CompareReport.__dataclass_fields__["schema"].default


def test_cycle_sizes() -> None:
    from framekit import cycle_sizes

    assert cycle_sizes((1, 2, 3), 7) == (1, 2, 3, 1, 2, 3, 1)
    with pytest.raises(ValueError, match="count of at least 1"):
        cycle_sizes((1,), 0)
