"""Envelopes carry a stage's records for one partition in one message, in order."""

import orjson
from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import example, given
from hypothesis import strategies as st

from streams.rules import partitioning
from streams.runtime.envelopes import MAX_ENVELOPE_BYTES, Sealed, pieces, seal, unseal
from topology.topics import partition_for

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
records = st.lists(st.tuples(st.text(max_size=30), json_values), max_size=40)


@given(records, st.integers(1, 2000))
def test_sealed_records_come_out_in_order_whatever_the_size_limit(items, limit):
    envelopes = seal(items, limit)
    assert [tuple(record) for e in envelopes for record in unseal(e)] == items


@given(records, st.integers(200, 2000))
@example([("", None)] * 6 + [("x" * 44, [None, None, -10000000, "y" * 60])], 194)  # one byte over
def test_an_envelope_stays_under_the_limit_unless_one_record_alone_exceeds_it(items, limit):
    for envelope in seal(items, limit):
        assert len(envelope) <= limit or len(unseal(envelope)) == 1


def test_no_records_no_envelopes():
    assert seal([]) == []


@given(st.text(min_size=1, max_size=40), st.integers(1, 64))
def test_records_land_where_a_keyed_send_would_put_them(key, partitions):
    every = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(key.encode(), every, every)


@given(st.binary(max_size=80))
def test_murmur2_is_aiokafkas(data):
    assert partitioning.murmur2(data) == murmur2(data)


@given(records, st.integers(1, 2000))
def test_sealed_as_one_record_at_a_time(items, limit):
    """The envelopes are what sealing each record alone and joining them gives."""
    expected: list[bytes] = []
    batch: list[bytes] = []
    for key, value in items:
        item = orjson.dumps([key, value])
        if batch and len(b"[" + b",".join([*batch, item]) + b"]") > limit:
            expected.append(b"[" + b",".join(batch) + b"]")
            batch = []
        batch.append(item)
    if batch:
        expected.append(b"[" + b",".join(batch) + b"]")
    assert seal(items, limit) == expected
    carried = pieces(items, limit)
    assert [envelope for envelope, _ in carried] == expected
    assert [r for _, records in carried for r in records] == items
    for envelope, records in carried:
        assert [tuple(record) for record in unseal(envelope)] == records


def test_a_worker_reads_back_the_records_it_sealed_for_a_partition_it_reads():
    sealed = Sealed(lambda topic, partition: (topic, partition) == ("by_profile", 1))
    records = [("a", {"x": [1, 2]}), ("b", None)]
    [mine] = sealed.seal("by_profile", 1, records)
    [other] = sealed.seal("by_profile", 2, records)
    assert mine == other == seal(records)[0]
    assert sealed.unseal(bytes(mine)) is records  # taken by the bytes, not decoded
    assert sealed.unseal(bytes(mine)) == [["a", {"x": [1, 2]}], ["b", None]]  # read again
    assert sealed.unseal(other) == [["a", {"x": [1, 2]}], ["b", None]]


def test_records_split_over_several_envelopes_are_read_back_piece_by_piece():
    sealed = Sealed(lambda topic, partition: True)
    records = [(f"key-{n}", "v" * (MAX_ENVELOPE_BYTES // 3)) for n in range(5)]
    envelopes = sealed.seal("t", 0, records)
    assert len(envelopes) == 3
    taken = [sealed.unseal(envelope) for envelope in envelopes]
    assert [record for piece in taken for record in piece] == records  # the objects sealed
    assert all(isinstance(record, tuple) for piece in taken for record in piece)


def test_what_a_worker_keeps_to_read_back_is_bounded_oldest_first():
    sealed = Sealed(lambda topic, partition: True, limit_bytes=100)
    kept = [[(f"key-{n}", "v" * 20)] for n in range(4)]  # 2 fit in 100 bytes, 3 do not
    envelopes = [sealed.seal("t", 0, records)[0] for records in kept]
    assert [sealed.unseal(e) is records for e, records in zip(envelopes, kept, strict=True)] == [
        False,
        False,
        True,
        True,
    ]
