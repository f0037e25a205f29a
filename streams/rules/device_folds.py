"""An anonymous visit folded once for both records that keep its device's slice.

The link record of a device keeps the device's slice (for the merge record of its first login)
and so does the profile that holds the device (to render it): each folds every anonymous event
into its own copy, the same pure ``profile.fold`` of the same slice and the same event (the two
folds were a tenth of the rules' instructions on the peers input). When the profile's stage runs
in the process that folded the event at the link (one worker: always; several: when the
partitions are co-assigned), the records of the envelope are the very objects the link sent
(``runtime.envelopes.Sealed``). So the link leaves its result here, keyed by the identity of the
event's JSON it sent on, and the profile takes it when it folds that very event object into a
slice equal to the one the link folded (nearly always the very same object too, since the
profile took the link's result the time before: then nothing is compared). Anything else (an
envelope decoded from Kafka, a slice the profile forgot for an erasure) is a miss, and the
profile folds as before.

Nothing is shared that could change: states are never changed in place (the property tests'
simulation checks every step), so two records holding one slice object hold equal values. Equal
by value is equal in types too: every register carries the stamp of the message that wrote it,
so equal slices hold the values of the same messages, folded by the same code (JSON keeps ints,
floats and booleans apart).
"""

from __future__ import annotations

from typing import Any, Final

from streams.rules import profile
from streams.rules.events import IdentifyEvent

# Results not taken are dropped past this many (the profile is on another worker, or its copy
# was read back): each holds two states and an event until then.
LIMIT: Final = 4_096

# id(sent) -> (sent, slice, device key, folded); the objects are held, so that their ids are not
# reused while the entry lives.
_folded: Final[dict[int, tuple[Any, Any, str, profile.ProfileState]]] = {}


def fold_at_link(
    state: profile.ProfileState | None, event: IdentifyEvent, key: str, sent: Any
) -> profile.ProfileState:
    """``profile.fold(state, event, key)``, left for the profile that gets ``sent`` (the JSON
    ``event`` was decoded from) to fold into the same ``state``."""
    folded = profile.fold(state, event, key)
    if len(_folded) >= LIMIT:
        _folded.clear()
    _folded[id(sent)] = (sent, state, key, folded)
    return folded


def fold_at_profile(
    state: profile.ProfileState | None, event: IdentifyEvent, key: str, sent: Any
) -> profile.ProfileState:
    """``profile.fold(state, event, key)`` for ``event`` decoded from ``sent``: the link's
    result when it folded this very ``sent`` into a slice equal to ``state``.

    Compared by value only when the objects differ (one of the two records was read back from
    RocksDB): a slice's comparison costs a tenth of its fold, and taking the link's result
    makes the two records share the slice object again."""
    entry = _folded.pop(id(sent), None)
    if (
        entry is not None
        and entry[0] is sent
        and entry[2] == key
        and (entry[1] is state or entry[1] == state)
    ):
        return entry[3]
    return profile.fold(state, event, key)
