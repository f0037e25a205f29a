"""Which format an input message is in, decided per message from its first byte, and its record.

Producers publish what they already speak, so the input topic takes, message by message:

* ``C3 01``: Avro single-object encoding of IdentifyEvent (``topology.avro``);
* ``00`` and a 4-byte big-endian schema id: Confluent's wire format, Avro written with a schema
  the registry holds, read as IdentifyEvent by Avro schema resolution (a producer a version
  ahead may add optional fields: they are skipped). Looking a schema up is I/O, so the runtime
  resolves the ids of a batch before routing it and hands the schemas over
  (``InputFormats.writer_schemas``);
* ``{`` (after white space): JSON in one of the shapes of ``streams.rules.mapping``.

No JSON text starts with 00 or C3, so the first byte decides without guessing. Whatever cannot be
read is refused whole with its bytes kept: ``undecodable`` (none of these formats, or broken in
its own), ``unknown_schema`` (a schema id the registry does not hold), ``schema_mismatch`` (Avro
that does not resolve to IdentifyEvent), ``unrecognised_json`` (JSON of no known shape) and
``invalid_field`` (a known shape with a field that cannot be read).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import fastavro
from fastavro.read import SchemaResolutionError

from streams.rules.mapping import Unmappable, encode, to_record
from topology.avro import IDENTIFY_EVENT, MARKER, AvroDecodeError

CONFLUENT_MAGIC: Final = 0
CONFLUENT_HEADER_LEN: Final = 5  # magic byte and 4-byte schema id
_JSON_START: Final = b"{["


@dataclass(frozen=True)
class InputFormats:
    """What reading the input needs beyond the bytes, filled by the runtime.

    ``writer_schemas``: the registry's schemas by id, parsed by fastavro, for the ids of the
    messages being routed; an id mapped to None is in the registry but not an Avro schema this
    worker can parse. None when no registry is configured: Confluent-framed input is then
    ``undecodable``. ``default_workspace``: the workspace of JSON bodies that name none.
    """

    writer_schemas: Mapping[int, Any] | None = None
    default_workspace: str | None = None


class Unreadable(AvroDecodeError):
    """An input message that cannot be read as an identify event; ``reason`` says why."""


def confluent_schema_id(raw: bytes | None) -> int | None:
    """The writer schema id of a message in Confluent's wire format, else None."""
    if raw and raw[0] == CONFLUENT_MAGIC and len(raw) >= CONFLUENT_HEADER_LEN:
        return int.from_bytes(raw[1:CONFLUENT_HEADER_LEN], "big")
    return None


def decode(
    raw: bytes | None, formats: InputFormats, now: int, arrival_ms: int | None = None
) -> dict[str, Any]:
    """The IdentifyEvent record (as Avro decodes it) of one input message in any format.

    ``arrival_ms`` is the message's Kafka timestamp (see ``mapping.to_record``). Raises
    ``AvroDecodeError`` (``Unreadable`` included) with the reason code.
    """
    if not raw:
        raise Unreadable("undecodable", "empty message value")
    if raw[:2] == MARKER:
        return IDENTIFY_EVENT.decode(raw)
    schema_id = confluent_schema_id(raw)
    if schema_id is not None:
        return _confluent(raw, schema_id, formats.writer_schemas)
    start = raw.lstrip()[:1]
    if start and start in _JSON_START:
        return _json(raw, formats.default_workspace, now, arrival_ms)
    raise Unreadable(
        "undecodable",
        "none of the input formats: Avro single-object (C3 01), Confluent-framed Avro (00), JSON",
    )


def _confluent(
    raw: bytes, schema_id: int, writer_schemas: Mapping[int, Any] | None
) -> dict[str, Any]:
    """Avro in Confluent's wire format, resolved from its writer schema to IdentifyEvent."""
    if writer_schemas is None:
        raise Unreadable(
            "undecodable",
            f"Confluent-framed Avro (schema id {schema_id}) needs a schema registry: "
            "set SCHEMA_REGISTRY_URL",
        )
    if schema_id not in writer_schemas:
        raise Unreadable("unknown_schema", f"schema id {schema_id} is not in the schema registry")
    writer = writer_schemas[schema_id]
    if writer is None:
        raise Unreadable("schema_mismatch", f"schema id {schema_id} is not a readable Avro schema")
    body = io.BytesIO(raw)
    body.seek(CONFLUENT_HEADER_LEN)
    try:
        record = fastavro.schemaless_reader(
            body,
            writer,
            IDENTIFY_EVENT.parsed,
            return_record_name=True,
            return_record_name_override=True,
        )
    except SchemaResolutionError as exc:
        raise Unreadable(
            "schema_mismatch", f"schema id {schema_id} does not resolve to IdentifyEvent: {exc}"
        ) from exc
    except Exception as exc:  # fastavro raises several types for corrupt bodies
        raise Unreadable("undecodable", f"corrupt body of schema id {schema_id}: {exc}") from exc
    if body.tell() != len(raw):
        raise Unreadable(
            "undecodable", f"{len(raw) - body.tell()} trailing bytes after schema id {schema_id}"
        )
    assert isinstance(record, dict)
    return record


def _json(
    raw: bytes, default_workspace: str | None, now: int, arrival_ms: int | None
) -> dict[str, Any]:
    """A JSON body mapped to IdentifyEvent, then through Avro: the same contract as Avro input."""
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise Unreadable("undecodable", f"not JSON: {exc}") from exc
    try:
        return IDENTIFY_EVENT.decode(encode(to_record(payload, default_workspace, now, arrival_ms)))
    except Unmappable as exc:
        raise Unreadable(exc.reason, str(exc)) from exc
