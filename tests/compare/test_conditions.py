"""Every lesson says what shaped its figures: the OS and the sockets as the OS set them."""

from __future__ import annotations

import platform

import pytest

from framekit import (
    CompareOptions,
    LifecycleOptions,
    RecvOptions,
    run_compare,
    run_lifecycle_lesson,
    run_recv_lesson,
)
from framekit.compare import Conditions
from framekit.compare._conditions import observe_conditions


@pytest.mark.parametrize("nagle", [True, False])
async def test_the_framing_lesson_records_its_conditions(nagle: bool) -> None:
    opts = CompareOptions(sleep=0.001, burst=0, nodelay=not nagle, read_size=512)
    report = await run_compare(opts)
    found = report.conditions
    assert found is not None
    assert (found.system, found.release) == (platform.system(), platform.release())
    assert (found.read_size, found.nagle) == (512, nagle)
    assert found.tcp_send_buffer > 0 and found.tcp_receive_buffer > 0
    assert found.udp_receive_buffer > 0
    assert report.to_dict()["conditions"]["nagle"] is nagle


async def test_recv_and_lifecycle_record_theirs() -> None:
    recv = await run_recv_lesson(RecvOptions(wait=0.01))
    assert recv.conditions is not None and recv.conditions.read_size == 1024
    assert recv.to_dict()["conditions"]["system"] == platform.system()
    life = await run_lifecycle_lesson(LifecycleOptions(connects=3))
    assert life.conditions is not None
    assert (life.conditions.read_size, life.conditions.nagle) == (None, None)
    assert life.to_dict()["conditions"]["python"] == platform.python_version()


async def test_buffers_are_what_the_os_reports() -> None:
    found = await observe_conditions(host="127.0.0.1", read_size=1, nagle=False)
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert found.udp_receive_buffer == udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def test_the_header_lines_fit_a_panel_at_80_columns() -> None:
    found = Conditions(
        system="Linux",
        release="6.1.0-28-cloud-amd64",
        python="3.11.7",
        trio="0.27.0",
        read_size=1024,
        nagle=False,
        tcp_send_buffer=2_626_560,
        tcp_receive_buffer=131_072,
        udp_receive_buffer=212_992,
    )
    machine, sockets = found.describe()
    assert machine == "Linux 6.1.0-28-cloud-amd64, Python 3.11.7, Trio 0.27.0"
    assert sockets == "TCP buffers: send 2.5 MiB, receive 128 KiB; UDP receive 208 KiB; Nagle off"
    assert len(sockets) <= 76
