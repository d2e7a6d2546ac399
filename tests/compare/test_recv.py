"""The recv lesson: what it measures on loopback must show what recv really does."""

from __future__ import annotations

import json
import re
import sys
from itertools import pairwise
from typing import Any, Literal

import pytest

from framekit.compare._recv import (
    RECV_SCHEMA,
    RecvCall,
    RecvLesson,
    RecvOptions,
    RecvStep,
    _preview,
    run_recv_lesson,
)

from ..conftest import HAS_IPV6

#: A short wait keeps the suite fast; still far above the time a recv of buffered bytes takes.
FAST = 0.05
#: Scheduling slack allowed on top of the sender's wait (a loaded CI machine).
MARGIN = 0.5
KEYS = ["blocks", "buffered", "partial", "closed", "half_close"]


async def lesson(**options: Any) -> RecvLesson:
    return await run_recv_lesson(RecvOptions(**{"wait": FAST, **options}))


def data_calls(step: RecvStep, by: Literal["receiver", "sender"] = "receiver") -> list[RecvCall]:
    return [c for c in step.calls_by(by) if not c.eof]


def expected_preview(call: RecvCall, upper: bool = False) -> str:
    """The preview the call's pieces imply: message i is letter i, repeated."""
    if not call.pieces:
        return "b''"
    terms = []
    for p in call.pieces:
        letter = chr(ord("a") + p.message)
        letter = letter.upper() if upper else letter
        terms.append(f"b'{letter}'" if p.length == 1 else f"b'{letter}'*{p.length}")
    return " + ".join(terms)


def check_stream(step: RecvStep, by: str, sent: tuple[int, ...]) -> None:
    """Invariants of any run of recv calls on one end, on every OS."""
    calls = [c for c in step.calls if c.by == by]
    assert calls, f"{step.key}: no calls by the {by}"
    total = sum(sent)
    assert sum(c.length for c in calls) == total  # every byte, once
    got = 0
    for c in calls:
        assert c.length <= c.max_bytes  # never more than asked for
        assert sum(p.length for p in c.pieces) == c.length
        assert c.preview == expected_preview(c, upper=by == "sender")  # the bytes themselves
        got += c.length
        assert c.left == total - got
        assert c.blocked >= 0 and c.at >= 0
    for before, after in pairwise(calls):
        # what one call left is exactly what the following calls returned
        assert before.left == after.length + after.left
        assert after.at >= before.at + before.blocked - 1e-9
        if before.left and before.pieces and after.pieces:
            # a message cut by one call continues at the start of the next
            last, first = before.pieces[-1], after.pieces[0]
            if last.length < sent[last.message]:
                assert first.message == last.message


async def test_every_step_is_run_in_order() -> None:
    result = await run_recv_lesson()  # the defaults: recv(1024), a 0.2 s wait
    assert [s.key for s in result.steps] == KEYS
    assert result.options == RecvOptions() and result.schema == RECV_SCHEMA
    assert result.step("closed") is result.steps[3]
    with pytest.raises(KeyError):
        result.step("nope")  # type: ignore[arg-type]


@pytest.mark.parametrize("wait", [FAST, 0.15])
async def test_recv_blocks_while_nothing_is_buffered(wait: float) -> None:
    step = (await lesson(wait=wait)).step("blocks")
    (call,) = step.calls
    assert step.sender_wrote_after is not None
    assert step.sender_wrote_after >= 0.9 * wait  # the sender really waited
    assert call.blocked >= step.sender_wrote_after  # recv returned only after the write
    assert call.blocked < wait + MARGIN
    assert call.at < 0.9 * wait  # called well before the write
    assert call.length == min(step.sent[0], call.max_bytes) and not call.eof
    check_stream(step, "receiver", (call.length + call.left,))


async def test_recv_returns_what_is_buffered_and_leaves_the_rest() -> None:
    options = RecvOptions(wait=FAST)
    step = (await run_recv_lesson(options)).step("buffered")
    assert step.sent == options.sizes and step.sender_end == "open"
    check_stream(step, "receiver", step.sent)
    assert len(step.calls) >= 2  # more than read_size was sent: one call cannot take it all
    assert step.calls[0].left > 0
    assert not any(c.eof for c in step.calls)
    for c in step.calls:
        assert c.blocked < FAST  # everything had been sent: no call waited for the sender


@pytest.mark.skipif(
    sys.platform == "win32",
    reason="Winsock may end a recv at an internal buffer boundary (KB192599), so how much "
    "one call returns of what is buffered is not fixed there",
)
async def test_recv_returns_everything_buffered_up_to_its_size() -> None:
    result = await lesson()
    buffered = result.step("buffered")
    assert [c.length for c in buffered.calls] == [1024, 376]
    assert [[(p.message, p.length) for p in c.pieces] for c in buffered.calls] == [
        [(0, 600), (1, 300), (2, 124)],  # three messages merged into one read...
        [(2, 376)],  # ...and the third one's rest in the next
    ]
    assert [c.length for c in result.step("partial").calls] == [100, 500]
    assert [c.length for c in data_calls(result.step("closed"))] == [1024, 376]


async def test_a_small_recv_returns_part_of_a_message_and_the_next_the_rest() -> None:
    options = RecvOptions(wait=FAST, small_read=37, read_size=200, sizes=(600, 1))
    step = (await run_recv_lesson(options)).step("partial")
    check_stream(step, "receiver", (600,))
    first, *rest = step.calls
    assert first.max_bytes == 37 and first.length == 37 and first.left == 600 - 37
    assert rest and all(c.max_bytes == 200 for c in rest)
    assert all(p.message == 0 for c in step.calls for p in c.pieces)  # all of message a


async def test_after_close_recv_returns_empty_at_once_and_every_time() -> None:
    result = await lesson()
    step = result.step("closed")
    assert step.sender_end == "closed"
    check_stream(step, "receiver", step.sent)
    *reads, first_empty, second_empty = step.calls
    assert reads and not any(c.eof for c in reads)
    assert sum(c.length for c in reads) == sum(step.sent)  # drained first
    waited = result.step("blocks").calls[0].blocked
    for empty in (first_empty, second_empty):
        assert empty.eof and empty.length == 0 and empty.preview == "b''" and not empty.pieces
        assert empty.blocked < min(0.1, waited / 4)  # b'' does not wait


async def test_a_half_closed_peer_still_receives() -> None:
    options = RecvOptions(wait=FAST, reply_size=3000, read_size=1024)
    step = (await run_recv_lesson(options)).step("half_close")
    assert step.sender_end == "shut_wr" and step.replied == (3000,)
    check_stream(step, "receiver", step.sent)
    check_stream(step, "sender", step.replied)
    received = [c for c in step.calls if c.by == "receiver"]
    answered = [c for c in step.calls if c.by == "sender"]
    assert received[-1].eof and not any(c.eof for c in received[:-1])  # b'' after the data
    assert answered[-1].eof and sum(c.length for c in answered) == 3000  # the whole reply
    assert answered[0].at > received[-1].at  # read after the sender had shut down
    assert len(data_calls(step, "sender")) >= 3  # 3000 B in recv(1024)s


def figure_ms(text: str) -> float:
    match = re.search(r"waited ([\d.]+) ms", text)
    assert match, text
    return float(match[1])


async def test_notes_are_made_from_the_figures() -> None:
    short, long = await lesson(wait=FAST), await lesson(wait=0.25)
    for result in (short, long):
        blocks = result.step("blocks")
        assert figure_ms(blocks.note) == round(blocks.calls[0].blocked * 1000)
        assert blocks.sender_wrote_after is not None
        assert f"{blocks.sender_wrote_after * 1000:.0f} ms after the call" in blocks.note
        buffered = result.step("buffered")
        for c in buffered.calls:
            assert f"{c.length} B" in buffered.note and f"{c.left} B left" in buffered.note
        assert f"recv({result.options.read_size})" in buffered.note
        partial = result.step("partial")
        first = partial.calls[0]
        assert f"recv({first.max_bytes}) returned {first.length} B" in partial.note
        assert f"left {first.left} B" in partial.note
        closed = result.step("closed")
        empties = sum(c.eof for c in closed.calls)
        assert f"then b'' {empties} times" in closed.note
        half = result.step("half_close")
        assert f"{sum(half.replied)} B reply" in half.note and "all of it" in half.note
    # a longer wait shows up in the note, by about the difference
    difference = figure_ms(long.step("blocks").note) - figure_ms(short.step("blocks").note)
    assert abs(difference - (0.25 - FAST) * 1000) < MARGIN * 1000


#: The documented to_dict() fields (docs/reference/cli.md): the output must have these.
TOP_FIELDS = {"schema", "options", "steps", "conditions"}
OPTION_FIELDS = {
    "read_size",
    "small_read",
    "wait",
    "sizes",
    "reply_size",
    "host",
    "timeout",
}
STEP_FIELDS = {
    "key",
    "title",
    "sent",
    "sender_end",
    "sender_wrote_after",
    "replied",
    "calls",
    "note",
}
CALL_FIELDS = {
    "by",
    "max_bytes",
    "length",
    "eof",
    "preview",
    "pieces",
    "left",
    "at",
    "blocked",
}


async def test_to_dict_is_json_ready_and_matches_the_schema() -> None:
    result = await lesson()
    doc = result.to_dict()
    assert json.loads(json.dumps(doc)) == doc  # only JSON types: round-trips unchanged
    assert set(doc) == TOP_FIELDS and doc["schema"] == RECV_SCHEMA == 1
    assert set(doc["options"]) == OPTION_FIELDS
    assert doc["options"]["sizes"] == list(result.options.sizes)
    assert [s["key"] for s in doc["steps"]] == KEYS
    for step, d in zip(result.steps, doc["steps"], strict=True):
        assert set(d) == STEP_FIELDS
        assert d["note"] == step.note and d["sent"] == list(step.sent)
        assert d["sender_end"] in {"open", "closed", "shut_wr"}
        assert (d["sender_wrote_after"] is None) == (step.key != "blocks")
        for call, c in zip(step.calls, d["calls"], strict=True):
            assert set(c) == CALL_FIELDS
            assert c["length"] == call.length and c["eof"] == (call.length == 0)
            assert c["pieces"] == [[p.message, p.length] for p in call.pieces]
            assert c["blocked"] == call.blocked and c["by"] in {"receiver", "sender"}


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback on this machine")
async def test_ipv6_loopback() -> None:
    result = await lesson(host="::1")
    assert [s.key for s in result.steps] == KEYS
    assert data_calls(result.step("half_close"), "sender")


def test_preview_shows_the_bytes() -> None:
    assert _preview(b"") == "b''"
    assert _preview(b"aab") == "b'a'*2 + b'b'"
    assert _preview(b"abcdef") == "b'a' + b'b' + b'c' + b'd' + ..."


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"read_size": 0}, "read_size must be at least 1"),
        ({"sizes": ()}, "at least one message size"),
        ({"sizes": (600, 0)}, "at least 1 byte"),
        ({"sizes": (20000, 20000)}, "at most 32768"),
        ({"reply_size": 40000}, "at most 32768"),
        ({"sizes": (600, 300), "read_size": 900}, "larger sizes or a smaller read_size"),
        ({"small_read": 600}, "smaller than the first message"),
        ({"small_read": 0}, "small_read must be at least 1"),
        ({"reply_size": 0}, "reply_size must be at least 1"),
        ({"wait": 0}, "wait must be more than 0"),
        ({"wait": 2, "timeout": 1}, "timeout must be longer than wait"),
        ({"host": "192.0.2.1"}, "loopback address"),
        ({"host": "localhost"}, "loopback address"),  # an address, not a name to resolve
    ],
)
def test_options_validated(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RecvOptions(**options)
