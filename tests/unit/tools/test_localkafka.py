"""The local broker's cluster id: the storage tool must never take it for an option."""

from __future__ import annotations

import uuid

from localkafka import broker


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch):
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 "-AAA...": what failed one start in 64
    plain = uuid.UUID(bytes=b"\x04" + bytes(15))
    drawn = iter([dashed, plain])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(drawn))
    assert broker._cluster_id() == "BAAAAAAAAAAAAAAAAAAAAA"
