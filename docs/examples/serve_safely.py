"""Serve commands safely: a token, TLS, an allowlist and limits.

The server runs in this process and listens on 127.0.0.1 (an example should not open a
port to the network), but it is configured as a server on a public address would be.
The certificates come from trustme, a throwaway test CA; in production use your real
certificate files with framekit.server_ssl_context() and framekit.client_ssl_context().
"""

from __future__ import annotations

import functools
import ssl

import trio
import trustme

import framekit

TOKEN = "a long random secret"  # in production: FRAMEKIT_TOKEN, e.g. `openssl rand -hex 32`


async def main() -> None:
    # Beyond loopback without a token is refused before anything is bound.
    try:
        await framekit.serve(framekit.ServerConfig(host="0.0.0.0"))
    except framekit.InsecureBindError as exc:
        print("refused:", str(exc).split(":")[0])

    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    config = framekit.ServerConfig(
        host="127.0.0.1",  # "0.0.0.0" or a public address in production
        tcp_port=0,  # any free port (the default is 9999)
        udp_port=None,  # no UDP echo: it has no authentication
        token=TOKEN,
        ssl_context=server_tls,
        allow=frozenset({"echo", "sleep"}),  # only these programs, never a shell
        command_timeout=5,
        max_output=16 * 1024,
        max_connections=16,
        max_processes=4,
        auth_failure_delay=0.1,  # 1 s by default; shortened so the example runs fast
    )
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(framekit.serve, config)
        host, port = addresses.tcp[0]
        connect = functools.partial(framekit.Client.connect, host, port, ssl_context=client_tls)

        async with await connect(token=TOKEN) as client:
            assert client.server_info["auth"] == "hmac-sha256"
            result = await client.run(["echo", "hello"])
            assert result.ok and result.stdout == b"hello\n"

            # Outside the allowlist, and shell strings: refused, the connection stays up.
            codes = []
            for request in [{"argv": ["cat", "/etc/passwd"]}, {"shell": "echo hi; id"}]:
                try:
                    await client.run(**request)
                except framekit.RemoteError as exc:
                    codes.append(exc.code)
            assert codes == ["not_allowed", "not_allowed"]

            # Limits: output beyond max_output is cut (and the command killed); a command
            # past its timeout is killed with its whole process group.
            result = await client.run(["echo", "x" * 50_000])
            assert result.truncated and len(result.stdout) == 16 * 1024
            result = await client.run(["sleep", "30"], timeout=0.2)
            assert result.status == "timeout" and result.exit_code == 124

        # A wrong token is refused after auth_failure_delay; the token never crosses the
        # wire (the client answers an HMAC challenge), so a listener learns nothing.
        try:
            await connect(token="guess")
        except framekit.AuthenticationError as exc:
            codes.append(exc.code)
        assert codes[-1] == "auth_failed"
        # A client that does not trust the server's certificate does not connect at all.
        try:
            await framekit.Client.connect(
                host, port, token=TOKEN, ssl_context=ssl.create_default_context()
            )
        except framekit.ConnectError:
            pass
        else:
            raise AssertionError("an untrusted certificate must be refused")
        nursery.cancel_scope.cancel()
    print("token, TLS, allowlist and limits all enforced")


trio.run(main)
