"""Building TLS contexts from files, for the server and the client."""

from __future__ import annotations

import os
import ssl

__all__ = ["client_ssl_context", "server_ssl_context"]


def server_ssl_context(
    certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str] | None = None
) -> ssl.SSLContext:
    """A server-side context (TLS 1.2+) with this certificate chain and key.

    Raises:
        OSError / ssl.SSLError: the files are missing or do not match.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def client_ssl_context(
    cafile: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> ssl.SSLContext:
    """A client context that verifies the server against ``cafile`` (or the system CAs).

    ``verify=False`` turns verification off: the connection is encrypted but anyone in
    the middle can impersonate the server. Only for testing.
    """
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
