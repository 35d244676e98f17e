"""One way to derive the seed of every random stream of a run from the run's seed.

A stream is named by its parts (the run seed, what the stream is for, the round, the node,
the tensor...), hashed together by numpy's `SeedSequence`, so streams with different names
are independent, a resumed run draws exactly what the uninterrupted run would have, and a
receiver that knows the names (the server knows the round and the sender's node) regenerates
the sender's stream without anything extra travelling.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed (for `torch.Generator.manual_seed`) from integers and strings."""
    words = []
    for part in parts:
        if isinstance(part, str):
            words.append(zlib.crc32(part.encode()))
        elif isinstance(part, int | np.integer) and not isinstance(part, bool):
            value = int(part)
            words.extend((value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF, value < 0))
        else:
            raise TypeError(f"seed parts are integers or strings, got {part!r}")
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])
