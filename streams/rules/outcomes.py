"""What the stages produce: records to emit, and refusals with the place they came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

# Logical output names; topology.topics maps each to a topic of the deployment.
# earliest value per attribute and kind (attribute_types)
ATTRIBUTE_FIRSTS: Final = "attribute_firsts"
# The key of a record for every partition of its stream: the runtime sends one copy to each
# (keyed for that partition), as Kafka Streams' broadcast would.
BROADCAST: Final = "\x00broadcast"
BY_ANONYMOUS: Final = "by_anonymous"
BY_PROFILE: Final = "by_profile"
PROFILES: Final = "profiles"
MERGES: Final = "merges"
REJECTIONS: Final = "rejections"


# What became of one input message, decided once, by the stage that settles it (rules.steps)
Outcome = Literal["applied", "applied_with_warning", "duplicate", "rejected"]


# The value types built several times per event (Emit, Source, Stepped, IdentifyEvent, Parsed,
# Routed, Deferred, delivery.Record) are not frozen: a frozen dataclass's __init__ sets each field
# through object.__setattr__ (0.9 us for three fields against 0.16), ~7 % of the rules' CPU on the
# peers input. Nothing changes one after it is built. Those of the rules also write their own
# __init__ (init=False): mypyc compiles a method written in the class, but the one dataclass
# generates is made at import time and stays interpreted (0.18 us for three fields against
# 0.04), and they are built ~15 times per event.
@dataclass(slots=True, init=False)
class Emit:
    """One record a stage wants sent: ``value`` None is a tombstone."""

    output: str
    key: str | None
    value: Any

    def __init__(self, output: str, key: str | None, value: Any) -> None:
        self.output = output
        self.key = key
        self.value = value


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal of a whole message (``whole``) or of one part of it (``subject``).

    ``reason`` is a stable code that dashboards and alerts key on; ``message`` is for people.
    """

    reason: str
    message: str
    subject: str | None = None
    whole: bool = True


# Where a record sits in its stage's input partition: the offset of its message there and its
# index in that message's envelope. A partition is read in order, so positions only grow.
Position = tuple[int, int]


@dataclass(slots=True, init=False)  # not frozen, own __init__: built per event (see Emit)
class Source:
    """Where an input message came from, so a rejection can point back at it.

    ``timestamp`` is the input record's Kafka timestamp (ms), the event time of a JSON body that
    carries none; it does not travel with the source to later stages.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int | None = None

    def __init__(
        self, topic: str, partition: int, offset: int, timestamp: int | None = None
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp

    def to_json(self) -> list[Any]:
        return [self.topic, self.partition, self.offset]

    @classmethod
    def from_json(cls, data: list[Any]) -> Source:
        return cls(data[0], data[1], data[2])


def rejected(
    rejection: Rejection,
    source: Source,
    rejected_at: int,
    message_id: str | None = None,
    workspace_id: str | None = None,
    raw_value: bytes | None = None,
) -> Emit:
    """The Rejection record to emit; raw bytes are kept only for messages that could not be read."""
    record = {
        "reason": rejection.reason,
        "message": rejection.message,
        "subject": rejection.subject,
        "wholeMessage": rejection.whole,
        "messageId": message_id,
        "workspaceId": workspace_id,
        "sourceTopic": source.topic,
        "sourcePartition": source.partition,
        "sourceOffset": source.offset,
        "rawValue": raw_value,
        "rejectedAt": rejected_at,
    }
    return Emit(REJECTIONS, message_id, record)


# outputs read as "the latest record per key"
COMPACTED: Final[tuple[str, ...]] = (PROFILES, MERGES)


@dataclass(slots=True, init=False)  # not frozen, own __init__: built per event (see Emit)
class Deferred:
    """A compacted output's value, built only if its record is sent (see ``coalesce``).

    A profile is rendered whole for each command it takes, and in a batch most of them are
    replaced by a later one of the same profile (on the peers input, 61 % of renders), so the
    rendering waits until it is known to be the last. It is built from the state as the step
    left it (states are never changed in place) and the type decisions when it is built, which
    are those the batch's catch-up renders against (streams.runtime.rerendering).
    """

    build: Callable[[], Any]

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build


def coalesce(emits: list[Emit]) -> list[Emit]:
    """Only the last record per key of each compacted output, its value built if deferred;
    everything else as it is.

    Kafka Streams' record cache does the same for a KTable's downstream: consumers of a
    compacted topic want each key's latest state, and every record we do not send saves a
    produce and a consume downstream. Rejections are never coalesced.
    """
    last = {(e.output, e.key): n for n, e in enumerate(emits) if e.output in COMPACTED}
    return [
        Emit(e.output, e.key, e.value.build()) if isinstance(e.value, Deferred) else e
        for n, e in enumerate(emits)
        if e.output not in COMPACTED or last[e.output, e.key] == n
    ]
