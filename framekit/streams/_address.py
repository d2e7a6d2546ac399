"""Parsing ``HOST[:PORT]`` the way people type it (``[::1]:9999`` for IPv6)."""

from __future__ import annotations

__all__ = ["format_address", "parse_address"]


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
