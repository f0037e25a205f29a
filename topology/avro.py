"""Avro on the wire, as Avro's own single-object encoding.

There is no schema registry on the machines this runs on, so every message carries the 8-byte
CRC-64-AVRO fingerprint of its writer schema after the two-byte marker ``C3 01`` (Avro spec,
"Single-object encoding"). A reader can then tell "not Avro", "Avro of a schema I do not know"
and "corrupt body" apart, which is what the rejections topic needs to explain a bad message.
Java's ``BinaryMessageEncoder`` and other Avro libraries read the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from streams.rules import avro_bodies
from topology.avro_codec import (
    Reader,
    Unsupported,
    Writer,
    compile_reader,
    compile_writer,
    unsupported,
)

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "avro_schemas"
MARKER = b"\xc3\x01"
HEADER_LEN = len(MARKER) + 8


class AvroDecodeError(ValueError):
    """A message that cannot be read; ``reason`` is the stable code used on the rejections topic."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AvroSchema:
    """One record schema with its single-object header, able to encode and decode payloads."""

    def __init__(self, name: str, read: Reader | None = None, write: Writer | None = None) -> None:
        """``read``, ``write``: the fast path's, if not ``avro_codec``'s (the input's reader
        and the outputs' writers are generated and compiled: topology.avro_source)."""
        self.name = name
        self.parsed = load_schema(SCHEMA_DIR / f"identitystream.v1.{name}.avsc")
        canonical = to_parsing_canonical_form(self.parsed)
        # fastavro prints the fingerprint as a big-endian hex number; the spec stores little-endian.
        self.header = MARKER + int(fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")
        # the fast path (topology.avro_codec); whatever it does not take, fastavro does
        named = self.parsed["__named_schemas"]
        try:
            self._read = read or compile_reader(self.parsed, named)
        except Unsupported:
            self._read = unsupported
        try:
            self._write = write or compile_writer(self.parsed, named)
        except Unsupported:
            self._write = unsupported

    def encode(self, record: dict[str, Any]) -> bytes:
        out = bytearray(self.header)
        try:
            self._write(out, record)
            return bytes(out)
        except Exception:  # not the fast path's (avro_codec): fastavro writes it, or refuses
            pass
        out = io.BytesIO()
        out.write(self.header)
        fastavro.schemaless_writer(out, self.parsed, record)
        return out.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """Decode one message; raise AvroDecodeError with a reason code on anything unreadable."""
        if not data:
            raise AvroDecodeError("undecodable", "empty message value")
        if data[:2] != MARKER or len(data) < HEADER_LEN:
            raise AvroDecodeError(
                "undecodable", "not an Avro single-object message (missing C3 01 marker)"
            )
        if data[:HEADER_LEN] != self.header:
            raise AvroDecodeError(
                "schema_mismatch",
                f"written with schema fingerprint {data[2:HEADER_LEN].hex()}, "
                f"expected {self.name} {self.header[2:].hex()}",
            )
        try:
            record, end = self._read(data, HEADER_LEN)
        except Exception:  # not the fast path's (avro_codec): fastavro reads it, or refuses
            record, end = self._read_slowly(data)
        if end != len(data):
            raise AvroDecodeError(
                "undecodable", f"{len(data) - end} trailing bytes after {self.name} body"
            )
        assert isinstance(record, dict)
        return record

    def _read_slowly(self, data: bytes) -> tuple[Any, int]:
        """fastavro's reading of the body: its record and where it ended, or its refusal."""
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(
                body, self.parsed, None, return_record_name=True, return_record_name_override=True
            )
        except Exception as exc:  # fastavro raises several types for corrupt bodies
            raise AvroDecodeError("undecodable", f"corrupt {self.name} body: {exc}") from exc
        return record, body.tell()


IDENTIFY_EVENT = AvroSchema("IdentifyEvent", read=avro_bodies.read_identify_event)
PROFILE = AvroSchema("Profile", write=avro_bodies.write_profile)
REJECTION = AvroSchema("Rejection", write=avro_bodies.write_rejection)
PROFILE_MERGE = AvroSchema("ProfileMerge", write=avro_bodies.write_profile_merge)
