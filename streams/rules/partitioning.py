"""Kafka's murmur2 partitioner, among the rules so that mypyc compiles it (streams.native).

Stages send a batch's records for one partition in one envelope, and lookups find a key's
worker, by the partition a keyed send would pick: murmur2, as the Java client, aiokafka and
faust place keys (``topology.topics.partition_for``). Interpreted, it cost ~3 us for each new
key on every hop; compiled, the byte reads and the 32-bit arithmetic are C.
"""

from __future__ import annotations

from typing import Final

_M: Final = 0x5BD1E995  # murmur2's mixing constant
_M_HIGH: Final = _M >> 16
_M_LOW: Final = _M & 0xFFFF
_U32: Final = 0xFFFFFFFF


def _times_m(x: int) -> int:
    """``(x * _M) & _U32`` for a 32-bit ``x``, by 16-bit halves: mypyc multiplies unboxed only
    when both factors are below 2**30, and every whole product of the hash took the
    arbitrary-precision path, allocating ints (1.1 us a key; 0.14 by halves)."""
    high, low = x >> 16, x & 0xFFFF
    return (low * _M_LOW + (((low * _M_HIGH + high * _M_LOW) & 0xFFFF) << 16)) & _U32


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as aiokafka's
    ``partitioner.murmur2`` computes it."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    i = 0
    while i < whole:
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = _times_m(k)
        k = _times_m(k ^ (k >> 24))
        h = _times_m(h) ^ k
        i += 4
    extra = length - whole
    if extra:
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = _times_m(h ^ data[whole])
    h ^= h >> 13
    h = _times_m(h)
    return h ^ (h >> 15)
