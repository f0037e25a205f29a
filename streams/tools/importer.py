"""Turn the identify payloads people already have into IdentifyEvent records.

`identify-stream publish` reads JSON Lines or CSV. A line may be our own record as JSON, or the
body of a WebEngage `POST /users`, a Herogi `POST /v1/identify`, or one NotifyVisitors `nv`
entry: their field names (externalUserId, userID, mobileNo, first_name, email_opt_in, ...) map
onto ours, and their opt-in spellings (true/false, 1/0/2, OPT-IN) onto OPTIN/OPTOUT/BOUNCED/
INVALID. Custom values keep their JSON type: strings, integers, decimals, booleans, arrays and
objects. Checks that need the workspace's state (types, identifiers) stay with the worker.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.rules.events import SYSTEM_ATTRIBUTES

NS = "identitystream.v1."
ALIASES = {
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
ENVELOPE = ("messageId", "timestamp", "workspaceId", "anonymousId", "userId", "profileId", "erase")
OPERATIONS = ("setOnce", "unset", "unsetCustom", "increment", "append", "remove")
OPT_INS = {name for name in SYSTEM_ATTRIBUTES if name.endswith("OptIn")}
# NotifyVisitors' state 2: bounced for email, invalid for the phone channels
_STATE_TWO = {"emailOptIn": "BOUNCED"}


class UnusableLine(ValueError):
    """A line that cannot become an identify event; the message says why."""


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
    raise UnusableLine(f"{name}: {value!r} is not an opt-in state")


def custom_value(value: Any) -> Any:
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
    raise UnusableLine(f"custom value {value!r} has no JSON type")


def _timestamp(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise UnusableLine(f"timestamp {value!r} is neither epoch millis nor ISO-8601") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def to_record(payload: dict[str, Any], workspace_id: str, now_ms: int) -> dict[str, Any]:
    """An IdentifyEvent record from one payload in any of the supported shapes."""
    flat = {ALIASES.get(k, k): v for k, v in payload.items() if v is not None}
    for name, value in (flat.pop("user_attributes", None) or {}).items():  # NotifyVisitors
        flat.setdefault(ALIASES.get(name, name), value)
    nested_set = flat.pop("set", None) or {}
    attributes = {ALIASES.get(k, k): v for k, v in {**flat, **nested_set}.items()}
    custom = attributes.pop("custom", None) or {}
    if isinstance(custom, str):  # Herogi sends customAttributes as a JSON string
        custom = json.loads(custom)
    system = {name: attributes[name] for name in SYSTEM_ATTRIBUTES if name in attributes}
    if isinstance(system.get("location"), str):
        system["location"] = json.loads(system["location"])
    for name in OPT_INS & system.keys():
        system[name] = _opt_in(name, system[name])
    for name in ("birthDate", "phone"):
        if name in system:
            system[name] = str(system[name])
    unknown = set(attributes) - set(SYSTEM_ATTRIBUTES) - set(ENVELOPE) - set(OPERATIONS)
    if unknown:
        raise UnusableLine(
            f"unknown fields {sorted(unknown)}: put custom attributes in 'attributes'"
        )
    if not any(flat.get(k) for k in ("anonymousId", "userId", "profileId")):
        raise UnusableLine("needs an anonymousId, userId or profileId")
    record: dict[str, Any] = {
        "messageId": str(flat.get("messageId") or _content_id(payload)),
        "timestamp": _timestamp(flat["timestamp"]) if "timestamp" in flat else now_ms,
        "workspaceId": str(flat.get("workspaceId") or workspace_id),
        "anonymousId": _text(flat.get("anonymousId")),
        "userId": _text(flat.get("userId")),
        "profileId": _text(flat.get("profileId")),
        "set": {**system, "custom": {k: custom_value(v) for k, v in custom.items()}},
        "erase": bool(flat.get("erase", False)),
    }
    for op in OPERATIONS:
        if op in flat:
            record[op] = flat[op]
    if "setOnce" in record:
        once = dict(record["setOnce"])
        once_custom = once.pop("custom", {})
        record["setOnce"] = {**once, "custom": {k: custom_value(v) for k, v in once_custom.items()}}
    return record


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _content_id(payload: dict[str, Any]) -> str:
    """A messageId from the content: importing the same file twice is deduplicated."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return "import-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _csv_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def read_payloads(path: Path) -> Iterator[tuple[int, dict[str, Any] | UnusableLine]]:
    """(line number, payload or the reason it is unusable) for a .jsonl/.json or .csv file."""
    with path.open(newline="") as handle:
        if path.suffix.lower() == ".csv":
            for number, row in enumerate(csv.DictReader(handle), start=2):
                payload: dict[str, Any] = {}
                for column, cell in row.items():
                    if cell in (None, ""):
                        continue
                    if column.startswith(("attributes.", "custom.")):
                        payload.setdefault("attributes", {})[column.split(".", 1)[1]] = _csv_value(
                            cell
                        )
                    elif column in ("userId", "anonymousId", "messageId", "workspaceId", "phone"):
                        payload[column] = cell
                    else:
                        payload[column] = _csv_value(cell)
                yield number, payload
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
            except ValueError as exc:
                yield number, UnusableLine(f"not JSON: {exc}")
                continue
            if not isinstance(parsed, dict):
                yield number, UnusableLine("not a JSON object")
                continue
            yield number, parsed
