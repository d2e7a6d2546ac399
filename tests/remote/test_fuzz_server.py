"""Fuzzing the command server: the pure rules it applies to every header, and a live
server fed random and mutated messages from many connections at once.

While the storm runs, a good client keeps running commands and checking every answer.
The server must keep answering it, reply to the fuzzers only with well-formed messages
and documented error codes, run nothing before authentication, log no error and nothing
``internal``, and still serve a new client afterwards.

The inputs come from ``random.Random`` seeded with ``FRAMEKIT_FUZZ_SEED`` (a fixed seed
when unset, so the default run is repeatable); every failure names its seed.
``FRAMEKIT_FUZZ_ROUNDS`` (set by ``scripts/fuzz``) multiplies the connections.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import struct
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import framekit
from framekit import MessageEncoder, MessageStream, ProtocolError
from framekit.remote._log_text import show
from framekit.remote._protocol import (
    BadRequest,
    PingRequest,
    RunRequest,
    check_mac,
    compute_mac,
    error_header,
    parse_hello,
    parse_request,
    reply_id,
    validate_name,
)

from ..server_helpers import connect, start_server

SEED = int(os.environ.get("FRAMEKIT_FUZZ_SEED") or 20240601)
ROUNDS = max(1, int(os.environ.get("FRAMEKIT_FUZZ_ROUNDS") or 1))
#: Fuzzing connections open at once, and how many connections each opens in turn.
CONCURRENT = 20
EPISODES = 25 * ROUNDS
TOKEN = "fuzz-token"
#: Programs the server may run: harmless whatever arguments a mutation gives them.
ALLOWED = frozenset({"echo", "true", "cat", "sleep"})
ERROR_CODES = {"bad_request", "auth_failed", "not_allowed", "timeout", "too_large", "busy"}
ERROR_CODES |= {"not_found"}  # never "internal"
REPLY_TYPES = {"hello", "ready", "error", "output", "exit", "stored", "file", "pong"}
TEMP_PREFIX = ".framekit-upload-"


# -- the rules, pure ------------------------------------------------------------------

huge_ints = st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**400, -(10**400), 10**4299])
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    st.floats(allow_nan=False),  # JSON gives infinities (1e400), never NaN
    st.text(max_size=10),
    st.sampled_from(["\ud800", "a\udfffb", "x" * 300, "a\x00b", "..", "/etc/passwd", ""]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


#: One valid request of each kind: the fuzzed headers start from these, so a broken
#: field is met by the checks behind the ones it passes.
VALID_REQUESTS: list[dict[str, Any]] = [
    {"type": "run", "id": 1, "argv": ["echo", "hi"], "timeout": 5},
    {"type": "run", "id": "a", "shell": "ls -la"},
    {"type": "ping", "id": 2},
    {"type": "put", "id": 3, "name": "d/a.txt", "sha256": "ab" * 32},
    {"type": "get", "id": None, "name": "a.txt"},
    {"type": "cancel", "id": 4},
    {"type": "auth", "mac": "ab" * 32},
    {"type": "hello", "protocol": 1, "auth": "hmac-sha256", "nonce": "cd" * 32},
    {"type": "error", "code": "busy", "message": "full"},
]
#: Values the rules must refuse politely wherever they appear.
hostile_values = st.one_of(
    json_values,
    st.sampled_from([10**400, -(10**400), 2**1024, float("inf"), -0.0, 0, -1, 1e-320]),
    st.sampled_from(["", "\ud800", "..", "/abs", "a//b", "a\x00", ".framekit-upload-x"]),
    st.sampled_from([[], [""], ["\ud800"], ["echo", 1], ["a\x00"], "x" * 201, "é" * 200]),
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request (or greeting) with a few fields removed or replaced by hostile
    values; ``size`` is what the decoder lets through, a non-negative integer."""
    fields = dict(draw(st.sampled_from(VALID_REQUESTS)))
    keys = [*fields, "id", "argv", "shell", "timeout", "name", "sha256", "mac", "nonce"]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(keys))
        if draw(st.integers(0, 4)) == 0:
            fields.pop(key, None)
        else:
            fields[key] = draw(hostile_values)
    fields["size"] = draw(st.integers(0, 10) | st.sampled_from([2**64, 10**400]))
    return fields


@given(fields=headers())
def test_request_rules_refuse_only_with_bad_request(fields: dict[str, Any]) -> None:
    # What the server calls on every header: any other exception ends the connection as
    # an `internal` error, logged at ERROR.
    rid = reply_id(fields)
    show(rid)
    for value in fields.values():
        show(value)
    try:
        request = parse_request(fields, max_timeout=60.0)
    except BadRequest as exc:
        # the refusal travels back in an error reply: it must be encodable
        MessageEncoder().header(error_header(exc.code, str(exc), rid), size=0)
    else:
        assert isinstance(rid, int | str | None)
        if isinstance(request, RunRequest):
            assert request.timeout is None or 0 < request.timeout <= 60.0
            assert request.argv is not None or request.shell is not None
        elif not isinstance(request, PingRequest):
            assert validate_name(request.name) == request.name
    assert isinstance(check_mac(TOKEN, "ab" * 32, fields.get("mac")), bool)
    try:
        validate_name(fields.get("name"))
    except BadRequest:
        pass
    try:
        parse_hello(fields)  # the client's side: a hostile server's greeting
    except (framekit.RemoteError, framekit.RemoteProtocolError):
        pass


def test_a_huge_integer_timeout_is_a_bad_request() -> None:
    # JSON integers have up to 4300 digits; a float holds about 308.
    with pytest.raises(BadRequest, match="timeout"):
        parse_request({"type": "run", "argv": ["true"], "timeout": 10**400}, max_timeout=60)


# -- the live server --------------------------------------------------------------------


@dataclass
class Stats:
    """What the storm did, for the summary line and the assertions."""

    connections: int = 0
    messages: int = 0
    bytes_sent: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    good_requests: int = 0
    endings: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, hostile ones often: huge numbers, infinities, lone surrogates."""
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and roll < 0.25:
        return {random_text(rng): random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            rng.randint(-(2**70), 2**70),
            10 ** rng.randint(19, 400),
            -(10**30),
            1.5,
            -0.0,
            1e308,
            float("inf"),
            rng.choice([float("nan"), 2.5]),
            random_text(rng),
            "\ud800",
            "x" * rng.choice([200, 201, 5000]),
            "../../etc/passwd",
            "a\x00b",
            "ab" * 32,
        ]
    )


def hostile_number(rng: random.Random) -> Any:
    """Numbers at the edges: beyond a float, beyond 64 bits, tiny, negative, not finite."""
    huge = 10 ** rng.randint(300, 4000)
    return rng.choice([huge, -(10**400), 10**4299, 2**63, 2**64, 1e308, 1e-320, float("inf")])


def random_text(rng: random.Random) -> str:
    alphabet = "abc/.\\ \n\x00\x1b\u202eé粘\ud800"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))


def frame(rng: random.Random, fields: Any, *, exact: bool = True) -> bytes:
    """``fields`` as a header frame (4-byte big-endian length, then JSON that may hold
    NaN, Infinity or lone surrogates); ``exact=False`` sometimes gets the length wrong."""
    raw = json.dumps(fields, ensure_ascii=rng.random() < 0.7).encode("utf-8", "surrogatepass")
    length = len(raw) if exact or rng.random() < 0.7 else len(raw) + rng.randint(-3, 3)
    return struct.pack(">I", max(length, 0)) + raw


def real_request(rng: random.Random, prefix: str) -> tuple[dict[str, Any], bytes]:
    """A request the protocol allows (possibly refused, e.g. a program not allowed)."""
    rid: Any = rng.choice([rng.randint(0, 99), f"r{rng.randint(0, 99)}", None])
    name = f"{prefix}{rng.randint(0, 4)}.bin"
    kind = rng.choice(["echo", "cat", "sleep", "other", "ping", "put", "get", "cancel"])
    if kind == "echo":
        return {"type": "run", "id": rid, "argv": ["echo", random_text(rng)]}, b""
    if kind == "cat":
        return {"type": "run", "id": rid, "argv": ["cat"]}, rng.randbytes(rng.randint(0, 3000))
    if kind == "sleep":  # long enough for the server to watch the connection meanwhile
        return {"type": "run", "id": rid, "argv": ["sleep", "0.2"], "timeout": 1}, b""
    if kind == "other":
        program = rng.choice([["ls"], ["/bin/echo", "x"], ["./echo"]])
        return {"type": "run", "id": rid, **rng.choice([{"argv": program}, {"shell": "ls"}])}, b""
    if kind == "ping":
        return {"type": "ping", "id": rid}, b""
    if kind == "put":
        body = rng.randbytes(rng.randint(0, 2000))
        return {"type": "put", "id": rid, "name": name, "sha256": sha(body)}, body
    if kind == "get":
        return {"type": "get", "id": rid, "name": name}, b""
    return {"type": "cancel", "id": rid}, b""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(buf))
        op = rng.choice(["flip", "insert", "delete", "truncate"])
        if op == "flip" and i < len(buf):
            buf[i] ^= 1 << rng.randint(0, 7)
        elif op == "insert":
            buf[i:i] = rng.randbytes(rng.randint(1, 6))
        elif op == "delete":
            del buf[i : i + rng.randint(1, 6)]
        elif op == "truncate":
            del buf[i:]
    return bytes(buf)


def hostile_message(rng: random.Random, prefix: str) -> bytes:
    """One message, real or broken in one of many ways."""
    fields, body = real_request(rng, prefix)
    fields["size"] = len(body)
    roll = rng.random()
    if roll < 0.25:  # a real request
        return frame(rng, fields) + body
    if roll < 0.55:  # wrong types and values for its fields
        for _ in range(rng.randint(1, 3)):
            # size and sha256 are checked by the framing (a bad one ends the connection);
            # the others by the request rules (a bad one is refused, the connection kept)
            keys = [*fields, "sha256", "id", "timeout", "argv", "name", "shell"]
            key = rng.choice([k for k in keys if k not in ("size", "sha256") or rng.random() < 0.2])
            if rng.random() < 0.2:
                fields.pop(key, None)
            elif key in ("id", "timeout", "size") and rng.random() < 0.5:
                fields[key] = hostile_number(rng)
            else:
                fields[key] = random_json(rng)
        return frame(rng, fields) + body
    if roll < 0.65:  # a body shorter or longer than its size, or a huge size
        fields["size"] = rng.choice(
            [len(body) + rng.randint(1, 50), max(len(body) - 5, 0), 2**31, 10**12, 3 * 2**20]
        )
        return frame(rng, fields, exact=False) + body[: rng.randint(0, len(body))]
    if roll < 0.78:  # the bytes of a real message, mutated
        return mutate_bytes(rng, frame(rng, fields) + body)
    if roll < 0.87:  # any JSON value as the header
        return frame(rng, random_json(rng), exact=False) + rng.randbytes(rng.randint(0, 20))
    if roll < 0.9:  # over max_header_size, or a 4 GiB length
        return rng.choice([frame(rng, {"size": 0, "pad": "p" * 5000}), b"\xff\xff\xff\xff"])
    return rng.randbytes(rng.randint(1, 64))


def auth_answer(rng: random.Random, nonce: str | None) -> bytes:
    """A wrong answer to the challenge (or no answer at all, but something else)."""
    good = compute_mac(TOKEN, nonce) if nonce else "0" * 64
    mac = rng.choice(
        [good.upper(), good[:-1] + "0", None, 0, [good], "\ud800" * 64, "", random_text(rng)]
    )
    if mac == good:
        mac = None
    answer = rng.choice([{"type": "auth", "mac": mac}, {"type": "run", "mac": good}])
    return frame(rng, {**answer, "size": 0} if rng.random() < 0.9 else answer)


async def read_replies(messages: MessageStream, stats: Stats, what: str) -> None:
    """Every reply until the server hangs up; each must be well-formed and documented."""
    while True:
        try:
            reply = await messages.receive_message()
        except (trio.EndOfChannel, trio.BrokenResourceError):
            return
        except ProtocolError as exc:
            stats.problems.append(f"{what}: malformed reply from the server: {exc!r}")
            return
        fields = reply.header.fields
        stats.replies[str(fields.get("type"))] += 1
        if fields.get("type") not in REPLY_TYPES:
            stats.problems.append(f"{what}: unknown reply type {fields!r}")
        if fields.get("type") == "error":
            stats.codes[str(fields.get("code"))] += 1
            if fields.get("code") not in ERROR_CODES or not isinstance(fields.get("message"), str):
                stats.problems.append(f"{what}: undocumented error {fields!r}")


async def send_in_pieces(rng: random.Random, stream: trio.SocketStream, data: bytes) -> bool:
    """Send ``data`` split at random points; False if the server hung up first."""
    cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 4)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    try:
        for piece in filter(None, pieces):
            await stream.send_all(piece)
            await trio.lowlevel.checkpoint()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


async def episode(
    rng: random.Random, addrs: framekit.ServerAddresses, stats: Stats, what: str
) -> None:
    """One fuzzing connection, from connect to close."""
    kind = rng.choices(["auth, then garbage", "garbage first", "wrong answer"], [6, 3, 2])[0]
    ending = rng.choices(["drain", "reset", "close", "stall"], [14, 3, 2, 1])[0]
    stream = await trio.open_tcp_stream(*addrs.tcp[0])
    stats.connections += 1
    messages = MessageStream(stream)
    try:
        nonce = None
        if kind != "garbage first" or rng.random() < 0.5:
            try:
                hello = await messages.receive_message()
            except (trio.EndOfChannel, trio.BrokenResourceError):
                return  # pushed out by newer connections before it was greeted
            if hello.header.get("type") != "hello":  # evicted while authenticating: busy
                await read_replies(messages, stats, what)
                return
            nonce = hello.header.get("nonce")
        data = b""
        if kind == "auth, then garbage":
            data = frame(rng, {"type": "auth", "mac": compute_mac(TOKEN, str(nonce)), "size": 0})
        elif kind == "wrong answer":
            data = auth_answer(rng, nonce)
        prefix = "preauth-" if kind != "auth, then garbage" else "f"
        if rng.random() < 0.3:  # a real request first: the garbage then meets a used connection
            fields, body = real_request(rng, prefix)
            data += frame(rng, {**fields, "size": len(body)}) + body
            stats.messages += 1
        count = rng.randint(1, 4)
        for _ in range(count):
            data += hostile_message(rng, prefix)
        stats.messages += count
        stats.bytes_sent += len(data)
        stats.endings[ending] += 1
        if not await send_in_pieces(rng, stream, data):
            ending = "drain"
        if ending == "reset":  # RST: SO_LINGER with a zero timeout, then close
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif ending == "drain":  # half-close: the server sees the end, answers, hangs up
            try:
                await stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            await read_replies(messages, stats, what)
        elif ending == "stall":  # keep the connection open: the server's timeouts end it
            await read_replies(messages, stats, what)
    finally:
        await stream.aclose()


async def good_client(
    addrs: framekit.ServerAddresses, storm_over: trio.Event, stats: Stats, local: Path
) -> None:
    """Run `echo n` (and ping, put, get) until the storm is over, checking each answer."""
    async with await connect(addrs, token=TOKEN) as client:
        n = 0
        while not storm_over.is_set() or n < 3:
            with trio.fail_after(10):
                result = await client.run(["echo", f"good {n}"])
                assert result.ok and result.stdout == f"good {n}\n".encode(), result
                if n % 5 == 0:
                    await client.ping()
                if n % 10 == 0:
                    await transfer(client, local, f"good/{n}.bin", n)
            stats.good_requests += 1
            n += 1


async def transfer(client: framekit.Client, local: Path, name: str, n: int) -> None:
    """Upload then download a small file; both must be intact."""
    payload = f"payload {n}\n".encode() * 50
    local.write_bytes(payload)
    stored = await client.put(local, name)
    assert (stored.size, stored.sha256) == (len(payload), sha(payload))
    local.unlink()
    got = await client.get(name, local)
    assert got.sha256 == sha(payload) and local.read_bytes() == payload


def cause(record: logging.LogRecord) -> str:
    """Where a logged exception was raised, and what it says."""
    if not record.exc_info or record.exc_info[1] is None:
        return ""
    exc = record.exc_info[1]
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f" ({type(exc).__name__}: {exc} at {Path(frame.filename).name}:{frame.lineno})"


async def test_server_survives_a_storm_of_fuzzed_connections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    stats = Stats()
    note = f"FRAMEKIT_FUZZ_SEED={SEED} FRAMEKIT_FUZZ_ROUNDS={ROUNDS}"
    start = trio.current_time()
    try:
        async with trio.open_nursery() as server:
            addrs = await start_server(
                server,
                udp_port=None,
                token=TOKEN,
                upload_dir=uploads,
                allow=ALLOWED,
                idle_timeout=1.0,
                handshake_timeout=1.0,
                auth_failure_delay=0,
                max_auth_failures=10**9,  # the final client connects from the same address
                max_unauthenticated=16,  # fewer than the fuzzers: some get pushed out
                command_timeout=3,
                max_output=64 * 1024,
                max_stdin=64 * 1024,
                max_upload=64 * 1024,
                max_header_size=4096,
                shutdown_grace=1,
            )
            storm_over = trio.Event()
            async with trio.open_nursery() as clients:
                clients.start_soon(good_client, addrs, storm_over, stats, tmp_path / "good.bin")

                async def fuzzer(index: int) -> None:
                    rng = random.Random(f"{SEED}:{index}")
                    for n in range(EPISODES):
                        with trio.fail_after(20):  # every server timeout is far shorter
                            await episode(rng, addrs, stats, f"fuzzer {index} episode {n}")

                async with trio.open_nursery() as storm:
                    for index in range(CONCURRENT):
                        storm.start_soon(fuzzer, index)
                storm_over.set()
            during_storm = stats.good_requests
            with trio.fail_after(10):  # the server still takes a new client
                async with await connect(addrs, token=TOKEN) as client:
                    await client.ping()
                    assert (await client.run(["echo", "after"])).stdout == b"after\n"
                    await transfer(client, tmp_path / "after.bin", "after.bin", -1)
            server.cancel_scope.cancel()
    except BaseException as exc:
        exc.add_note(f"server fuzz: {note}")
        raise
    print(
        f"server fuzz: {note}: {stats.connections} connections, {stats.messages} messages "
        f"({stats.bytes_sent} bytes); replies {dict(stats.replies)}; {during_storm} good requests "
        f"answered during the storm, in {trio.current_time() - start:.1f} s; "
        f"endings {dict(stats.endings)}; error codes {dict(stats.codes)}"
    )
    bad_logs = [
        f"{r.levelname} {r.getMessage()}{cause(r)}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info or "internal" in r.getMessage()
    ]
    assert not bad_logs, f"{note}: the server logged errors: {sorted(set(bad_logs))[:10]}"
    assert not stats.problems, f"{note}: {stats.problems[:10]}"
    assert during_storm >= 3, f"{note}: the good client was starved"
    leftovers = [p.name for p in uploads.rglob("*") if p.name.startswith(("preauth-", TEMP_PREFIX))]
    assert not leftovers, f"{note}: stored before auth, or a temporary file left: {leftovers}"
