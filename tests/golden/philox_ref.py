"""Philox4x32-10 as ouro/core/philox.hpp draws it, for the golden scripts that replay ouro's random
choices (gen_metrics.py: KID's subsets; gen_probe.py: the probe's held-out split)."""

MASK = 0xFFFFFFFF


def philox4x32(ctr, key, rounds=10):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + 0x9E3779B9) & MASK
            k1 = (k1 + 0xBB67AE85) & MASK
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
    return [c0, c1, c2, c3]


class PhiloxStream:
    """philox_stream(seed, purpose, index): counter (block, purpose, index low, index high)."""

    def __init__(self, seed, purpose, index):
        self.key = (seed & MASK, (seed >> 32) & MASK)
        self.purpose = purpose
        self.index = index
        self.block_index = 0
        self.block = None
        self.used = 4

    def next_u32(self):
        if self.used == 4:
            self.block = philox4x32([self.block_index, self.purpose, self.index & MASK, (self.index >> 32) & MASK],
                                    self.key)
            self.block_index += 1
            self.used = 0
        v = self.block[self.used]
        self.used += 1
        return v

    def below(self, n):
        """Uniform in [0, n), Lemire's multiply-and-reject, as philox_stream::below."""
        m = self.next_u32() * n
        low = m & MASK
        if low < n:
            threshold = ((1 << 32) - n) % n
            while low < threshold:
                m = self.next_u32() * n
                low = m & MASK
        return m >> 32


# Random123's known-answer test for Philox4x32-10.
assert philox4x32([0, 0, 0, 0], [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
