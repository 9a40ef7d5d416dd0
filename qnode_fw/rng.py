"""Named, independent random streams from one seed.

Each component asks for its own stream by a stable name (``"node:A/qnic:0"``). The stream depends
only on the seed and the name, so adding an instrument does not change any other stream, and the
same seed always gives the same run.
"""

from __future__ import annotations

import hashlib

import numpy as np


class RandomStreams:
    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._cache: dict[str, np.random.Generator] = {}

    def get(self, name: str) -> np.random.Generator:
        gen = self._cache.get(name)
        if gen is None:
            digest = hashlib.sha256(name.encode()).digest()
            key = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
            gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, *key])))
            self._cache[name] = gen
        return gen
