"""A Twisted peer for the interop tests, run as a subprocess (never in the test process).

    python twisted_peer.py MODE server
        listens on 127.0.0.1, port 0; prints "PORT n" first, then answers every message
        it receives with the message reversed, in the same framing, until killed. When a
        connection ends it prints "READS r FRAMES f": how many reads (``dataReceived``
        calls) brought how many messages.
    python twisted_peer.py MODE client PORT ITEM...
        connects to 127.0.0.1:PORT, sends every ITEM at once (Twisted's own encoders, so
        they merge on the wire), prints "RECV KIND DESCRIPTION" for each reply, then
        "DONE" and exits 0 once it has as many replies as it sent items (or "LOST" and
        exits 3 if the connection ends first, "FAILED" and exits 2 if it cannot connect).

MODE is the Twisted receiver: ``int16`` / ``int32`` (``Int16StringReceiver``,
``Int32StringReceiver``), ``crlf`` (``LineReceiver``), ``lf`` (``LineReceiver`` with
``delimiter = b"\\n"``), ``netstring`` (``NetstringReceiver``), or ``raw``: a
``LineReceiver`` that reads a ``SIZE n`` line, takes exactly n bytes in raw mode
(``setRawMode``), then goes back to lines (``setLineMode(rest)``).

An ITEM is a payload: hex, ``gen:N`` (:func:`pattern`) or ``text:N`` (:func:`text`).
In ``raw`` mode it is ``line:PAYLOAD`` or ``block:PAYLOAD`` (a ``SIZE n`` line then n
raw bytes). Replies are described by :func:`describe`. The test module imports the
helpers here, so both sides build the same payloads.
"""

# Twisted's basic receivers (sendString, sendLine, setRawMode, ...) are unannotated.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import hashlib
import sys
from typing import Any

from twisted import logger
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.protocols.basic import (
    Int16StringReceiver,
    Int32StringReceiver,
    LineReceiver,
    NetstringReceiver,
)
from twisted.python.failure import Failure

#: Twisted's defaults (99,999 bytes for strings, 16 KiB for lines) would refuse the
#: large payloads; every receiver but ``raw`` (whose bodies are not lines) gets this.
LARGE = 2**24


def reactor() -> Any:
    """The global reactor (installed on first import). ``Any``: its zope interfaces and
    the transports' need the mypy-zope plugin to type-check."""
    from twisted.internet import reactor

    return reactor


def pattern(n: int) -> bytes:
    """``n`` bytes counting 1 to 255 over and over: every byte value but 0, a period
    that is not a power of two, and (from 2 bytes on) never the same reversed."""
    return (bytes(range(1, 256)) * (n // 255 + 1))[:n]


def text(n: int) -> bytes:
    """``n`` bytes of :func:`pattern` with neither ``\\r`` nor ``\\n``: a valid line."""
    return pattern(n).replace(b"\r", b"R").replace(b"\n", b"N")


def decode(arg: str) -> bytes:
    """The payload an argument names: hex, ``gen:N`` or ``text:N``."""
    kind, _, size = arg.partition(":")
    if kind == "gen":
        return pattern(int(size))
    if kind == "text":
        return text(int(size))
    return bytes.fromhex(arg)


def describe(data: bytes) -> str:
    """``LENGTH:HEX`` for short payloads, ``LENGTH:sha256=...`` for long ones."""
    if len(data) <= 64:
        return f"{len(data)}:{data.hex()}"
    return f"{len(data)}:sha256={hashlib.sha256(data).hexdigest()}"


class Role:
    """What a connection does with the messages its receiver parses."""

    def __init__(self, items: list[tuple[str, bytes]] | None) -> None:
        self.items = items  # None: serve (answer each message reversed)
        self.replies = 0
        self.exit_code = 0

    def connected(self, proto: Peer) -> None:
        for kind, payload in self.items or ():
            proto.send_item(kind, payload)  # all in one reactor turn: they merge

    def received(self, proto: Peer, kind: str, payload: bytes) -> None:
        proto.frames += 1
        if self.items is None:
            proto.send_item(kind, payload[::-1])
            return
        print(f"RECV {kind} {describe(payload)}", flush=True)
        self.replies += 1
        if self.replies == len(self.items):
            print("DONE", flush=True)
            proto.stream().loseConnection()

    def lost(self, proto: Peer, reason: Failure) -> None:
        if self.items is None:
            print(f"READS {proto.reads} FRAMES {proto.frames}", flush=True)
            return
        if self.replies < len(self.items):
            print(f"LOST {getattr(reason.type, '__name__', '?')}", flush=True)
            self.exit_code = 3
        reactor().stop()


class Peer(Protocol):
    """The part of every mode's protocol that talks to its :class:`Role`."""

    role: Role
    reads = 0  # dataReceived calls from the transport
    frames = 0  # messages they held
    _reading = False

    def stream(self) -> Any:
        """The transport (an ``ITransport``)."""
        return self.transport

    def connectionMade(self) -> None:
        self.role.connected(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.role.lost(self, reason)

    def dataReceived(self, data: bytes) -> None:
        if self._reading:  # LineReceiver.setLineMode(rest) feeds the rest back in
            super().dataReceived(data)
            return
        self.reads += 1
        self._reading = True
        try:
            super().dataReceived(data)
        finally:
            self._reading = False

    def send_item(self, kind: str, payload: bytes) -> None:
        raise NotImplementedError


class Int16Peer(Peer, Int16StringReceiver):
    MAX_LENGTH = LARGE

    def stringReceived(self, string: bytes) -> None:
        self.role.received(self, "frame", string)

    def send_item(self, kind: str, payload: bytes) -> None:
        self.sendString(payload)


class Int32Peer(Peer, Int32StringReceiver):
    MAX_LENGTH = LARGE

    def stringReceived(self, string: bytes) -> None:
        self.role.received(self, "frame", string)

    def send_item(self, kind: str, payload: bytes) -> None:
        self.sendString(payload)


class NetstringPeer(Peer, NetstringReceiver):
    MAX_LENGTH = LARGE

    def stringReceived(self, string: bytes) -> None:
        self.role.received(self, "frame", string)

    def send_item(self, kind: str, payload: bytes) -> None:
        self.sendString(payload)


class CrlfPeer(Peer, LineReceiver):
    MAX_LENGTH = LARGE

    def lineReceived(self, line: bytes) -> None:
        self.role.received(self, "frame", line)

    def send_item(self, kind: str, payload: bytes) -> None:
        self.sendLine(payload)


class LfPeer(CrlfPeer):
    delimiter = b"\n"  # Twisted keeps a "\r" before it as part of the line


class RawPeer(Peer, LineReceiver):
    """Lines, and ``SIZE n`` lines each followed by n raw bytes. ``MAX_LENGTH`` stays at
    Twisted's 16 KiB: raw bodies are not lines, so longer ones must pass."""

    _need = 0
    _parts: list[bytes]
    _have = 0

    def lineReceived(self, line: bytes) -> None:
        if not line.startswith(b"SIZE "):
            self.role.received(self, "line", line)
            return
        need = int(line[5:])
        if need == 0:  # no raw bytes to wait for
            self.role.received(self, "block", b"")
            return
        self._need, self._parts, self._have = need, [], 0
        self.setRawMode()

    def rawDataReceived(self, data: bytes) -> None:
        missing = self._need - self._have
        if len(data) < missing:
            self._parts.append(data)
            self._have += len(data)
            return
        self._parts.append(data[:missing])
        body = b"".join(self._parts)
        self._parts = []
        self.role.received(self, "block", body)
        self.setLineMode(data[missing:])

    def send_item(self, kind: str, payload: bytes) -> None:
        if kind == "line":
            self.sendLine(payload)
        else:
            self.sendLine(b"SIZE %d" % len(payload))
            self.stream().write(payload)


PROTOCOLS: dict[str, type[Peer]] = {
    "int16": Int16Peer,
    "int32": Int32Peer,
    "crlf": CrlfPeer,
    "lf": LfPeer,
    "raw": RawPeer,
    "netstring": NetstringPeer,
}


def parse_items(mode: str, args: list[str]) -> list[tuple[str, bytes]]:
    if mode != "raw":
        return [("frame", decode(arg)) for arg in args]
    items = []
    for arg in args:
        kind, _, rest = arg.partition(":")
        if kind not in ("line", "block"):
            raise SystemExit(f"raw items are line:PAYLOAD or block:PAYLOAD, not {arg!r}")
        items.append((kind, decode(rest)))
    return items


class PeerFactory(ClientFactory):
    """Builds ``peer`` protocols sharing one :class:`Role` (server and client alike)."""

    def __init__(self, peer: type[Peer], role: Role) -> None:
        self.peer = peer
        self.role = role

    def buildProtocol(self, addr: Any) -> Peer:
        proto = self.peer()
        proto.factory = self
        proto.role = self.role
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        print(f"FAILED {reason.getErrorMessage()}", flush=True)
        self.role.exit_code = 2
        reactor().stop()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in PROTOCOLS or argv[1] not in ("server", "client"):
        print(__doc__, file=sys.stderr)
        return 64
    mode, role_name = argv[0], argv[1]
    # Only warnings and errors (an exception in a callback, say) reach stderr, which the
    # tests require to be empty.
    log: Any = logger  # zope interfaces again
    log.globalLogBeginner.beginLoggingTo(
        [
            log.FilteringLogObserver(
                log.textFileLogObserver(sys.stderr),
                [log.LogLevelFilterPredicate(defaultLogLevel=log.LogLevel.warn)],
            )
        ],
        redirectStandardIO=False,
    )
    if role_name == "server":
        role = Role(None)
        port = reactor().listenTCP(0, PeerFactory(PROTOCOLS[mode], role), interface="127.0.0.1")
        print(f"PORT {port.getHost().port}", flush=True)
    else:
        role = Role(parse_items(mode, argv[3:]))
        reactor().connectTCP("127.0.0.1", int(argv[2]), PeerFactory(PROTOCOLS[mode], role))
    reactor().run()
    return role.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
