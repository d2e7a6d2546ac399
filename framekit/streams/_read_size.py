"""How many bytes the wrappers ask the transport for on each read."""

from __future__ import annotations

from typing import Final, final

__all__ = ["DEFAULT_RECEIVE_SIZE", "FIRST_READ", "ReadSize"]

#: The first read's size, and the floor reads shrink back to: trio's own default.
FIRST_READ: Final = 64 * 1024
#: Most bytes asked of the transport per read. trio's own default is 64 KiB; each read
#: has a fixed cost (~25 us here), so a bigger read carries more small frames per cost:
#: 1 MiB took 1 KiB frames from ~750k to ~965k frames/s in bench/framing.py. Reads grow
#: to it only while they come back full (see ``ReadSize``): asking for 1 MiB when a
#: small message arrives costs an allocation of 1 MiB.
DEFAULT_RECEIVE_SIZE: Final = 1024 * 1024


@final
class ReadSize:
    """How many bytes to ask the transport for on the next read, at most ``limit``.

    CPython allocates the whole buffer before ``recv`` fills it, so asking for 1 MiB
    costs ~12 us per call here even when 100 bytes arrive: more than the ``recv`` itself.
    Reads start at 64 KiB (or ``limit`` if smaller), double while they come back full
    (a bulk transfer), and halve again when one comes back less than a quarter full.
    """

    __slots__ = ("floor", "limit", "size")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"receive_size must be at least 1, not {limit}")
        self.limit = limit
        self.floor = self.size = min(limit, FIRST_READ)

    def update(self, received: int) -> None:
        """Adjust to a read of ``size`` bytes that returned ``received``."""
        size = self.size
        if received >= size:
            if size < self.limit:
                self.size = min(size * 2, self.limit)
        elif received < size >> 2 and size > self.floor:
            self.size = max(size >> 1, self.floor)
