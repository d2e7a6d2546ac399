"""Addresses as people type them, and the loopback rule of the lessons."""

from __future__ import annotations

import pytest

from framekit.streams._address import format_address, parse_address, require_loopback


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.org", ("example.org", 9999)),
        ("10.0.0.1:22", ("10.0.0.1", 22)),
        ("[::1]:7", ("::1", 7)),
        ("::1", ("::1", 9999)),
    ],
)
def test_addresses_parse_and_format_back(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, 9999) == expected
    assert parse_address(format_address(*expected), 0) == expected


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_addresses_pass(host: str) -> None:
    require_loopback(host)


@pytest.mark.parametrize("host", ["192.0.2.1", "localhost", "", "::"])
def test_anything_else_is_refused_with_the_reason(host: str) -> None:
    with pytest.raises(ValueError, match="loopback") as info:
        require_loopback(host)
    assert str(info.value) == (
        f"host must be a loopback address such as 127.0.0.1 or ::1, not {host!r}: "
        "the lesson never leaves this machine"
    )
