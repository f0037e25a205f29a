"""The generated stream as the producers people run would publish it: several formats, one topic.

The demo publishes part of a workload (``streams.tools.workload``) in each input format the
worker reads (README, Input formats), so that it shows them rather than claims them: Avro in
single-object encoding; Avro in Confluent's wire format, serialized by confluent-kafka's stock
``AvroSerializer`` against a schema registry; and JSON, as Segment identify calls and as WebEngage
``POST /users`` bodies, which the worker maps itself (``streams.rules.mapping``).

A record goes out as JSON only when JSON can say all of it: JSON has no datetime values, and these
two shapes only set attributes (no ``setOnce``, ``unset`` or other operations). Whatever format a
record goes out in, the worker reads the same record back (``tests/unit/tools/test_producers.py``),
so the profiles do not depend on the mix.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.runtime.output_encoding import inlined
from streams.tools.publisher import Message
from streams.tools.workload import NS
from topology.avro import IDENTIFY_EVENT

SINGLE_OBJECT = "Avro single-object"
CONFLUENT = "Avro registry-framed"  # Confluent's wire format
SEGMENT = "JSON Segment identify"
WEBENGAGE = "JSON WebEngage /users"
JUNK = "bytes of no format"
FORMATS = (SINGLE_OBJECT, CONFLUENT, SEGMENT, WEBENGAGE, JUNK)

Frame = Callable[[dict[str, Any]], bytes]
# The fields a record may fill to be said as JSON: who, when, and attributes to set.
_SAYABLE = {"messageId", "timestamp", "workspaceId", "anonymousId", "userId", "set"}
_OPT_INS = {"OPTIN": True, "OPTOUT": False}  # the booleans both sources send


def registry_framing(client: SchemaRegistryClient, topic: str) -> Frame:
    """Records framed by the stock ``AvroSerializer``, as a registry-based producer frames them.

    The serializer registers ``IdentifyEvent`` (inlined: one document) under the topic's
    TopicNameStrategy subject on first use, as producers with auto-registration do.
    """
    serializer = AvroSerializer(
        client, inlined(IDENTIFY_EVENT), conf={"auto.register.schemas": True}
    )
    context = SerializationContext(topic, MessageField.VALUE)
    return lambda record: serializer(record, context)


def segment_identify(record: dict[str, Any]) -> dict[str, Any] | None:
    """A Segment identify call saying what ``record`` says, or None when JSON cannot."""
    attributes = _attributes(record)
    if attributes is None:
        return None
    call = {
        "type": "identify",
        "messageId": record["messageId"],
        "timestamp": dt.datetime.fromtimestamp(record["timestamp"] / 1000, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "workspaceId": record["workspaceId"],
        "traits": {**attributes[0], **attributes[1]},
    }
    return {**call, **_ids(record)}


def webengage_body(record: dict[str, Any]) -> dict[str, Any] | None:
    """A WebEngage ``POST /users`` body saying what ``record`` says, or None when JSON cannot.

    WebEngage's bodies name no workspace, time or messageId; the body carries ours (a flat body
    takes every field of IdentifyEvent) and the request id, as the gateway would add them.
    """
    attributes = _attributes(record)
    if attributes is None:
        return None
    system, custom = attributes
    body = {
        "x-request-id": record["messageId"],
        "timestamp": record["timestamp"],
        "workspaceId": record["workspaceId"],
        **_ids(record),
        **system,
    }
    return {**body, "attributes": custom} if custom else body


def mix(messages: Iterable[Message], frame: Frame) -> list[tuple[str, Message]]:
    """Every message in the format it goes out in, its value as the bytes to publish.

    Records JSON can say go out in turn as Segment, WebEngage and Confluent-framed Avro, the others
    alternately as Confluent-framed and single-object Avro; bytes (the workload's junk) as they are.
    """
    mixed: list[tuple[str, Message]] = []
    sayable = other = 0
    for key, value in messages:
        if isinstance(value, bytes):
            mixed.append((JUNK, (key, value)))
            continue
        segment, webengage = segment_identify(value), webengage_body(value)
        if segment is not None and webengage is not None:
            turn = (SEGMENT, WEBENGAGE, CONFLUENT)[sayable % 3]
            sayable += 1
        else:
            turn = (CONFLUENT, SINGLE_OBJECT)[other % 2]
            other += 1
        if turn == SEGMENT:
            payload = json.dumps(segment).encode()
        elif turn == WEBENGAGE:
            payload = json.dumps(webengage).encode()
        elif turn == CONFLUENT:
            payload = frame(value)
        else:
            payload = IDENTIFY_EVENT.encode(value)
        mixed.append((turn, (key, payload)))
    return mixed


def _ids(record: dict[str, Any]) -> dict[str, str]:
    return {
        name: record[name] for name in ("userId", "anonymousId") if record.get(name) is not None
    }


def _attributes(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The system and custom attributes a record sets, as JSON; None when JSON cannot say it."""
    if {name for name, value in record.items() if value is not None} - _SAYABLE:
        return None
    values = dict(record.get("set") or {})
    custom = {
        name: _json_value(value) for name, value in (values.pop("custom", None) or {}).items()
    }
    if any(value is None for value in custom.values()):
        return None
    system = {
        name: _OPT_INS.get(value, value) if name.endswith("OptIn") else value
        for name, value in values.items()
        if value is not None
    }
    return system, custom


def _json_value(value: Any) -> Any:
    """A custom value as JSON says it; None for a datetime, which JSON has no type for."""
    if not isinstance(value, tuple):
        return value
    name, datum = value
    if name == NS + "ListValue":
        return datum["items"]
    if name == NS + "JsonObject":
        return json.loads(datum["json"])
    return None
