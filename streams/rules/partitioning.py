"""Kafka's murmur2 partitioner, among the rules so that mypyc compiles it (streams.native).

Stages send a batch's records for one partition in one envelope, and lookups find a key's
worker, by the partition a keyed send would pick: murmur2, as the Java client, aiokafka and
faust place keys (``topology.topics.partition_for``). Interpreted, it cost ~3 us for each new
key on every hop; compiled, the byte reads and the 32-bit arithmetic are C.
"""

from __future__ import annotations

from typing import Final

_M: Final = 0x5BD1E995  # murmur2's mixing constant
_U32: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as aiokafka's
    ``partitioner.murmur2`` computes it."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    i = 0
    while i < whole:
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _U32
        k = ((k ^ (k >> 24)) * _M) & _U32
        h = ((h * _M) & _U32) ^ k
        i += 4
    extra = length - whole
    if extra:
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _U32
    h ^= h >> 13
    h = (h * _M) & _U32
    return h ^ (h >> 15)
