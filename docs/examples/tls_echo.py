"""TLS: the same framed echo, encrypted. The certificates come from trustme (a test CA)."""

from __future__ import annotations

import ssl
from functools import partial

import trio
import trustme

import framekit


async def echo(channel: framekit.FramedStream) -> None:
    async for message in channel:
        await channel.send(message)


async def main() -> None:
    # A throwaway certificate authority and a certificate for the loopback address.
    # In production the server loads its real certificate, and the client trusts the
    # system's CAs (ssl.create_default_context() with no changes).
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async with trio.open_nursery() as nursery:
        # nursery.start() passes positional arguments only: bind keywords with partial.
        serve = partial(framekit.serve_framed, ssl_context=server_context)
        [(host, port)] = await nursery.start(serve, echo, 0)
        # The certificate is checked against the host name (here the IP address) and
        # the handshake is done before open_framed_stream returns.
        channel = await framekit.open_framed_stream(host, port, ssl_context=client_context)
        async with channel:
            await channel.send(b"secret")
            assert await channel.receive() == b"secret"

        # A client that does not trust the server's CA fails to connect, clearly.
        try:
            await framekit.open_framed_stream(host, port, ssl_context=ssl.create_default_context())
        except framekit.ConnectError as exc:
            print(exc)  # TLS handshake with 127.0.0.1:...: [SSL: CERTIFICATE_VERIFY_FAILED] ...
        else:
            raise AssertionError("an untrusted certificate must be refused")
        nursery.cancel_scope.cancel()


trio.run(main)
