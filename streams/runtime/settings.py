"""Runtime settings, from environment variables only, so a worker, a test and a container agree.

Every name is prefixed IDENTITY_STREAM_ except KAFKA_BOOTSTRAP_SERVERS, the de-facto standard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from streams.rules.attribute_types import AttributeTypes, Catalog
from streams.rules.custom_attributes import AttributePolicy, LongStrings
from streams.rules.events import AFTER_ERASURE, AfterErasure
from streams.rules.identity import Blocklists
from streams.rules.input_formats import InputFormats
from streams.rules.steps import Policies
from topology.topics import Topology, declare

DEFAULT_BOOTSTRAP = "127.0.0.1:39092"  # the broker `make broker-start` runs (localkafka)
# How profiles, profile-merges and rejections are framed (streams.runtime.output_encoding).
OutputFormat = Literal["single-object", "confluent"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


_SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "protocol",
    "KAFKA_SASL_MECHANISM": "sasl_mechanism",
    "KAFKA_SASL_USERNAME": "sasl_username",
    "KAFKA_SASL_PASSWORD": "sasl_password",
    "KAFKA_SSL_CA_LOCATION": "ssl_ca_location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl_certificate_location",
    "KAFKA_SSL_KEY_LOCATION": "ssl_key_location",
}


@dataclass(frozen=True)
class Security:
    """How every Kafka client of the project authenticates: faust's and confluent-kafka's alike.

    From KAFKA_SECURITY_PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), KAFKA_SASL_MECHANISM
    (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD,
    KAFKA_SSL_CA_LOCATION, KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Security:
        return cls(**{attr: env[name] for name, attr in _SECURITY_ENV.items() if env.get(name)})

    def to_env(self) -> dict[str, str]:
        return {
            name: str(getattr(self, attr))
            for name, attr in _SECURITY_ENV.items()
            if getattr(self, attr) is not None
        }

    def librdkafka(self) -> dict[str, str]:
        """confluent-kafka (librdkafka) properties."""
        config = {"security.protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            config |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.sasl_username or "",
                "sasl.password": self.sasl_password or "",
            }
        for attribute, key in (
            ("ssl_ca_location", "ssl.ca.location"),
            ("ssl_certificate_location", "ssl.certificate.location"),
            ("ssl_key_location", "ssl.key.location"),
        ):
            if getattr(self, attribute):
                config[key] = getattr(self, attribute)
        return config


@dataclass(frozen=True)
class SchemaRegistry:
    """A Confluent-API schema registry (Confluent, Apicurio, Karapace, Redpanda), when one is used.

    From SCHEMA_REGISTRY_URL and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO (``user:password``), the
    names Confluent's own tools read. Without a URL the project is registry-free: inputs and
    outputs in Avro single-object encoding, JSON inputs.
    """

    url: str | None = None
    basic_auth_user_info: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SchemaRegistry:
        return cls(
            url=env.get("SCHEMA_REGISTRY_URL") or None,
            basic_auth_user_info=env.get("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO") or None,
        )

    def to_env(self) -> dict[str, str]:
        env = {"SCHEMA_REGISTRY_URL": self.url}
        env["SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"] = self.basic_auth_user_info
        return {name: value for name, value in env.items() if value is not None}

    def client_config(self) -> dict[str, str]:
        """``confluent_kafka.schema_registry.SchemaRegistryClient`` configuration."""
        if self.url is None:
            raise ValueError("no schema registry configured (SCHEMA_REGISTRY_URL)")
        config = {"url": self.url}
        if self.basic_auth_user_info:
            config["basic.auth.user.info"] = self.basic_auth_user_info
        return config


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    app_id: str = "identity-stream"
    topic_prefix: str = ""
    input_topic: str | None = None  # default: <prefix>identify-events
    partitions: int = 4
    replication_factor: int = 1
    data_dir: Path = Path(".data")
    # Worker processes on this host (streams.runtime.processes): one per core to use them all.
    processes: int = 1
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line
    web_bind: str = "127.0.0.1"  # the worker's HTTP pages (/counters/) stay local unless opened
    web_port: int = 6066
    web_host: str = "127.0.0.1"  # how other workers reach this one's pages
    api_token: str | None = None  # bearer token required by the lookup pages when set
    # How long a silent (crashed) worker keeps its partitions before the group moves them.
    session_timeout_s: float = 30.0
    commit_interval_s: float = 1.0
    # Each stage takes what its consumer has fetched, up to this many messages, and sends a
    # batch's records together (runtime.envelopes).
    batch_size: int = 1000
    # The longest the broker holds a stage's fetch that finds nothing new (librdkafka's
    # fetch.wait.max.ms; faust's own consumer has its own, app.FAUST_FETCH_MAX_WAIT_MS). It does
    # not bound a hop's latency: the broker answers a waiting fetch as soon as a record arrives
    # (hops of 2-3 ms at 20 events/s with 10 or 500). It sets how often an idle partition is
    # asked again: at 10 ms an idle worker cost the broker ~10 % of a core, at 500 nothing.
    fetch_max_wait_ms: int = 500
    dedupe_window_s: float = 4 * 3600.0  # WebEngage's x-request-id window, in event time
    # Warm copies of other workers' table partitions; 0 avoids faust's standby-recovery stalls.
    standby_replicas: int = 0
    # A worker with input waiting and nothing handled for this long exits to be restarted
    # (see streams.runtime.watchdog); 0 turns the watchdog off.
    stall_timeout_s: float = 120.0
    blocklist_file: Path | None = None  # extra junk identifiers, globally and per workspace
    security: Security = field(default_factory=Security)
    schema_registry: SchemaRegistry = field(default_factory=SchemaRegistry)
    # Explicit, not implied by a registry URL: switching the framing of the outputs breaks every
    # reader of them, while a registry may be configured only to decode inputs.
    output_format: OutputFormat = "single-object"  # or "confluent" (needs the schema registry)
    attributes: AttributePolicy = field(default_factory=AttributePolicy)
    attribute_catalog: Path | None = None  # declared custom attribute types, by workspace
    after_erasure: AfterErasure = "recreate"  # or "block": later events of the erased refused
    default_workspace: str | None = None  # of JSON input that names none (streams.rules.mapping)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        base = cls()
        return cls(
            bootstrap_servers=e.get("KAFKA_BOOTSTRAP_SERVERS", base.bootstrap_servers),
            app_id=e.get("IDENTITY_STREAM_APP_ID", base.app_id),
            topic_prefix=e.get("IDENTITY_STREAM_TOPIC_PREFIX", base.topic_prefix),
            input_topic=e.get("IDENTITY_STREAM_INPUT_TOPIC") or None,
            partitions=int(e.get("IDENTITY_STREAM_PARTITIONS", base.partitions)),
            replication_factor=int(
                e.get("IDENTITY_STREAM_REPLICATION_FACTOR", base.replication_factor)
            ),
            data_dir=Path(e.get("IDENTITY_STREAM_DATA_DIR", base.data_dir)),
            processes=_processes(e.get("IDENTITY_STREAM_PROCESSES", str(base.processes))),
            log_level=e.get("IDENTITY_STREAM_LOG_LEVEL", base.log_level),
            log_format=e.get("IDENTITY_STREAM_LOG_FORMAT", base.log_format),
            web_bind=e.get("IDENTITY_STREAM_WEB_BIND", base.web_bind),
            web_port=int(e.get("IDENTITY_STREAM_WEB_PORT", base.web_port)),
            web_host=e.get("IDENTITY_STREAM_WEB_HOST", base.web_host),
            api_token=e.get("IDENTITY_STREAM_API_TOKEN") or None,
            dedupe_window_s=float(e.get("IDENTITY_STREAM_DEDUPE_WINDOW_S", base.dedupe_window_s)),
            commit_interval_s=float(
                e.get("IDENTITY_STREAM_COMMIT_INTERVAL_S", base.commit_interval_s)
            ),
            batch_size=int(e.get("IDENTITY_STREAM_BATCH_SIZE", base.batch_size)),
            fetch_max_wait_ms=int(
                e.get("IDENTITY_STREAM_FETCH_MAX_WAIT_MS", base.fetch_max_wait_ms)
            ),
            session_timeout_s=float(
                e.get("IDENTITY_STREAM_SESSION_TIMEOUT_S", base.session_timeout_s)
            ),
            standby_replicas=int(e.get("IDENTITY_STREAM_STANDBY_REPLICAS", base.standby_replicas)),
            stall_timeout_s=float(e.get("IDENTITY_STREAM_STALL_TIMEOUT_S", base.stall_timeout_s)),
            attributes=AttributePolicy(
                reserved_prefix=e.get("IDENTITY_STREAM_RESERVED_PREFIX", "we_"),
                long_strings=LongStrings(e.get("IDENTITY_STREAM_LONG_STRINGS", "truncate")),
                max_per_type=int(e.get("IDENTITY_STREAM_MAX_ATTRIBUTES_PER_TYPE", 25)),
            ),
            attribute_catalog=Path(e["IDENTITY_STREAM_ATTRIBUTE_CATALOG"])
            if e.get("IDENTITY_STREAM_ATTRIBUTE_CATALOG")
            else None,
            after_erasure=_after_erasure(e.get("IDENTITY_STREAM_AFTER_ERASURE", "recreate")),
            default_workspace=e.get("IDENTITY_STREAM_DEFAULT_WORKSPACE") or None,
            security=Security.from_env(e),
            schema_registry=SchemaRegistry.from_env(e),
            output_format=_output_format(e.get("IDENTITY_STREAM_OUTPUT_FORMAT", "single-object")),
            blocklist_file=Path(e["IDENTITY_STREAM_BLOCKLIST_FILE"])
            if e.get("IDENTITY_STREAM_BLOCKLIST_FILE")
            else None,
        )

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in another process (a worker)."""
        optional = {
            "IDENTITY_STREAM_INPUT_TOPIC": self.input_topic,
            "IDENTITY_STREAM_API_TOKEN": self.api_token,
            "IDENTITY_STREAM_BLOCKLIST_FILE": self.blocklist_file,
            "IDENTITY_STREAM_ATTRIBUTE_CATALOG": self.attribute_catalog,
            "IDENTITY_STREAM_DEFAULT_WORKSPACE": self.default_workspace,
        }
        return {
            **self.security.to_env(),
            **self.schema_registry.to_env(),
            **{name: str(path) for name, path in optional.items() if path is not None},
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "IDENTITY_STREAM_APP_ID": self.app_id,
            "IDENTITY_STREAM_TOPIC_PREFIX": self.topic_prefix,
            "IDENTITY_STREAM_PARTITIONS": str(self.partitions),
            "IDENTITY_STREAM_REPLICATION_FACTOR": str(self.replication_factor),
            "IDENTITY_STREAM_DATA_DIR": str(self.data_dir),
            "IDENTITY_STREAM_PROCESSES": str(self.processes),
            "IDENTITY_STREAM_LOG_LEVEL": self.log_level,
            "IDENTITY_STREAM_LOG_FORMAT": self.log_format,
            "IDENTITY_STREAM_WEB_BIND": self.web_bind,
            "IDENTITY_STREAM_WEB_PORT": str(self.web_port),
            "IDENTITY_STREAM_WEB_HOST": self.web_host,
            "IDENTITY_STREAM_SESSION_TIMEOUT_S": str(self.session_timeout_s),
            "IDENTITY_STREAM_COMMIT_INTERVAL_S": str(self.commit_interval_s),
            "IDENTITY_STREAM_BATCH_SIZE": str(self.batch_size),
            "IDENTITY_STREAM_FETCH_MAX_WAIT_MS": str(self.fetch_max_wait_ms),
            "IDENTITY_STREAM_DEDUPE_WINDOW_S": str(self.dedupe_window_s),
            "IDENTITY_STREAM_STANDBY_REPLICAS": str(self.standby_replicas),
            "IDENTITY_STREAM_STALL_TIMEOUT_S": str(self.stall_timeout_s),
            "IDENTITY_STREAM_RESERVED_PREFIX": self.attributes.reserved_prefix,
            "IDENTITY_STREAM_LONG_STRINGS": str(self.attributes.long_strings),
            "IDENTITY_STREAM_MAX_ATTRIBUTES_PER_TYPE": str(self.attributes.max_per_type),
            "IDENTITY_STREAM_AFTER_ERASURE": self.after_erasure,
            "IDENTITY_STREAM_OUTPUT_FORMAT": self.output_format,
        }

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def policies(self) -> Policies:
        """What the rules need of these settings, the blocklist and catalog files read once."""
        return Policies(
            attributes=self.attributes,
            blocklists=Blocklists.from_config(_json_file(self.blocklist_file)),
            types=AttributeTypes(
                Catalog.from_config(_json_file(self.attribute_catalog)),
                self.attributes.max_per_type,
            ),
            after_erasure=self.after_erasure,
            dedupe_window_ms=int(self.dedupe_window_s * 1000),
            inputs=InputFormats(default_workspace=self.default_workspace),
        )

    def topology(self) -> Topology:
        return declare(self.app_id, self.topic_prefix, self.partitions, self.input_topic)

    def kafka_config(self) -> dict[str, str]:
        """librdkafka settings shared by every confluent-kafka client of the project."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.security.librdkafka()}


def _json_file(path: Path | None) -> dict[str, Any]:
    return {} if path is None else json.loads(Path(path).read_text())


def _processes(value: str) -> int:
    """A count, or ``auto``: one process per core this process may run on."""
    if value == "auto":
        return len(os.sched_getaffinity(0))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"IDENTITY_STREAM_PROCESSES is a positive number or auto: {value!r}")
    return int(value)


def _after_erasure(value: str) -> AfterErasure:
    if value not in AFTER_ERASURE:
        raise ValueError(f"IDENTITY_STREAM_AFTER_ERASURE is one of {AFTER_ERASURE}: {value!r}")
    return value  # type: ignore[return-value]


def _output_format(value: str) -> OutputFormat:
    if value not in OUTPUT_FORMATS:
        raise ValueError(f"IDENTITY_STREAM_OUTPUT_FORMAT is one of {OUTPUT_FORMATS}: {value!r}")
    return value  # type: ignore[return-value]
