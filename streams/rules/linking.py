"""Stage 2: the device -> known user link, one record per anonymous id, on the device's partition.

Every event naming an anonymous id A passes here, so this stage is the single writer of A's
facts: which user owns A, and A's own slice of the profile (what its anonymous events said).

Ownership is decided by event time, not arrival: the earliest identify(A, U) by
(timestamp, messageId) owns A, and A never belongs to two users. A claim that loses is refused
with a visible reason; its data still goes to the user it named. If an earlier claim arrives
late, A moves: its slice is detached from the wrong owner and attached to the right one, which
is exact because each profile keeps every device's slice apart (see ``assembly``). So the final
profiles do not depend on arrival order, and in-flight events of A always follow A's current
owner, since they are forwarded from here in order.
"""

from __future__ import annotations

from typing import Any

from streams.rules import deduplication, device_folds, profile
from streams.rules.attribute_types import AttributeTypes
from streams.rules.events import IdentifyEvent, blocks, from_json, refused_as_erased, to_json
from streams.rules.identity import IdKind, derive_profile_id
from streams.rules.outcomes import (
    BY_PROFILE,
    MERGES,
    Emit,
    Position,
    Rejection,
    Source,
    rejected,
)

# {"anonymousId", "workspaceId", "owner": Claim | None, "state": the device's slice,
#  "homes": every profile the device was sent to, "transition": the last move}
AnonymousRecord = dict[str, Any]
Claim = dict[str, Any]  # {"userId", "ts", "messageId", "source"}


def _stamp(claim: Claim) -> tuple[int, str]:
    return claim["ts"], claim["messageId"]


def _owner_profile(record: AnonymousRecord, key: str) -> str:
    owner = record["owner"]
    if owner is None:
        return key  # an unclaimed device is its own (anonymous) profile
    return derive_profile_id(record["workspaceId"], IdKind.USER, owner["userId"])


def _refusal(claim: Claim, owner: Claim, anonymous_id: str, workspace_id: str, now: int) -> Emit:
    reason = Rejection(
        "merge_refused",
        f"anonymousId {anonymous_id!r} belongs to user {owner['userId']!r} (identified at "
        f"{owner['ts']}, message {owner['messageId']}); it is not merged into user "
        f"{claim['userId']!r}, whose event data was applied to that user alone",
        "anonymousId",
        whole=False,
    )
    source = Source.from_json(claim["source"])
    return rejected(reason, source, now, claim["messageId"], workspace_id)


def on_anonymous_event(
    record: AnonymousRecord | None,
    key: str,
    payload: dict[str, Any],
    types: AttributeTypes,
    now: int,
    at: Position | None = None,
) -> tuple[AnonymousRecord, list[Emit]]:
    """Apply one event naming this anonymous id; return the new record and what to send on.

    ``at`` is the event's position in this stage's input partition (read in order): at or
    before the last position applied, it is a redelivery whose data is already in the slice.
    ``types`` renders the absorbed profile of a merge record.
    """
    if "erase" in payload:  # the device's owner was erased: forget the device too
        assert record is not None, "only a profile that holds the device cascades to it"
        return _erase(record, key, payload["erase"], None, at)
    event = from_json(payload["event"])
    anonymous_id = event.anonymous_id
    assert anonymous_id is not None
    if record is None:
        record = {
            "anonymousId": anonymous_id,
            "workspaceId": event.workspace_id,
            "owner": None,
            "state": None,
        }
    if event.erase:
        return _erase(record, key, event.erasure_floor, event, at)
    erased = record.get("erasedAt")
    if erased is not None and list(event.stamp) <= erased:
        # Older than the device's erasure (or any event, once it blocks): forgotten. A login's
        # own data still goes to its user, whose profile applies its own erasure, if any.
        emits = []
        if blocks(erased):
            emits.append(refused_as_erased(event, "anonymousId", payload["source"], now))
        if event.user_id is not None:
            user_profile = derive_profile_id(event.workspace_id, IdKind.USER, event.user_id)
            data = {"op": "event", "event": _for_user(event)}
            emits.append(Emit(BY_PROFILE, user_profile, {**data, "source": payload["source"]}))
        return record, emits
    # A's slice gets the whole of an anonymous event, but only A's presence from a claim: the
    # claim's data belongs to the user it names, whoever ends up owning A.
    part = event if event.user_id is None else _presence(event)
    before = record["state"]
    applied = record.get("at")
    if at is not None and applied is not None and list(at) <= applied:
        state = before  # a redelivery: folded in already; what it implies is sent again
    elif part is event:  # an anonymous visit: the profile holding A folds it too
        state = device_folds.fold_at_link(before, part, key, payload["event"])
    else:
        state = profile.fold(before, part, key)
    messages = deduplication.remember(record.get("messages"), event.timestamp, event.message_id, at)
    record = {**record, "state": state, "messages": messages}
    if at is not None:
        record["at"] = max(list(at), applied or [])
    # An anonymous event goes on as the JSON it came in (records are never changed once sent)
    sent = payload["event"] if part is event else to_json(part)
    forward = {"op": "member", "member": key, "event": sent, "source": payload["source"]}
    if event.user_id is None:
        return record, [Emit(BY_PROFILE, _owner_profile(record, key), forward)]

    user_profile = derive_profile_id(event.workspace_id, IdKind.USER, event.user_id)
    data = {"op": "event", "event": _for_user(event)}
    emits = [Emit(BY_PROFILE, user_profile, {**data, "source": payload["source"]})]
    claim: Claim = {
        "userId": event.user_id,
        "ts": event.timestamp,
        "messageId": event.message_id,
        "source": payload["source"],
    }
    owner: Claim | None = record["owner"]
    if owner is not None and _stamp(owner) == _stamp(claim):
        # This very claim made the current owner: a redelivery. The table can be ahead of the
        # outputs (after a crash, its flush on the broker and an earlier batch's outputs not),
        # so send the transition again; every receiver applies it idempotently.
        emits += _transition_emits(record, key, user_profile, types, now)
    elif owner is not None and owner["userId"] == claim["userId"]:
        # The owner's latest login too: it relinks the device if an erasure forgets the first.
        latest = record.get("lastClaim") or owner
        record = {**record, "lastClaim": max(latest, claim, key=_stamp)}
        if _stamp(claim) < _stamp(owner):
            # The same user's earlier login: the link now dates from it, whatever arrived first.
            transition = {**record["transition"], "claim": claim}
            record = {**record, "owner": claim, "transition": transition}
            emits.append(
                Emit(MERGES, key, _merge_record(record, key, user_profile, transition, types))
            )
    elif owner is None or _stamp(claim) < _stamp(owner):
        previous = _owner_profile(record, key)
        # Kept as plain JSON (it lives in the table): the merge record is rendered when sent.
        transition = {
            "claim": claim,
            "displacedClaim": owner,
            "previous": previous,
            "before": before,
        }
        homes = sorted({*record.get("homes", [key]), user_profile})
        record = {
            **record,
            "owner": claim,
            "lastClaim": claim,
            "transition": transition,
            "homes": homes,
        }
        return record, emits + _transition_emits(record, key, user_profile, types, now)
    else:
        emits.append(_refusal(claim, owner, anonymous_id, event.workspace_id, now))
    emits.append(Emit(BY_PROFILE, _owner_profile(record, key), forward))
    return record, emits


def _transition_emits(
    record: AnonymousRecord, key: str, user_profile: str, types: AttributeTypes, now: int
) -> list[Emit]:
    """Move the device to its owner from every profile it was ever sent to; report the loser.

    Not just from the previous owner: after a crash, the outputs of several moves may have been
    lost at once, so the slice can still sit in any earlier home (detaching is idempotent).
    """
    transition = record["transition"]
    emits = [
        Emit(BY_PROFILE, home, {"op": "detach", "member": key})
        for home in record["homes"]
        if home != user_profile
    ]
    emits += [
        Emit(BY_PROFILE, user_profile, _attach(record, key)),
        Emit(MERGES, key, _merge_record(record, key, user_profile, transition, types)),
    ]
    displaced: Claim | None = transition["displacedClaim"]
    if displaced is not None:
        owner = record["owner"]
        emits.append(_refusal(displaced, owner, record["anonymousId"], record["workspaceId"], now))
    return emits


def _erase(
    record: AnonymousRecord,
    key: str,
    stamp: list[Any],
    request: IdentifyEvent | None,
    at: Position | None,
) -> tuple[AnonymousRecord, list[Emit]]:
    """Forget the device up to ``stamp``; a link from before then is forgotten too.

    ``request`` is the erasure call itself when it named this device: the device's own
    (anonymous) profile is erased, and the user the call also names, if any. Erasing a device
    leaves the rest of its user's profile alone; erasing a user erases all of its devices.
    """
    erased = max(record.get("erasedAt") or stamp, stamp)
    owner = record["owner"]
    state = profile.forget(record["state"], erased)
    messages = deduplication.forget(record.get("messages"), erased)
    emits: list[Emit] = []
    if request is not None:
        # the call itself is remembered, so that a retry of it is a duplicate
        messages = deduplication.remember(messages, request.timestamp, request.message_id, at)
        targets = {key}
        if request.user_id is not None:
            targets.add(derive_profile_id(request.workspace_id, IdKind.USER, request.user_id))
        erase = {"op": "event", "event": _for_user(request)}
        emits += [Emit(BY_PROFILE, target, erase) for target in sorted(targets)]
    if owner is not None and [owner["ts"], owner["messageId"]] <= erased:
        latest = record.get("lastClaim")
        if latest is not None and [latest["ts"], latest["messageId"]] > erased:
            # The same user logged in on the device again after the erasure: linked from then.
            owner = latest
            record = {**record, "transition": {**record["transition"], "claim": latest}}
        else:
            owner = None  # the link is forgotten: the device is anonymous again
    if owner is None:
        # The link is gone, and the device leaves every profile it lived in: what it sent there
        # after the erasure (in flight while the erasure travelled) comes back below, to its own
        # profile. Sent again on every redelivery, since the first sending may have been lost.
        emits.append(Emit(MERGES, key, None))
        emits += [
            Emit(BY_PROFILE, home, {"op": "detach", "member": key})
            for home in record.get("homes", [key])
            if home != key
        ]
        record = {**record, "transition": None}
    record = {**record, "owner": owner, "state": state, "erasedAt": erased, "messages": messages}
    holder = _owner_profile(record, key)
    if owner is not None:  # its copy of the device still holds what was just forgotten
        emits.append(Emit(BY_PROFILE, holder, {"op": "detach", "member": key}))
    if state is not None:
        # What the device did after the erasure stays, with whoever holds the device now.
        emits.append(Emit(BY_PROFILE, holder, _attach(record, key)))
    return record, emits


def _attach(record: AnonymousRecord, key: str) -> dict[str, Any]:
    """The attach command for the device's current holder, with the login that makes it so."""
    owner = record["owner"]
    claim = [owner["ts"], owner["messageId"]] if owner else None
    return {"op": "attach", "member": key, "state": record["state"], "claim": claim}


def _presence(event: IdentifyEvent) -> IdentifyEvent:
    """What a login gives the device's own slice: the device was seen, no data (that is the
    user's)."""
    # Built, not dataclasses.replace'd: that one is interpreted Python, ~3 us a login.
    return IdentifyEvent(
        event.message_id,
        event.timestamp,
        event.workspace_id,
        event.anonymous_id,
        None,
        None,
        {},
        {},
        frozenset(),
        erase=event.erase,
    )


def _for_user(event: IdentifyEvent) -> dict[str, Any]:
    """The JSON form of an event for the user it names: without the device, whose slice is
    this stage's."""
    data = to_json(event)
    data.pop("anonymousId", None)
    return data


def _merge_record(
    record: AnonymousRecord,
    key: str,
    into: str,
    transition: dict[str, Any],
    types: AttributeTypes,
) -> dict[str, Any]:
    """The ProfileMerge record: enough for segment builders to rewrite references, and to undo."""
    claim, previous, before = transition["claim"], transition["previous"], transition["before"]
    return {
        "workspaceId": record["workspaceId"],
        "anonymousId": record["anonymousId"],
        "fromProfileId": key,
        "intoProfileId": into,
        "userId": claim["userId"],
        "previousProfileId": None if previous == key else previous,
        "eventTime": claim["ts"],
        "causeMessageId": claim["messageId"],
        "absorbed": (
            profile.render(before, types.shown(record["workspaceId"]))
            if before is not None
            else None
        ),
    }
