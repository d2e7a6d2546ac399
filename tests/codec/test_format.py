from __future__ import annotations

import struct
import sys

import pytest

import framekit
from framekit import FrameFormat, InvalidFormat


def test_default_is_network_order_unsigned_32_bit() -> None:
    fmt = framekit.DEFAULT_FORMAT
    assert (fmt.width, fmt.byteorder, fmt.signed) == (4, "big", False)
    assert fmt.max_frame_size == 16 * 1024 * 1024
    assert framekit.FrameEncoder().encode(b"hello") == b"\x00\x00\x00\x05hello"


def test_tutorial_preset_matches_struct_i() -> None:
    fmt = FrameFormat.tutorial()
    assert fmt.width == 4 and fmt.signed and fmt.byteorder == sys.byteorder
    assert framekit.FrameEncoder(fmt).prefix(1000) == struct.pack("i", 1000)
    assert fmt == framekit.TUTORIAL_FORMAT


@pytest.mark.parametrize(
    ("width", "signed", "field_max"),
    [(1, False, 255), (1, True, 127), (2, False, 65535), (8, True, 2**63 - 1)],
)
def test_field_max(width: int, signed: bool, field_max: int) -> None:
    fmt = FrameFormat(width=width, signed=signed)
    assert fmt.field_max == field_max
    assert fmt.max_frame_size == min(field_max, framekit.DEFAULT_MAX_FRAME_SIZE)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 9}, "width must be 1 to 8 bytes, not 9"),
        ({"width": 0}, "width must be 1 to 8 bytes, not 0"),
        ({"byteorder": "middle"}, "byteorder must be 'big', 'little' or 'native'"),
        ({"signed": 1}, "signed must be True or False"),
        ({"width": 1, "max_frame_size": 256}, "from 0 to 255"),
        ({"max_frame_size": -1}, "max_frame_size must be an integer"),
        ({"max_frame_size": True}, "max_frame_size must be an integer"),
        ({"max_frame_size": 1.5}, "max_frame_size must be an integer"),
    ],
)
def test_bad_options_rejected_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidFormat, match=match):
        FrameFormat(**kwargs)  # type: ignore[arg-type]


def test_invalid_format_is_a_value_error_and_framekit_error() -> None:
    assert issubclass(InvalidFormat, ValueError)
    assert issubclass(InvalidFormat, framekit.FramekitError)
