"""Message-id deduplication (WebEngage x-request-id): a retried call is applied once.

A retry repeats its call's identifiers, so it reaches the same record as the first try: the
device's (``linking``) when the event names an anonymousId, else the user's or profile's
(``assembly``). That record remembers the messageIds of the events routed to it (the newest
``REMEMBERED`` by event time; it is written for every event anyway), and an event whose
messageId is among them within the window (default 4 hours of event time) is a duplicate: no
state changes, nothing is published. Checking there costs no table, no changelog record and no
repartition hop of its own; a separate stage keyed by messageId cost every event all three.

What it does not catch, by design: a messageId reused with other identifiers (a different
call, as far as the keys can tell), and a retry of an event that ``REMEMBERED`` later events of
the same device or person have pushed out (those are applied again; the folds are idempotent,
so an identical retry changes nothing but is counted as applied).

A redelivery reaches the record again too. Each entry keeps the position (in the stage's input
partition) of the event that made it, so a redelivery of that very record (the stage's own input
read again after a crash) is told apart and runs again in full, as every redelivery does. A
second copy of an input message (the routing stage's input read again after a crash) comes at
another position and is a duplicate: its first copy reached the broker before the crash (a
stage's outputs do, before its input is committed), so its outputs are, or will be, published.

An erasure removes the entries it covers, with the rest of the person's data.
"""

from __future__ import annotations

import bisect
from typing import Any, Final

from streams.rules.outcomes import Position

DEFAULT_WINDOW_MS: Final = 4 * 3600 * 1000
# [[event time, messageId, offset, index], ...] in stamp order, the position of the record that
# was applied; bounded, since it rides in every record write
Remembered = list[list[Any]]
REMEMBERED: Final = 64  # a constant per record: its state must not grow with its history


def routed_here(payload: dict[str, Any]) -> bool:
    """Whether the routing stage sent this event to this record (with the refusals it made):
    then this record settles its message. Events another stage forwards were settled there."""
    return "warnings" in payload


def is_duplicate(
    remembered: Remembered | None,
    timestamp: int,
    message_id: str,
    at: Position | None,
    window_ms: int,
) -> bool:
    """Whether a record that remembers ``remembered`` applied this messageId already, from
    another position than ``at`` (the same one: a redelivery)."""
    here = list(at) if at is not None else None
    for entry in remembered or ():  # a plain loop: this runs for every event
        if entry[1] == message_id and abs(timestamp - entry[0]) <= window_ms and entry[2:] != here:
            return True
    return False


def remember(
    remembered: Remembered | None, timestamp: int, message_id: str, at: Position | None
) -> Remembered:
    """The messageIds of a record's events, with this one (once: the first position stays)."""
    remembered = list(remembered or [])
    stamp = [timestamp, message_id]
    at_stamp = bisect.bisect_left(remembered, stamp)  # entries are in stamp order
    if at_stamp < len(remembered) and remembered[at_stamp][:2] == stamp:
        return remembered
    remembered.insert(at_stamp, [*stamp, *(at or ())])
    return remembered[-REMEMBERED:]


def forget(remembered: Remembered | None, floor: list[Any]) -> Remembered:
    """Drop the entries an erasure covers (at or before its floor); keep the later ones."""
    return [entry for entry in remembered or [] if entry[:2] > floor]
