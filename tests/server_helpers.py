"""Starting a framekit server inside a test's nursery."""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

import framekit


async def start_server(nursery: trio.Nursery, **options: Any) -> framekit.ServerAddresses:
    """Start ``framekit.serve`` on free loopback ports; returns the bound addresses."""
    options.setdefault("tcp_port", 0)
    options.setdefault("udp_port", 0)
    config = framekit.ServerConfig(**options)
    addresses: framekit.ServerAddresses = await nursery.start(partial(framekit.serve, config))
    return addresses


async def connect(addresses: framekit.ServerAddresses, **kwargs: Any) -> framekit.Client:
    host, port = addresses.tcp[0]
    return await framekit.Client.connect(host, port, **kwargs)
