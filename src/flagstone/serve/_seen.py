"""A Bloom filter of every event key the store holds or the service accepted.

Nearly every event a service sees is new; the filter says so from memory, so the store is asked
only about the few keys it might hold (retries, and about 1% false alarms). Being wrong in that
direction costs one lookup, never a wrong answer. Ten bits per key, seven hashes.
"""

from __future__ import annotations

import hashlib

HASHES = 7
BITS_PER_KEY = 10


class SeenKeys:
    def __init__(self, capacity: int) -> None:
        self.bits = max(capacity, 1_000) * BITS_PER_KEY
        self.array = bytearray(self.bits // 8 + 1)

    def _positions(self, source: str, event_id: str) -> list[int]:
        digest = hashlib.blake2b(f"{source}\x1f{event_id}".encode(), digest_size=16).digest()
        h1, h2 = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1
        return [(h1 + i * h2) % self.bits for i in range(HASHES)]

    def add(self, source: str, event_id: str) -> None:
        for p in self._positions(source, event_id):
            self.array[p >> 3] |= 1 << (p & 7)

    def might_hold(self, source: str, event_id: str) -> bool:
        return all(self.array[p >> 3] >> (p & 7) & 1 for p in self._positions(source, event_id))
