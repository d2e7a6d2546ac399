from __future__ import annotations

import os
import socket
import ssl

import pytest
import trustme
from hypothesis import HealthCheck, settings


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAS_IPV6 = _has_ipv6_loopback()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# Hypothesis profiles: HYPOTHESIS_PROFILE=fuzz (what scripts/fuzz sets) runs the
# property tests with many more examples. Unset, Hypothesis's defaults, without its
# timing checks: on a loaded 2-core machine generating a few JSON headers once took
# 2.6 s and failed HealthCheck.too_slow, though nothing the tests assert is about time
# (speed is measured in bench/).
settings.register_profile(
    "checks",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FRAMEKIT_FUZZ_EXAMPLES", "200000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,  # a failure prints the line that reproduces it
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "checks"))
