"""How the worker frames its Avro outputs: single-object (no registry) or Confluent's wire format.

Segment builders read ``profiles`` with stock tools (Kafka Connect, ksqlDB, Flink, Spark), and
those expect Confluent's framing: a zero magic byte, the 4-byte big-endian id the registry gave
the writer schema, then the Avro body. With ``IDENTITY_STREAM_OUTPUT_FORMAT=confluent`` the
worker registers each output's schema at start-up under the TopicNameStrategy subject
(``<topic>-value``), refuses to start when the registry finds it incompatible with what is
registered there (naming the fields that break it), and then frames every record with the id it
got. The registry is never called on the hot path: the 5-byte header is made once per topic and
fastavro writes the body behind it, exactly as for single-object encoding.

Schemas are registered fully inlined (every named type defined at its first use), not with
references: a reader needs one registry call per schema id, and every stock deserializer handles
that form. Tombstones stay ``None`` values and are never framed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from streams.runtime.settings import Settings
from topology.avro import AvroSchema
from topology.topics import TopicSpec, Topology

MAGIC = b"\x00"

Encode = Callable[[TopicSpec, dict[str, Any]], bytes]


class OutputSchemaRefused(RuntimeError):
    """The registry refused an output schema, or could not be asked: the worker must not start."""


def single_object(spec: TopicSpec, record: dict[str, Any]) -> bytes:
    """Avro single-object encoding (topology.avro), the default: no registry needed to read it."""
    assert spec.schema is not None  # every output topic declares its schema
    return spec.schema.encode(record)


class ConfluentFraming:
    """Confluent's wire format with the schema ids registered at start-up, one header per topic."""

    def __init__(self, registered: dict[str, tuple[int, AvroSchema]]) -> None:
        self.ids = {topic: schema_id for topic, (schema_id, _) in registered.items()}
        self._writers = {
            topic: (MAGIC + schema_id.to_bytes(4, "big"), schema.parsed)
            for topic, (schema_id, schema) in registered.items()
        }

    def __call__(self, spec: TopicSpec, record: dict[str, Any]) -> bytes:
        header, parsed = self._writers[spec.name]
        out = io.BytesIO()
        out.write(header)
        fastavro.schemaless_writer(out, parsed, record)
        return out.getvalue()


def outputs(topology: Topology) -> tuple[TopicSpec, ...]:
    """The Avro topics the worker publishes for others to read."""
    return (topology.profiles, topology.profile_merges, topology.rejections)


def subject(topic: str) -> str:
    """Confluent's TopicNameStrategy for record values, the default of every stock serde."""
    return f"{topic}-value"


def inlined(schema: AvroSchema) -> str:
    """The schema as one self-contained JSON document, as a registry stores it.

    fastavro's loaded form already defines each named type once, at its first use, and refers to
    it by full name afterwards; only fastavro's own bookkeeping keys have to go.
    """

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not k.startswith("__")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(schema.parsed))


def encoder(settings: Settings) -> Encode:
    """The encoder the settings ask for; for Confluent's format, registers the schemas first."""
    if settings.output_format == "single-object":
        return single_object
    if settings.schema_registry.url is None:
        raise OutputSchemaRefused(
            "IDENTITY_STREAM_OUTPUT_FORMAT=confluent needs a schema registry: "
            "set SCHEMA_REGISTRY_URL (and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO if it asks)"
        )
    client = SchemaRegistryClient(settings.schema_registry.client_config())
    registered = {}
    for spec in outputs(settings.topology()):
        assert spec.schema is not None
        schema_id = register(client, spec.name, spec.schema, settings.schema_registry.url)
        registered[spec.name] = (schema_id, spec.schema)
    return ConfluentFraming(registered)


def register(client: SchemaRegistryClient, topic: str, schema: AvroSchema, url: str) -> int:
    """The id of ``schema`` under ``topic``'s subject, registering it when it is new there.

    Registration is the compatibility check: the registry applies the subject's level (BACKWARD
    unless configured otherwise) and answers 409 when the schema breaks it; that refusal is
    explained field by field against what is registered. An identical schema already registered
    is only looked up, so a registry that refuses writes to this worker's credentials works too.
    """
    name = subject(topic)
    document = Schema(inlined(schema), "AVRO")
    try:
        try:
            found = client.lookup_schema(name, document).schema_id
            if found is not None:
                return found
        except SchemaRegistryError as error:
            if error.http_status_code != 404:  # 404: the subject or this schema is new
                raise
        return client.register_schema(name, document)
    except SchemaRegistryError as error:
        if error.http_status_code == 409:
            why = _explain(client, topic, schema, error.error_message)
            raise OutputSchemaRefused(why) from error
        raise OutputSchemaRefused(
            f"the schema registry at {url} refused {schema.name} under subject '{name}': {error}"
        ) from error
    except Exception as error:  # transport errors: unreachable, TLS, timeouts
        raise OutputSchemaRefused(
            f"cannot reach the schema registry at {url} to register {schema.name} under "
            f"subject '{name}': {error}"
        ) from error


def _level(client: SchemaRegistryClient, name: str) -> str:
    """The subject's compatibility level, else the registry's; only used to explain a refusal.

    Some registries answer NONE for a subject without its own level (Apicurio), which cannot be
    what refused a schema, so the global level is asked then.
    """
    try:
        level = client.get_compatibility(name)
    except SchemaRegistryError:
        level = "NONE"
    if level == "NONE":
        try:
            level = client.get_compatibility()
        except SchemaRegistryError:
            level = "BACKWARD"  # Confluent's default
    return level


def _explain(
    client: SchemaRegistryClient, topic: str, schema: AvroSchema, registry_says: str
) -> str:
    """The refusal in the worker's words: which fields break compatibility, in which version."""
    name = subject(topic)
    level = _level(client, name)
    mode = level.removesuffix("_TRANSITIVE")
    label = f"our {schema.name}"
    transitive = level.endswith("_TRANSITIVE")
    problems: list[str] = []
    try:
        for version in client.get_versions(name) if transitive else ["latest"]:
            registered = client.get_version(name, version)
            their_label = f"registered version {registered.version}"
            theirs = fastavro.parse_schema(json.loads(registered.schema.schema_str))
            if mode in ("BACKWARD", "FULL"):  # we must read what they wrote
                problems += incompatibilities(theirs, schema.parsed, their_label, label)
            if mode in ("FORWARD", "FULL"):  # they must read what we write
                problems += incompatibilities(schema.parsed, theirs, label, their_label)
    except Exception:  # e.g. a schema with references fastavro cannot parse alone
        pass  # the registry's own words below still say why
    found = "; ".join(dict.fromkeys(problems)) or "no field named by our check"
    return (
        f"refusing to start: {schema.parsed['name']} for topic '{topic}' is not {level}-"
        f"compatible with the schema registered under subject '{name}': {found}. "
        f"(registry: {registry_says}) Evolve the registered schema or the subject's "
        "compatibility level, delete the subject if nothing reads it yet, use another topic "
        "prefix (IDENTITY_STREAM_TOPIC_PREFIX), or publish single-object Avro without a "
        "registry (IDENTITY_STREAM_OUTPUT_FORMAT=single-object)."
    )


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_NAMED = ("record", "enum", "fixed")
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def incompatibilities(writer: Any, reader: Any, writer_label: str, reader_label: str) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` (Avro schema resolution), by field.

    Both are fastavro-parsed schemas. The registry's own verdict decides; this only names the
    fields, which registries do in their own words, if at all (Apicurio: JSON pointers).
    """
    resolution = _Resolution(_named(writer), _named(reader), writer_label, reader_label)
    resolution.check(writer, reader, _short(reader.get("name", "value")))
    return resolution.problems


def _named(schema: Any, found: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every named type of a parsed schema by full name (they are defined once, at first use)."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for branch in schema:
            _named(branch, found)
    elif isinstance(schema, dict):
        if _kind(schema) in _NAMED:
            found[schema["name"]] = schema
        for child in schema.get("fields", []):
            _named(child["type"], found)
        for key in ("items", "values"):
            if key in schema:
                _named(schema[key], found)
    return found


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _named_alike(writer: dict[str, Any], reader: dict[str, Any]) -> bool:
    return writer["name"] == reader["name"] or writer["name"] in reader.get("aliases", ())


def _kind(schema: Any) -> str:
    kind = schema["type"] if isinstance(schema, dict) else schema
    return "record" if kind == "error" else kind


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "|".join(_describe(branch) for branch in schema)
    if isinstance(schema, str):
        return schema if schema in _PRIMITIVES else _short(schema)
    kind = _kind(schema)
    if kind in _NAMED:
        return _short(schema["name"])
    if kind == "array":
        return f"array of {_describe(schema['items'])}"
    if kind == "map":
        return f"map of {_describe(schema['values'])}"
    logical = schema.get("logicalType")
    return f"{kind} ({logical})" if logical else kind


class _Resolution:
    """Avro's resolution rules (specification, "Schema Resolution"), collecting what fails."""

    def __init__(
        self,
        writer_names: dict[str, Any],
        reader_names: dict[str, Any],
        writer_label: str,
        reader_label: str,
    ) -> None:
        self.writer_names = writer_names
        self.reader_names = reader_names
        self.writer_label = writer_label
        self.reader_label = reader_label
        self.seen: set[tuple[str, str]] = set()  # record pairs checked (recursive schemas)
        self.problems: list[str] = []

    def _refuse(self, path: str, why: str) -> None:
        self.problems.append(f"{'field ' if '.' in path else ''}{path}: {why}")

    def _deref(self, schema: Any, names: dict[str, Any]) -> Any:
        return names.get(schema, schema) if isinstance(schema, str) else schema

    def _pick(self, writer: Any, options: list[Any]) -> Any:
        """The reader branch Avro resolves a written branch to: the first of the same type (and
        name), else the first it promotes to."""
        w = self._deref(writer, self.writer_names)
        kinds = [(option, self._deref(option, self.reader_names)) for option in options]
        for option, r in kinds:
            if _kind(r) == _kind(w) and (_kind(r) not in _NAMED or _named_alike(w, r)):
                return option
        return next(
            (option for option, r in kinds if _kind(r) in _PROMOTIONS.get(_kind(w), ())), None
        )

    def check(self, writer: Any, reader: Any, path: str) -> None:
        writer = self._deref(writer, self.writer_names)
        reader = self._deref(reader, self.reader_names)
        if isinstance(reader, list):
            for branch in writer if isinstance(writer, list) else [writer]:
                option = self._pick(branch, reader)
                if option is None:
                    self._refuse(
                        path,
                        f"{self.writer_label} writes {_describe(branch)}, which "
                        f"{self.reader_label} cannot read as {_describe(reader)}",
                    )
                else:
                    self.check(branch, option, path)
            return
        if isinstance(writer, list):
            for branch in writer:
                self.check(branch, reader, path)
            return
        w, r = _kind(writer), _kind(reader)
        if w != r:
            if r not in _PROMOTIONS.get(w, ()):
                self._refuse(
                    path,
                    f"{self.writer_label} writes {_describe(writer)}, which "
                    f"{self.reader_label} cannot read as {_describe(reader)}",
                )
            return
        if r in _NAMED and not self._same_name(writer, reader, path):
            return
        if r == "record":
            self._record(writer, reader, path)
        elif r == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                self._refuse(
                    path,
                    f"{self.writer_label} writes {_describe(reader)} symbols "
                    f"{', '.join(missing)}, which {self.reader_label} does not know "
                    "(and its enum has no default)",
                )
        elif r == "fixed" and writer["size"] != reader["size"]:
            self._refuse(
                path,
                f"{self.writer_label} writes {writer['size']} bytes, "
                f"{self.reader_label} reads {reader['size']}",
            )
        elif r == "array":
            self.check(writer["items"], reader["items"], f"{path}[]")
        elif r == "map":
            self.check(writer["values"], reader["values"], f"{path}{{}}")

    def _same_name(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> bool:
        if _named_alike(writer, reader):
            return True
        self._refuse(
            path,
            f"{self.writer_label} writes {writer['name']}, {self.reader_label} reads "
            f"{reader['name']}",
        )
        return False

    def _record(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> None:
        pair = (writer["name"], reader["name"])
        if pair in self.seen:
            return
        self.seen.add(pair)
        written = {field["name"]: field for field in writer["fields"]}
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", ())]
            match = next((written[n] for n in names if n in written), None)
            where = f"{path}.{field['name']}"
            if match is not None:
                self.check(match["type"], field["type"], where)
            elif "default" not in field:
                self._refuse(
                    where,
                    f"{self.reader_label} requires it (no default) and "
                    f"{self.writer_label} does not have it",
                )
