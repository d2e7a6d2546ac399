"""Fixtures for the stream wrappers' tests."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from ..helpers import TcpPair, TlsPair


@pytest.fixture
async def tcp_pair() -> AsyncIterator[TcpPair]:
    """Makes loopback TCP pairs, all closed at the end of the test. ``buffer`` shrinks
    the client's send buffer and the server's receive buffer: the kernel takes a
    little, then says EAGAIN."""
    made: list[trio.SocketStream] = []

    async def make(buffer: int | None = None) -> tuple[trio.SocketStream, trio.SocketStream]:
        [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        client = await trio.testing.open_stream_to_socket_listener(listener)
        server = await listener.accept()
        await listener.aclose()
        made.extend([client, server])
        if buffer is not None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        return client, server

    yield make
    for stream in made:
        await trio.aclose_forcefully(stream)


@pytest.fixture
def tls_pair(
    tcp_pair: TcpPair, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> TlsPair:
    """Makes TLS pairs over ``tcp_pair``'s connections (trustme's certificates)."""

    async def make() -> tuple[trio.SSLStream[trio.SocketStream], trio.SSLStream[trio.SocketStream]]:
        client, server = await tcp_pair()
        return (
            trio.SSLStream(client, client_ssl_context, server_hostname="localhost"),
            trio.SSLStream(server, server_ssl_context, server_side=True),
        )

    return make
