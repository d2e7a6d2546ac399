"""Slowing token guessing per source address, across all of its connections."""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, final

import trio

__all__ = ["AuthThrottle", "address_key"]

log = logging.getLogger("framekit.server")

#: Addresses remembered at once. Each costs ~1 KiB; an attacker with more addresses than
#: this (an IPv6 /48, say) pushes out the idlest entries, never the blocked ones first.
MAX_TRACKED: Final = 10_000

Verdict = Literal["ok", "wrong", "blocked"]


def address_key(host: str) -> str:
    """What failures are counted against: the IPv4 address, or the IPv6 /64 (one host
    usually owns a whole /64, so counting single IPv6 addresses would not slow it)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Entry:
    lock: trio.Lock = field(default_factory=trio.Lock)
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0
    users: int = 0  # tasks holding or waiting for the lock


@final
class AuthThrottle:
    """Checks answers to the token challenge one at a time per source address.

    A wrong answer costs ``delay`` seconds *while holding the address's turn*, so parallel
    connections from one address cannot guess in parallel. ``max_failures`` wrong answers
    within ``block_time`` block the address for ``block_time``: its answers are then
    refused without being checked (so guessing learns nothing), with one WARNING line
    when the block starts. A right answer never waits.
    """

    def __init__(self, *, delay: float, max_failures: int, block_time: float) -> None:
        self.delay = delay
        self.max_failures = max_failures
        self.block_time = block_time
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _entry(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            if len(self._entries) > MAX_TRACKED:
                self._evict_one()
        else:
            self._entries.move_to_end(key)
        return entry

    def _evict_one(self) -> None:
        now = trio.current_time()
        for key, entry in self._entries.items():  # oldest first
            if not entry.users and entry.blocked_until <= now:
                del self._entries[key]
                return

    def _release(self, key: str, entry: _Entry) -> None:
        entry.users -= 1
        if not entry.users and not entry.failures and entry.blocked_until <= trio.current_time():
            self._entries.pop(key, None)  # nothing worth remembering

    async def check(self, host: str, verify: Callable[[], bool]) -> Verdict:
        """Run ``verify()`` in ``host``'s turn; ``"ok"``, ``"wrong"`` or ``"blocked"``."""
        key = address_key(host)
        entry = self._entry(key)
        entry.users += 1
        try:
            async with entry.lock:
                now = trio.current_time()
                if entry.blocked_until > now:
                    await trio.sleep(self.delay)
                    return "blocked"
                if verify():
                    return "ok"
                failures = entry.failures
                failures.append(now)
                while failures and failures[0] <= now - self.block_time:
                    failures.popleft()
                if len(failures) >= self.max_failures:
                    failures.clear()
                    entry.blocked_until = now + self.block_time
                    log.warning(
                        "%d wrong tokens from %s: refusing its attempts for %g s",
                        self.max_failures,
                        key,
                        self.block_time,
                    )
                await trio.sleep(self.delay)
                return "wrong"
        finally:
            self._release(key, entry)
