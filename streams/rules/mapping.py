"""From the identify payloads people already send, as JSON, to IdentifyEvent records.

One mapping serves every JSON that reaches us, so a body means the same whether a worker reads it
off the input topic (``streams.rules.input_formats``) or ``identify-stream publish`` reads it from
a file. The shapes, told apart by their fields:

* **Segment** identify calls (``"type": "identify"``; RudderStack and Jitsu send the same):
  ``userId``, ``anonymousId``, ``messageId``, ``timestamp`` (else ``originalTimestamp``, ``sentAt``,
  ``receivedAt``), and ``traits`` over ``context.traits``. Other Segment fields are transport
  detail and are ignored; every trait is kept.
* **Heap** ``identify`` / ``add_user_properties`` (``identity``, Heap's own ``user_id``,
  ``properties``, ``app_id``).
* **flat** bodies: our own record as JSON, a WebEngage ``POST /users`` body, a Herogi
  ``POST /v1/identify`` body or one NotifyVisitors user entry. Their field names
  (externalUserId, userID, mobileNo, first_name, email_opt_in, ...) map onto ours and their opt-in
  spellings (true/false, 1/0/2, OPT-IN) onto OPTIN/OPTOUT/BOUNCED/INVALID. A flat body must not
  carry fields of no known meaning: a typo would otherwise be lost without a word.

Traits and properties named like a system attribute (or a Segment reserved trait: ``name``,
``birthday``, ``address``, ``company``) fill it; the rest become custom attributes that keep their
JSON type. Checks that need the workspace's state (types, identifiers) stay with the worker, and
so does the refusal of a body that names no one (``missing_identity``), as for Avro input.

Bodies do not say which workspace they belong to: a ``workspaceId`` field does, else the caller's
default (``--workspace``, ``IDENTITY_STREAM_DEFAULT_WORKSPACE``). Without a ``messageId`` (or
WebEngage's ``x-request-id``) one is derived from the content, so a retried body is a duplicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Final

from fastavro.validation import ValidationError, validate

from streams.rules.events import SYSTEM_ATTRIBUTES
from topology.avro import IDENTIFY_EVENT

NS: Final = "identitystream.v1."
ALIASES: Final = {
    "externalUserId": "userId",
    "userID": "userId",
    "anonymousID": "anonymousId",
    "hgid": "profileId",
    "mobileNo": "phone",
    "mobile": "phone",
    "firsname": "firstName",
    "firstname": "firstName",
    "first_name": "firstName",
    "lastname": "lastName",
    "last_name": "lastName",
    "name": "fullName",
    "birth_date": "birthDate",
    "currentLocation": "location",
    "emailOptin": "emailOptIn",
    "smsOptin": "smsOptIn",
    "pushOptin": "pushOptIn",
    "webPushOptin": "webPushOptIn",
    "locationOptin": "locationOptIn",
    "email_opt_in": "emailOptIn",
    "sms_opt_in": "smsOptIn",
    "whatsapp_opt_in": "whatsappOptIn",
    "attributes": "custom",
    "customAttributes": "custom",
    "x-request-id": "messageId",
}
# Segment's reserved traits that are system attributes under another name; the rest of its
# reserved traits (age, avatar, createdAt, description, id, title, username, website) are custom.
TRAIT_ALIASES: Final = {"name": "fullName", "birthday": "birthDate"}
ENVELOPE: Final = (
    "messageId",
    "timestamp",
    "workspaceId",
    "anonymousId",
    "userId",
    "profileId",
    "erase",
)
OPERATIONS: Final = ("setOnce", "unset", "unsetCustom", "increment", "append", "remove")
OPT_INS: Final = {name for name in SYSTEM_ATTRIBUTES if name.endswith("OptIn")}
# NotifyVisitors' state 2: bounced for email, invalid for the phone channels
_STATE_TWO: Final = {"emailOptIn": "BOUNCED"}
# Segment's fields for when a call happened, most faithful first.
SEGMENT_TIMES: Final = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
HEAP_FIELDS: Final = {
    "app_id",
    "identity",
    "user_id",
    "properties",
    "timestamp",
    "messageId",
    "workspaceId",
}
# Bodies of several users: a message is one identify call.
BATCHES: Final = {"nv": "NotifyVisitors", "batch": "Segment", "users": "Heap"}


class Unmappable(ValueError):
    """A payload that cannot become an identify event; ``reason`` is the rejection code.

    ``unrecognised_json``: none of the known shapes. ``invalid_field``: a known shape with a field
    that cannot be read (``subject`` names it).
    """

    def __init__(self, reason: str, message: str, subject: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.subject = subject


def _unrecognised(message: str) -> Unmappable:
    return Unmappable("unrecognised_json", message)


def _invalid(field: str, message: str) -> Unmappable:
    return Unmappable("invalid_field", f"{field}: {message}", field)


def to_record(
    payload: Any, workspace_id: str | None, now_ms: int, arrival_ms: int | None = None
) -> dict[str, Any]:
    """An IdentifyEvent record (ready for ``IDENTIFY_EVENT.encode``) from one JSON payload.

    ``arrival_ms`` is the Kafka timestamp of a message read off a topic: the event time of a
    body that carries none, and part of the messageId derived for a body without one, so a
    resent Kafka record is a duplicate and the same body sent again later is a new event.
    Without it (a file) the event time is ``now_ms`` and the derived messageId is the content's
    alone: publishing the same file twice applies it once.
    """
    if not isinstance(payload, dict):
        raise _unrecognised(f"a JSON {type(payload).__name__}, not an identify object")
    for wrapper, source in BATCHES.items():
        if isinstance(payload.get(wrapper), list):
            raise _unrecognised(
                f"a {source} batch ('{wrapper}'): publish each entry as its own message"
            )
    if "type" in payload:
        record = _segment(payload)
    elif "identity" in payload or "app_id" in payload:
        record = _heap(payload)
    else:
        record = _flat(payload)
    timed = record.get("timestamp") is not None
    if not timed:
        record["timestamp"] = now_ms if arrival_ms is None else arrival_ms
    if not record.get("messageId"):
        record["messageId"] = _content_id(payload, None if timed else arrival_ms)
    workspace = payload.get("workspaceId") or workspace_id or ""
    record["workspaceId"] = str(workspace)
    return record


def encode(record: dict[str, Any]) -> bytes:
    """The record in Avro single-object encoding, refused where it does not fit IdentifyEvent.

    Validation first: fastavro's writer alone would take a string where a list is due, one item
    per character. It runs quietly first: collecting errors costs fastavro about seven times as
    much on a valid record, so only a record that fails is validated again for the message.
    """
    if not validate(record, IDENTIFY_EVENT.parsed, raise_errors=False):
        try:
            validate(record, IDENTIFY_EVENT.parsed, raise_errors=True)
        except ValidationError as exc:
            # the most specific of fastavro's complaints is the last one
            last = exc.errors[-1]
            field = str(last.field).rsplit(".", 1)[-1]
            raise _invalid(field, f"does not fit IdentifyEvent: {str(last)[:240]}") from exc
    return IDENTIFY_EVENT.encode(record)


def _segment(payload: dict[str, Any]) -> dict[str, Any]:
    """A Segment (RudderStack, Jitsu) identify call; any other call type is not ours to read."""
    if payload["type"] != "identify":
        raise _unrecognised(
            f"a Segment-style {payload['type']!r} call: only identify calls are read"
        )
    context = _object(payload, "context")
    # the call's own traits over those of its context
    system, custom = _traits(_object(context, "traits", "context.traits"), "context.traits")
    own_system, own_custom = _traits(_object(payload, "traits"), "traits")
    system, custom = {**system, **own_system}, {**custom, **own_custom}
    when = next((payload[name] for name in SEGMENT_TIMES if payload.get(name) is not None), None)
    return {
        "messageId": _text(payload.get("messageId")),
        "timestamp": None if when is None else _timestamp(when),
        "anonymousId": _text(payload.get("anonymousId")),
        "userId": _text(payload.get("userId")),
        "profileId": None,
        "set": {**system, "custom": custom},
        "erase": False,
    }


def _heap(payload: dict[str, Any]) -> dict[str, Any]:
    """Heap's server-side identify / add_user_properties: ``identity`` is the user's own id,
    ``user_id`` Heap's id of the device's anonymous user, ``properties`` user properties."""
    if "event" in payload:
        raise _unrecognised("a Heap track call: only identify and add_user_properties are read")
    unknown = set(payload) - HEAP_FIELDS
    if unknown:
        raise _unrecognised(f"unknown fields {sorted(unknown)} for a Heap identify body")
    system, custom = _traits(_object(payload, "properties"), "properties")
    when = payload.get("timestamp")
    return {
        "messageId": _text(payload.get("messageId")),
        "timestamp": None if when is None else _timestamp(when),
        "anonymousId": _text(payload.get("user_id")),
        "userId": _text(payload.get("identity")),
        "profileId": None,
        "set": {**system, "custom": custom},
        "erase": False,
    }


def _traits(traits: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """System attributes and custom values (Avro datums) from Segment traits or Heap properties.

    Nested ``address`` and ``company`` objects fill city, country and company, and are kept
    whole as custom JSON values too, so nothing in them is lost.
    """
    system: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in traits.items():
        if value is None:
            continue
        key = TRAIT_ALIASES.get(name, name)
        if name == "address" and isinstance(value, dict):
            for part in ("city", "country"):
                if value.get(part) is not None:
                    system.setdefault(part, value[part])
        elif name == "company" and isinstance(value, dict):
            if value.get("name") is not None:
                system.setdefault("company", value["name"])
        elif key in SYSTEM_ATTRIBUTES:
            system[key] = value
            continue
        custom[name] = custom_value(value, f"{where}.{name}")
    return _system(system, where), custom


def _flat(payload: dict[str, Any]) -> dict[str, Any]:
    """Our record as JSON, or a WebEngage, Herogi or NotifyVisitors body (see ALIASES)."""
    flat = {ALIASES.get(k, k): v for k, v in payload.items() if v is not None}
    for name, value in _object(flat, "user_attributes").items():  # NotifyVisitors
        flat.setdefault(ALIASES.get(name, name), value)
    flat.pop("user_attributes", None)
    nested_set = _object(flat, "set")
    flat.pop("set", None)
    attributes = {ALIASES.get(k, k): v for k, v in {**flat, **nested_set}.items()}
    custom = attributes.pop("custom", None) or {}
    if isinstance(custom, str):  # Herogi sends customAttributes as a JSON string
        custom = _json_object(custom, "customAttributes")
    unknown = set(attributes) - set(SYSTEM_ATTRIBUTES) - set(ENVELOPE) - set(OPERATIONS)
    if unknown:
        raise _unrecognised(
            f"unknown fields {sorted(unknown)}: put custom attributes in 'attributes'"
        )
    system = {name: attributes[name] for name in SYSTEM_ATTRIBUTES if name in attributes}
    record: dict[str, Any] = {
        "messageId": _text(flat.get("messageId")),
        "timestamp": _timestamp(flat["timestamp"]) if "timestamp" in flat else None,
        "anonymousId": _text(flat.get("anonymousId")),
        "userId": _text(flat.get("userId")),
        "profileId": _text(flat.get("profileId")),
        "set": {**_system(system, "set"), "custom": _custom(custom, "attributes")},
        "erase": bool(flat.get("erase", False)),
    }
    for op in OPERATIONS:
        if op in flat:
            record[op] = flat[op]
    if "setOnce" in record:
        once = dict(_object(record, "setOnce"))
        once_custom = once.pop("custom", None) or {}
        record["setOnce"] = {**_system(once, "setOnce"), "custom": _custom(once_custom, "setOnce")}
    return record


def _system(values: dict[str, Any], where: str) -> dict[str, Any]:
    """System attribute values in the spellings the schema takes."""
    system = dict(values)
    if isinstance(system.get("location"), str):
        system["location"] = _json_object(system["location"], f"{where}.location")
    for name in OPT_INS & system.keys():
        system[name] = _opt_in(name, system[name])
    for name in ("birthDate", "phone"):
        if name in system:
            system[name] = str(system[name])
    return system


def _custom(values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise _invalid(where, "custom attributes must be a JSON object")
    return {name: custom_value(value, f"{where}.{name}") for name, value in values.items()}


def _opt_in(name: str, value: Any) -> str:
    text = str(value).strip().upper().replace("-", "").replace("_", "")
    if text in ("TRUE", "1", "OPTIN", "YES"):
        return "OPTIN"
    if text in ("FALSE", "0", "OPTOUT", "NO"):
        return "OPTOUT"
    if text == "2":
        return _STATE_TWO.get(name, "INVALID")
    if text in ("BOUNCED", "INVALID"):
        return text
    raise _invalid(name, f"{value!r} is not an opt-in state")


def custom_value(value: Any, where: str = "custom value") -> Any:
    """A JSON value as an Avro CustomValue union datum, its branch named explicitly."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int):
        return ("long", value)
    if isinstance(value, float):
        return ("double", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return (NS + "ListValue", {"items": [v for v in value if not isinstance(v, list | dict)]})
    if isinstance(value, dict):
        return (NS + "JsonObject", {"json": json.dumps(value)})
    raise _invalid(where, f"{value!r} has no JSON type")


def _timestamp(value: Any) -> int:
    """Epoch milliseconds from epoch milliseconds or ISO-8601 (UTC unless it says otherwise)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise _invalid("timestamp", f"{value!r} is neither epoch millis nor ISO-8601") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def _object(container: dict[str, Any], name: str, label: str | None = None) -> dict[str, Any]:
    """A nested object of the payload, absent as empty."""
    value = container.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(label or name, "must be a JSON object")
    return value


def _json_object(text: str, field: str) -> dict[str, Any]:
    """An object sent as a JSON string (Herogi's customAttributes and currentLocation)."""
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise _invalid(field, f"not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise _invalid(field, "must hold a JSON object")
    return parsed


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _content_id(payload: dict[str, Any], arrival_ms: int | None) -> str:
    """A messageId from the content (and the Kafka timestamp of a body with no time of its own)."""
    canonical = json.dumps([payload, arrival_ms], sort_keys=True, separators=(",", ":"))
    return "json-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
