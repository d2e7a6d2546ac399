"""Fuzzing the sans-IO decoders: arbitrary and mutated bytes, in arbitrary chunkings.

Every example is decoded whole, one byte at a time and in a drawn chunking, then EOF,
and each run must hold h11's fuzz invariants, made stronger by a reference model:

* only :class:`framekit.ProtocolError` subclasses escape a decoder;
* after a terminal error every later call raises it again;
* a decoder never returns more payload bytes than it was fed;
* frames / events and the final error are the same in every chunking, and the same
  as those of a plain reference decoder written from the wire-format rules.

The default run is short; ``scripts/fuzz`` runs the same tests under the ``fuzz``
Hypothesis profile (see ``tests/conftest.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from framekit import (
    END_OF_STREAM,
    NEED_DATA,
    BadHeader,
    BodyChunk,
    ChecksumMismatch,
    EndOfMessage,
    FrameDecoder,
    FrameEncoder,
    FrameFormat,
    FrameTooLarge,
    Header,
    HeaderTooLarge,
    IncompleteFrame,
    LocalProtocolError,
    MessageDecoder,
    MessageEncoder,
    ProtocolError,
)

from ..helpers import split_at

# Inputs are kilobytes fed one byte at a time, so no per-example deadline; the examples
# are large on purpose.
fuzz = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

#: Headers nested deeper than this are parsed, or refused for their depth, depending on
#: the stack depth of the caller (Python's recursion limit): the model leaves them out.
MODELLED_DEPTH = 200


# -- outcomes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a decoder made of a whole stream: its items, then how the stream ended.

    ``end`` is ``"END_OF_STREAM"``, the class of the terminal error, or ``None`` when the
    model stopped at a header it does not model (then ``items`` is a prefix).
    """

    items: list[Any]
    end: str | type[ProtocolError] | None


def check_outcome(model: Outcome, got: Outcome) -> None:
    """``got`` is what the model expects (a prefix of it, where the model stopped)."""
    if model.end is None:
        assert got.items[: len(model.items)] == model.items
    else:
        assert got == model


def stays_broken(error: ProtocolError, calls: list[Callable[[], object]]) -> None:
    """Every call raises the terminal error again (twice, to be sure)."""
    assert error.terminal
    for call in calls * 2:
        with pytest.raises(ProtocolError) as info:
            call()
        assert type(info.value) is type(error), (info.value, error)


# -- strategies ---------------------------------------------------------------------------


@st.composite
def frame_formats(draw: st.DrawFn) -> FrameFormat:
    """Every width, byte order and sign; limits from 0 up to what the field holds."""
    width = draw(st.sampled_from([1, 2, 4, 8]))
    signed = draw(st.booleans())
    field_max = (1 << (8 * width - signed)) - 1
    return FrameFormat(
        width=width,
        byteorder=draw(st.sampled_from(["big", "little"])),
        signed=signed,
        max_frame_size=draw(st.none() | st.integers(0, min(field_max, 70)) | st.just(field_max)),
    )


def chunkings_of(draw: st.DrawFn, data: bytes) -> list[list[bytes]]:
    """The same stream three ways: whole, one byte at a time, split at drawn points."""
    cuts = draw(st.lists(st.integers(0, len(data)), min_size=1, max_size=12))
    return [[data], [data[i : i + 1] for i in range(len(data))], split_at(data, cuts)]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, replaced, inserted, deleted or duplicated."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "duplicate", "truncate"]))
        i = draw(st.integers(0, len(buf)))
        if op == "flip" and i < len(buf):
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and i < len(buf):
            buf[i] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, ord("{"), ord('"')]))
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[i : i + draw(st.integers(1, 8))]
        elif op == "duplicate":
            buf[i:i] = buf[i : i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[i:]
    return bytes(buf)


def pack_length(fmt: FrameFormat, n: int) -> bytes:
    """``n`` in ``fmt``'s length field, wrapped to fit (the field may hold garbage)."""
    bits = 8 * fmt.width
    n %= 1 << bits
    if fmt.signed and n >= 1 << (bits - 1):
        n -= 1 << bits
    return n.to_bytes(fmt.width, fmt.byteorder, signed=fmt.signed)


def boundary_lengths(fmt: FrameFormat, limit: int) -> list[int]:
    """Length fields around ``limit``, the field's maximum and (signed) below zero."""
    top = fmt.field_max
    values = [0, 1, limit - 1, limit, limit + 1, top, top + 1, -1, -top - 1]
    return [v for v in values if v >= 0 or fmt.signed]


@st.composite
def frame_streams(draw: st.DrawFn, fmt: FrameFormat) -> bytes:
    """Valid frames, boundary length prefixes and raw bytes, then mutated."""
    parts = []
    encoder = FrameEncoder(fmt)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["frame", "frame", "prefix", "raw"]))
        if kind == "frame":
            parts.append(encoder.encode(draw(st.binary(max_size=min(fmt.limit, 120)))))
        elif kind == "prefix":
            length = draw(st.sampled_from(boundary_lengths(fmt, fmt.limit)))
            parts.append(pack_length(fmt, length) + draw(st.binary(max_size=40)))
        else:
            parts.append(draw(st.binary(max_size=20)))
    return draw(mutated(b"".join(parts)))


# JSON text pieces (raw text, so they can be what json.dumps never writes).
_HEX = "0123456789abcdef"
sha_texts = st.one_of(
    st.text(_HEX, min_size=64, max_size=64).map(json.dumps),
    st.text(_HEX + "ABCDEF", min_size=64, max_size=64).map(json.dumps),
    st.text(_HEX, min_size=62, max_size=66).map(json.dumps),
    st.sampled_from(
        [
            "null",
            "5",
            "true",
            "[]",
            '"' + "\\ud800" * 64 + '"',  # lone surrogates
            json.dumps("０" * 64, ensure_ascii=False),  # full-width digits
            json.dumps("a" * 64 + "\n"),
            '"' + "a" * 63 + '\\u0061"',
        ]
    ),
)
number_texts = st.one_of(
    st.integers(-3, 300).map(str),
    st.sampled_from(
        [
            "-0",
            "0.0",
            "1.0",
            "1.5",
            "1e2",
            "1E400",
            "-1e400",
            "NaN",
            "Infinity",
            "-Infinity",
            "18446744073709551616",
            "9223372036854775807",
            "1" + "0" * 400,
            "9" * 4300,
            "9" * 4301,  # over Python's int-digits limit
            "01",
            "1.",
            "-",
            "0x10",
        ]
    ),
)
string_texts = st.one_of(
    st.text(max_size=12).map(json.dumps),
    st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(['"\\ud800"', '"\\udfff"', '"a\\udbffb"', '"\\u00"', '"\\x41"', '"\t"']),
)


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "0" + "}" * depth


nested_texts = st.builds(
    nested,
    st.one_of(st.integers(1, 40), st.sampled_from([199, 200, 201, 990, 1000, 1010, 3000])),
    st.sampled_from(["list", "dict"]),
)
value_texts = st.one_of(
    number_texts,
    string_texts,
    st.sampled_from(["true", "false", "null", "[]", "{}", "[1,[2]]", '{"size":1}', "tru"]),
    nested_texts,
)


@st.composite
def object_texts(draw: st.DrawFn) -> str:
    """A JSON object's text whose keys may repeat and whose values may be anything."""
    pairs = []
    for _ in range(draw(st.integers(0, 5))):
        key = draw(
            st.sampled_from(["size", "size", "sha256", "type", "id", "\\ud800", "Size"])
            | st.text(max_size=5).map(lambda s: json.dumps(s)[1:-1])
        )
        value = draw(
            number_texts if key == "size" else sha_texts if key == "sha256" else value_texts
        )
        pairs.append(f'"{key}":{value}')
    return "{" + ",".join(pairs) + "}"


@st.composite
def header_payloads(draw: st.DrawFn) -> bytes:
    """Header frame contents: hostile JSON text, bad UTF-8, or arbitrary bytes."""
    kind = draw(st.sampled_from(["object", "object", "object", "value", "bytes", "wrapped"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    text = draw(object_texts() if kind != "value" else value_texts)
    raw = text.encode("utf-8", "surrogatepass")
    if kind == "wrapped":
        prefix = draw(st.sampled_from([b"\xef\xbb\xbf", b" \n", b"\xc0\xaf", b"\xed\xa0\x80"]))
        suffix = draw(st.sampled_from([b"", b" ", b"x", b"\x00", b"}"]))
        raw = prefix + raw + suffix
    return raw


@st.composite
def message_decoders(draw: st.DrawFn) -> dict[str, Any]:
    """Arguments of a MessageDecoder: any frame format, small or default limits."""
    return {
        "format": draw(frame_formats()),
        "max_header_size": draw(st.sampled_from([0, 1, 10, 24, 60, 300, 65536])),
        "max_body_size": draw(st.none() | st.integers(0, 50)),
    }


def header_limit(args: dict[str, Any]) -> int:
    fmt: FrameFormat = args["format"]
    limit: int = min(args["max_header_size"], fmt.field_max)
    return limit


@st.composite
def message_streams(draw: st.DrawFn, args: dict[str, Any], hostile: bool) -> bytes:
    """Messages in ``args``' format: valid ones (encoded by MessageEncoder), hostile
    headers with bodies that may be shorter or longer than their ``size``, boundary
    length prefixes and raw bytes; then mutated."""
    fmt: FrameFormat = args["format"]
    limit = header_limit(args)
    encoder = MessageEncoder(fmt, max_header_size=limit)
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["valid", "hostile", "hostile", "prefix", "raw"]))
        if kind == "valid" or not hostile:
            body = draw(st.binary(max_size=60))
            fields = draw(st.dictionaries(st.sampled_from(["type", "id", "n"]), st.integers()))
            checksum = draw(st.booleans())
            if checksum and draw(st.booleans()):  # announced, but of another body
                fields["sha256"] = hashlib.sha256(body + b"!").hexdigest()
                checksum = False
            try:
                parts.append(encoder.message(fields, body, checksum=checksum))
            except HeaderTooLarge:  # too big for this format: a raw frame instead
                parts.append(draw(st.binary(max_size=10)))
        elif kind == "hostile":
            raw = draw(header_payloads())[: fmt.field_max]
            parts.append(pack_length(fmt, len(raw)) + raw + draw(st.binary(max_size=60)))
        elif kind == "prefix":
            length = draw(st.sampled_from(boundary_lengths(fmt, limit)))
            parts.append(pack_length(fmt, length) + draw(st.binary(max_size=30)))
        else:
            parts.append(draw(st.binary(max_size=30)))
    return draw(mutated(b"".join(parts)))


# -- frames: model and drivers ----------------------------------------------------------------


def model_frames(fmt: FrameFormat, data: bytes) -> Outcome:
    """The frames in ``data`` by the wire-format rules, and how the stream ends."""
    width, pos, frames = fmt.width, 0, []
    while pos < len(data):
        if len(data) - pos < width:
            return Outcome(frames, IncompleteFrame)
        length = int.from_bytes(data[pos : pos + width], fmt.byteorder, signed=fmt.signed)
        if not 0 <= length <= fmt.limit:
            return Outcome(frames, FrameTooLarge)
        if len(data) - pos - width < length:
            return Outcome(frames, IncompleteFrame)
        frames.append(data[pos + width : pos + width + length])
        pos += width + length
    return Outcome(frames, "END_OF_STREAM")


def decode_frames(fmt: FrameFormat, chunks: list[bytes], calls: list[bool]) -> Outcome:
    """Feed ``chunks`` then EOF, draining with ``frames()`` or ``next_frame()`` (the
    ``calls`` cycle picks: True is next_frame); check the invariants on the way."""
    dec = FrameDecoder(fmt)
    frames: list[bytes] = []
    fed = step = 0
    try:
        for chunk in [*chunks, b""]:
            dec.receive_data(chunk)
            fed += len(chunk)
            while True:
                step += 1
                if calls and calls[step % len(calls)]:
                    frame = dec.next_frame()
                    if frame is NEED_DATA or frame is END_OF_STREAM:
                        assert (frame is END_OF_STREAM) == (dec.at_eof and not dec.buffered)
                        break
                    frames.append(frame)
                else:
                    got = dec.frames()
                    if not got:
                        break
                    frames += got
                consumed = sum(len(f) for f in frames) + fmt.width * len(frames)
                assert consumed <= fed
                assert dec.buffered == fed - consumed
        assert dec.buffered == 0
        assert dec.frames() == []
        assert dec.next_frame() is END_OF_STREAM
    except ProtocolError as exc:
        stays_broken(exc, [dec.frames, dec.next_frame, lambda: dec.read_raw(1)])
        if not dec.at_eof:  # more data does not resynchronise it
            dec.receive_data(b"\x00" * 9)
            stays_broken(exc, [dec.frames, dec.next_frame])
        return Outcome(frames, type(exc))
    return Outcome(frames, "END_OF_STREAM")


def label(outcome: Outcome) -> None:
    """Name how the stream ended in the statistics (``--hypothesis-show-statistics``)."""
    end = outcome.end
    event(f"ends with {end if isinstance(end, str | None) else end.__name__}")
    kinds = {item[0] for item in outcome.items if isinstance(item, tuple)}
    if kinds:
        event(f"events: {', '.join(sorted(kinds))}")


def check_frame_decoder(draw: st.DrawFn, fmt: FrameFormat, data: bytes) -> None:
    model = model_frames(fmt, data)
    label(model)
    calls = draw(st.lists(st.booleans(), max_size=5))
    for chunks in chunkings_of(draw, data):
        check_outcome(model, decode_frames(fmt, chunks, calls))


@fuzz
@given(fmt=frame_formats(), data=st.binary(max_size=400), draw=st.data())
def test_frame_decoder_arbitrary_bytes_any_chunking(
    fmt: FrameFormat, data: bytes, draw: st.DataObject
) -> None:
    check_frame_decoder(draw.draw, fmt, data)


@fuzz
@given(data=st.data())
def test_frame_decoder_mutated_valid_streams(data: st.DataObject) -> None:
    fmt = data.draw(frame_formats())
    check_frame_decoder(data.draw, fmt, data.draw(frame_streams(fmt)))


@fuzz
@given(
    fmt=frame_formats(),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("feed"), st.binary(min_size=1, max_size=30)),
            st.tuples(st.just("eof"), st.none()),
            st.tuples(st.just("frames"), st.none()),
            st.tuples(st.just("next_frame"), st.none()),
            st.tuples(st.just("read_raw"), st.integers(0, 40)),
        ),
        max_size=40,
    ),
)
def test_frame_decoder_any_call_sequence(fmt: FrameFormat, ops: list[tuple[str, Any]]) -> None:
    # read_raw (what MessageDecoder uses for bodies) mixed in: no byte is returned twice,
    # none is invented, and only ProtocolError escapes.
    dec = FrameDecoder(fmt)
    fed = consumed = 0
    error: ProtocolError | None = None
    for op, arg in ops:
        if op == "feed" and dec.at_eof:
            with pytest.raises(LocalProtocolError):  # the caller's mistake, nothing stored
                dec.receive_data(arg)
        elif op in ("feed", "eof"):
            dec.receive_data(arg or b"")
            fed += len(arg or b"")
        else:
            before = error
            try:
                consumed += take(dec, op, arg)
            except ProtocolError as exc:
                error = exc
            else:
                assert before is None, f"{op} worked after {before!r}"
            assert before is None or type(error) is type(before)
        assert consumed <= fed
        assert dec.buffered == fed - consumed


def take(dec: FrameDecoder, op: str, arg: int) -> int:
    """Call ``op`` once; the number of stream bytes it consumed."""
    width = dec.format.width
    if op == "frames":
        return sum(width + len(f) for f in dec.frames())
    if op == "next_frame":
        frame = dec.next_frame()
        return width + len(frame) if isinstance(frame, bytes) else 0
    return len(dec.read_raw(arg))


# -- messages: model and driver -----------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (brackets in strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def model_messages(args: dict[str, Any], data: bytes) -> Outcome:
    """The events in ``data`` by the rules of docs/wire-format.md: ``("header", fields)``,
    ``("body", whole body)``, then ``("end", sha256 or None)`` or ``("mismatch",)``."""
    fmt: FrameFormat = args["format"]
    max_body_size: int | None = args["max_body_size"]
    width, limit = fmt.width, header_limit(args)
    events: list[Any] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < width:
            return Outcome(events, IncompleteFrame)
        length = int.from_bytes(data[pos : pos + width], fmt.byteorder, signed=fmt.signed)
        if not 0 <= length <= limit:
            return Outcome(events, HeaderTooLarge)
        if len(data) - pos - width < length:
            return Outcome(events, IncompleteFrame)
        raw = data[pos + width : pos + width + length]
        pos += width + length
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Outcome(events, BadHeader)
        if json_depth(text) > MODELLED_DEPTH:
            return Outcome(events, None)
        try:
            fields = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            return Outcome(events, BadHeader)
        if not isinstance(fields, dict) or "size" not in fields:
            return Outcome(events, BadHeader)
        size = fields["size"]
        if type(size) is not int or size < 0:
            return Outcome(events, BadHeader)
        if max_body_size is not None and size > max_body_size:
            return Outcome(events, FrameTooLarge)
        sha = fields.get("sha256")
        if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            return Outcome(events, BadHeader)
        body = data[pos : pos + size]
        pos += len(body)
        events += [("header", fields), ("body", body)]
        if len(body) < size:
            return Outcome(events, IncompleteFrame)
        digest = hashlib.sha256(body).hexdigest() if sha is not None else None
        events.append(("end", digest) if digest == (sha and sha.lower()) else ("mismatch",))
    return Outcome(events, "END_OF_STREAM")


def next_event(dec: MessageDecoder) -> object:
    """``dec.next_event()``, or the ChecksumMismatch it raised (the stream goes on)."""
    try:
        return dec.next_event()
    except ChecksumMismatch as exc:
        return exc


def decode_messages(args: dict[str, Any], chunks: list[bytes]) -> Outcome:
    """Feed ``chunks`` then EOF to a MessageDecoder, checking the invariants on the way."""
    dec = MessageDecoder(**args)
    width = args["format"].width
    events: list[Any] = []
    header: Header | None = None
    body: list[bytes] = []
    fed = returned = 0

    def end_body() -> None:
        nonlocal header
        events.append(("body", b"".join(body)))
        body.clear()
        header = None

    try:
        for chunk in [*chunks, b""]:
            dec.receive_data(chunk)
            fed += len(chunk)
            while True:
                event = next_event(dec)
                if isinstance(event, ChecksumMismatch):
                    assert not event.terminal and header is not None
                    assert event.expected == header.sha256
                    assert event.actual == hashlib.sha256(b"".join(body)).hexdigest()
                    end_body()
                    events.append(("mismatch",))
                    continue
                if event is NEED_DATA or event is END_OF_STREAM:
                    assert (event is END_OF_STREAM) == (dec.at_eof and header is None)
                    break
                if isinstance(event, Header):
                    assert header is None
                    header = event
                    events.append(("header", event.fields))
                    returned += width
                elif isinstance(event, BodyChunk):
                    assert header is not None and event.data
                    body.append(event.data)
                    returned += len(event.data)
                    assert sum(map(len, body)) <= header.size
                    assert dec.body_remaining == header.size - sum(map(len, body))
                else:
                    assert isinstance(event, EndOfMessage) and event.header is header
                    assert sum(map(len, body)) == header.size
                    end_body()
                    events.append(("end", event.sha256))
                assert returned <= fed
        assert event is END_OF_STREAM and dec.next_event() is END_OF_STREAM
    except ProtocolError as exc:
        if header is not None:
            end_body()
        stays_broken(exc, [dec.next_event])
        if not dec.at_eof:
            dec.receive_data(b"\x00" * 9)
            stays_broken(exc, [dec.next_event])
        return Outcome(events, type(exc))
    return Outcome(events, "END_OF_STREAM")


def check_message_decoder(draw: st.DrawFn, args: dict[str, Any], data: bytes) -> None:
    model = model_messages(args, data)
    label(model)
    outcomes = [decode_messages(args, chunks) for chunks in chunkings_of(draw, data)]
    for outcome in outcomes:
        assert outcome == outcomes[0]  # chunking-independent, even where unmodelled
        check_outcome(model, outcome)


@fuzz
@given(args=message_decoders(), data=st.binary(max_size=400), draw=st.data())
def test_message_decoder_arbitrary_bytes_any_chunking(
    args: dict[str, Any], data: bytes, draw: st.DataObject
) -> None:
    check_message_decoder(draw.draw, args, data)


@fuzz
@given(data=st.data())
def test_message_decoder_mutated_valid_streams(data: st.DataObject) -> None:
    args = data.draw(message_decoders())
    args["max_header_size"] = data.draw(st.sampled_from([65536, 300, 60, args["max_header_size"]]))
    check_message_decoder(data.draw, args, data.draw(message_streams(args, hostile=False)))


@fuzz
@given(data=st.data())
def test_message_decoder_hostile_headers_and_lying_sizes(data: st.DataObject) -> None:
    # Deep nesting, huge numbers, NaN / Infinity, duplicate keys, non-objects, lone
    # surrogates, size and sha256 of every wrong type, bodies shorter or longer.
    args = data.draw(message_decoders())
    args["max_header_size"] = data.draw(st.sampled_from([65536, 65536, 300, 24]))
    check_message_decoder(data.draw, args, data.draw(message_streams(args, hostile=True)))


@pytest.mark.parametrize(
    "text",
    [
        nested(5000, "list"),
        nested(3000, "dict"),
        '{"size":' + "9" * 4301 + "}",
        '{"size":0,"x":' + "1" * 20000 + "}",
        '{"size":0,"size":NaN}',
        '{"size":1E400}',
        '{"size":0,"sha256":"' + "\\ud800" * 64 + '"}',
        '{"size":0,"\\udfff":"\\ud800"}',
    ],
)
def test_message_decoder_known_hostile_headers(text: str) -> None:
    # The corner cases above, each sure to be tried in every run.
    raw = text.encode()
    data = FrameEncoder().encode(raw) + b"body"
    args: dict[str, Any] = {"format": FrameFormat(), "max_header_size": 65536}
    args["max_body_size"] = None
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        outcome = decode_messages(args, chunks)
        check_outcome(model_messages(args, data), outcome)


def test_message_decoder_error_stays_the_same_after_max_body_size() -> None:
    # Found by the fuzz tests: the next call turned the stored FrameTooLarge into a
    # HeaderTooLarge naming the *body* size as a header length.
    dec = MessageDecoder(max_body_size=10)
    dec.receive_data(MessageEncoder().header({}, size=11))
    for _ in range(3):
        with pytest.raises(FrameTooLarge, match="body of 11 bytes is over max_body_size"):
            dec.next_event()
