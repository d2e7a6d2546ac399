"""Parsing ``HOST[:PORT]`` the way people type it (``[::1]:9999`` for IPv6)."""

from __future__ import annotations

import ipaddress

__all__ = ["format_address", "parse_address", "require_loopback"]


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::1]:9999``): what
    :func:`parse_address` reads back."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """Split ``HOST[:PORT]``; IPv6 hosts go in brackets when a port follows.

    ``"example.org"`` -> (``"example.org"``, default); ``"10.0.0.1:22"``;
    ``"[::1]:9999"`` -> (``"::1"``, 9999); a bare ``"::1"`` is a host without a port.

    Raises:
        ValueError: empty host, malformed brackets, or a port that is not 0-65535.
    """
    text = text.strip()
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"address {text!r} has '[' without ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"address {text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ValueError(f"address {text!r} has no host")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"address {text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def require_loopback(host: str) -> None:
    """Refuse anything but a loopback address given as an address (no name lookup): for
    lessons that must never leave this machine.

    Raises:
        ValueError: ``host`` is not ``127.0.0.0/8`` or ``::1``, or not an address.
    """
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"host must be a loopback address such as 127.0.0.1 or ::1, not {host!r}: "
            "the lesson never leaves this machine"
        )
