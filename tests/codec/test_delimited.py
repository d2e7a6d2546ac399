"""Lines and delimiters: any chunking, the limit checked while scanning, linear time,
keep or strip, the last unterminated line, discarding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framekit import (
    DelimitedFormat,
    FrameTooLarge,
    IncompleteFrame,
    InvalidFormat,
    LocalProtocolError,
    parse_framing,
)

from .framing_helpers import cuts, decode, decode_one_by_one, split

line_text = st.binary(max_size=40).map(
    lambda b: b.replace(b"\n", b"").replace(b"\r", b"").replace(b"\x00", b"")
)


@given(st.lists(line_text, max_size=20), st.lists(st.booleans(), min_size=20), cuts)
def test_lines_accept_lf_and_crlf_in_any_chunking(
    lines: list[bytes], crlf: list[bool], points: list[int]
) -> None:
    wire = b"".join(line + (b"\r\n" if c else b"\n") for line, c in zip(lines, crlf, strict=False))
    assert decode(DelimitedFormat.lines(), split(wire, points)) == lines
    assert decode_one_by_one(DelimitedFormat.lines(), wire) == lines


@given(st.lists(line_text, max_size=20), cuts)
def test_encoder_and_decoder_agree(lines: list[bytes], points: list[int]) -> None:
    for fmt in (DelimitedFormat.lines(), DelimitedFormat.crlf(), parse_framing("delim:0x00")):
        wire = fmt.encoder().encode_many(lines)
        assert decode(fmt, split(wire, points)) == lines


def test_crlf_only_splits_on_crlf() -> None:
    assert decode(DelimitedFormat.crlf(), [b"a\nb\r\nc\r\n"]) == [b"a\nb", b"c"]


@given(cuts)
def test_several_delimiters_end_at_the_earliest(points: list[int]) -> None:
    fmt = DelimitedFormat((b"\x00", b"\r\n"))
    wire = b"one\x00two\r\nthree\x00"
    assert decode(fmt, split(wire, points)) == [b"one", b"two", b"three"]


@given(cuts)
def test_a_delimiter_split_across_chunks_is_found(points: list[int]) -> None:
    fmt = DelimitedFormat((b"--END--",))
    wire = b"alpha--END--beta--END--"
    assert decode(fmt, split(wire, points)) == [b"alpha", b"beta"]


def test_keep_delimiter() -> None:
    fmt = parse_framing("lines:keep")
    assert decode(fmt, [b"a\r\nb\n"]) == [b"a\r\n", b"b\n"]


def test_last_unterminated_line_is_an_error_or_returned() -> None:
    with pytest.raises(IncompleteFrame, match="3 bytes without a delimiter"):
        decode(DelimitedFormat.lines(), [b"ok\nabc"])
    assert decode(parse_framing("lines:eof=return"), [b"ok\nabc"]) == [b"ok", b"abc"]
    assert decode(parse_framing("lines:eof=return"), [b"ok\n"]) == [b"ok"]


@given(cuts)
def test_the_limit_is_checked_while_scanning(points: list[int]) -> None:
    fmt = DelimitedFormat.lines(max_frame_size=8)
    decoder = fmt.decoder()
    refused = False
    for chunk in split(b"x" * 100, points):
        decoder.receive_data(chunk)
        try:
            decoder.frames()
        except FrameTooLarge:
            refused = True
            break
        assert decoder.buffered <= 8 + 1 + 4096  # never more than one chunk past the limit
    assert refused


def test_a_line_of_exactly_the_limit_passes_however_split() -> None:
    fmt = DelimitedFormat.crlf(max_frame_size=4)
    wire = b"abcd\r\n"
    for i in range(1, len(wire)):
        assert decode(fmt, [wire[:i], wire[i:]]) == [b"abcd"]
    with pytest.raises(FrameTooLarge):
        decode(fmt, [b"abcde\r\n"])


@given(st.lists(st.integers(0, 12), max_size=15), cuts)
def test_discard_mode_skips_long_lines_and_resynchronises(
    sizes: list[int], points: list[int]
) -> None:
    fmt = parse_framing("lines:max=5,discard")
    lines = [bytes([97 + i % 26]) * n for i, n in enumerate(sizes)]
    wire = b"".join(line + b"\n" for line in lines)
    decoder = fmt.decoder()
    got: list[bytes] = []
    for chunk in split(wire, points):
        decoder.receive_data(chunk)
        got.extend(decoder.frames())
        assert decoder.buffered <= 5 + 4096
    decoder.receive_data(b"")
    got.extend(decoder.frames())
    assert got == [line for line in lines if len(line) <= 5]
    assert decoder.skipped_frames == sum(1 for n in sizes if n > 5)
    assert decoder.skipped_bytes == sum(n + 1 for n in sizes if n > 5)


def test_scanning_is_linear_for_a_long_line_fed_a_byte_at_a_time() -> None:
    """Each byte is searched once: count what find() is asked to look at."""
    fmt = DelimitedFormat.lines(max_frame_size=1 << 20)
    decoder = fmt.decoder()
    scanned = 0

    class Counting(bytearray):
        def find(self, sub: object, start: int = 0, *args: object) -> int:  # type: ignore[override]
            nonlocal scanned
            scanned += len(self) - start
            return super().find(sub, start, *args)  # type: ignore[arg-type]

        def rfind(self, sub: object, start: int = 0, *args: object) -> int:  # type: ignore[override]
            nonlocal scanned
            scanned += len(self) - start
            return super().rfind(sub, start, *args)  # type: ignore[arg-type]

    decoder._buf = Counting()
    n = 20_000
    for _ in range(n):
        decoder.receive_data(b"x")
        assert decoder.frames() == []
    decoder.receive_data(b"\n")
    assert decoder.frames() == [b"x" * n]
    assert scanned <= n + 10  # once per byte, not once per pass


def test_encoder_refuses_a_payload_holding_the_delimiter() -> None:
    with pytest.raises(LocalProtocolError, match="contains the delimiter"):
        DelimitedFormat.lines().encoder().encode(b"a\nb")
    with pytest.raises(LocalProtocolError, match="ends with"):
        DelimitedFormat.lines().encoder().encode(b"a\r")
    with pytest.raises(FrameTooLarge):
        DelimitedFormat.lines(max_frame_size=2).encoder().encode(b"abc")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delimiters": ()}, "non-empty byte strings"),
        ({"delimiters": (b"",)}, "non-empty byte strings"),
        ({"delimiters": (b"a", b"a")}, "differ"),
        ({"max_frame_size": -1}, "max_frame_size"),
        ({"at_eof": "maybe"}, "at_eof"),
        ({"send_delimiter": b"x"}, "send_delimiter"),
    ],
)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidFormat, match=match):
        DelimitedFormat(**kwargs)  # type: ignore[arg-type]


@given(
    st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=15),
    st.integers(0, 10),
    st.booleans(),
    cuts,
)
def test_batches_agree_with_a_line_by_line_reference(
    lines: list[bytes], limit: int, keep: bool, points: list[int]
) -> None:
    """Whatever the chunking, the batch path gives what a line-at-a-time reader gives:
    the lines before the first one over the limit, then FrameTooLarge."""
    fmt = DelimitedFormat.lines(max_frame_size=limit, keep_delimiter=keep)
    wire = b"".join(line + b"\n" for line in lines)
    expected: list[bytes] = []
    too_long = False
    for line in lines:
        body = line[:-1] if line.endswith(b"\r") else line
        if len(body) > limit:
            too_long = True
            break
        expected.append(line + b"\n" if keep else body)
    decoder = fmt.decoder()
    got: list[bytes] = []
    refused = False
    try:
        for chunk in [*split(wire, points), b""]:
            decoder.receive_data(chunk)
            got.extend(decoder.frames())
        got.extend(decoder.frames())
    except FrameTooLarge:
        refused = True
    assert got == expected
    assert refused == too_long


def test_a_cr_waiting_for_its_lf_does_not_count_against_the_limit() -> None:
    """Found by the reference test: b"abc\r" then b"\n" is a 3-byte line, within max 3."""
    fmt = DelimitedFormat.lines(max_frame_size=3)
    assert decode(fmt, [b"abc\r", b"\n"]) == [b"abc"]
    assert decode(DelimitedFormat.lines(max_frame_size=0), [b"\r", b"\n"]) == [b""]


@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=30),
    st.integers(0, 45),
    st.sampled_from([b"\n", b"\r\n", b"--"]),
)
def test_the_hop_check_never_passes_a_frame_over_the_limit(
    sizes: list[int], limit: int, delim: bytes
) -> None:
    """The batch path's quick check may say "maybe not", never "yes" wrongly."""
    from framekit.codec._delimited import _all_within

    chunk = b"".join(b"x" * n + delim for n in sizes)
    if _all_within(chunk, delim, limit):
        assert max(sizes) <= limit
    if max(sizes) <= limit:
        assert _all_within(chunk, delim, limit)
