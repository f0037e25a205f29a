"""Writer schemas of Confluent-framed input, fetched from the schema registry before routing.

The routing rules are pure, so the lookups happen here: before the first stage routes a batch,
the schema ids of its Confluent-framed messages that are not cached yet are looked up (each id
once; ids are immutable in a registry, so a found schema is kept for good) and parsed with the
schemas they reference. The rules then read ``known``, the same dict, through
``InputFormats.writer_schemas``.

An id the registry answers 404 for is left out, so its messages are rejected (``unknown_schema``)
with their bytes; the answer is remembered for ``MISSING_TTL_S`` so junk does not hammer the
registry. Any other failure (unreachable, 5xx, refused credentials) is not the message's fault:
the batch is held and the lookup retried with exponential backoff, logged and counted, and never
dropped. A registry away for longer than ``IDENTITY_STREAM_STALL_TIMEOUT_S`` gets the worker
restarted by the stall watchdog, which then waits for it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from prometheus_client import CollectorRegistry, Counter

from streams.rules.input_formats import confluent_schema_id
from streams.runtime.settings import SchemaRegistry

logger = logging.getLogger(__name__)

MISSING_TTL_S = 60.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


def for_settings(
    registry: SchemaRegistry, metrics: CollectorRegistry | None = None
) -> WriterSchemas | None:
    """A resolver for the configured registry; None when there is none."""
    if registry.url is None:
        return None
    # One attempt per call: the retries are ours, awaited, so the worker stays responsive.
    config = {**registry.client_config(), "max.retries": 0, "timeout": 10}
    return WriterSchemas(SchemaRegistryClient(config), metrics)


class WriterSchemas:
    """The parsed writer schemas of the input's Confluent-framed messages, by schema id."""

    def __init__(
        self,
        client: Any,
        metrics: CollectorRegistry | None = None,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.known: dict[int, Any] = {}  # id -> parsed Avro schema, or None: not readable Avro
        self._missing: dict[int, float] = {}  # id -> when the registry last said 404
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._errors = Counter(
            "identity_stream_schema_registry_errors",
            "Failed schema registry lookups (each one retried; the batch waits)",
            registry=metrics,
        )
        self._unknown = Counter(
            "identity_stream_schema_registry_unknown_ids",
            "Schema ids the registry does not hold (their messages: unknown_schema)",
            registry=metrics,
        )

    async def resolve(self, values: Iterable[bytes | None]) -> None:
        """Make ``known`` hold every schema id of ``values`` that the registry holds.

        Returns only when each id is found or answered 404: a registry that fails holds the
        batch, retrying with backoff.
        """
        now = self._clock()
        wanted = {
            schema_id
            for value in values
            if (schema_id := confluent_schema_id(value)) is not None
            and schema_id not in self.known
            and not self._recently_missing(schema_id, now)
        }
        for schema_id in sorted(wanted):
            await self._resolve(schema_id)

    def _recently_missing(self, schema_id: int, now: float) -> bool:
        missing_since = self._missing.get(schema_id)
        return missing_since is not None and now - missing_since < MISSING_TTL_S

    async def _resolve(self, schema_id: int) -> None:
        attempt = 0
        while True:
            try:
                schemas = await asyncio.to_thread(self._fetch, schema_id)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    self._missing[schema_id] = self._clock()
                    self._unknown.inc()
                    logger.warning(
                        "schema id %d is not in the schema registry: its messages are "
                        "rejected (unknown_schema)",
                        schema_id,
                    )
                    return
                failure: Exception = exc
            except Exception as exc:  # unreachable, timed out, a broken answer
                failure = exc
            else:
                self.known[schema_id] = _parse(schema_id, schemas)
                self._missing.pop(schema_id, None)
                return
            self._errors.inc()
            delay = min(self._max_backoff_s, self._first_backoff_s * 2**attempt)
            attempt += 1
            logger.warning(
                "schema registry lookup of schema id %d failed (attempt %d: %s: %s); "
                "the batch waits, retrying in %.1fs",
                schema_id,
                attempt,
                type(failure).__name__,
                failure,
                delay,
            )
            await asyncio.sleep(delay)

    def _fetch(self, schema_id: int) -> list[Schema]:
        """The schema of ``schema_id`` after every schema it references, each once (I/O only:
        a failure here is the registry's, and is retried)."""
        ordered: list[Schema] = []
        seen: set[tuple[str, int]] = set()

        def visit(schema: Schema) -> None:
            for reference in schema.references or ():
                if (reference.subject, reference.version) not in seen:
                    seen.add((reference.subject, reference.version))
                    visit(self.client.get_version(reference.subject, reference.version).schema)
            ordered.append(schema)

        visit(self.client.get_schema(schema_id))
        return ordered


def _parse(schema_id: int, schemas: list[Schema]) -> Any:
    """The last schema parsed with the named types of those before it; None if it is not Avro
    or not readable (its messages are then refused, not waited for)."""
    if any((schema.schema_type or "AVRO") != "AVRO" for schema in schemas):
        logger.warning(
            "schema id %d is not an Avro schema: its messages are rejected (schema_mismatch)",
            schema_id,
        )
        return None
    named: dict[str, Any] = {}
    try:
        parsed = [
            fastavro.parse_schema(json.loads(schema.schema_str), named_schemas=named)
            for schema in schemas
        ]
    except Exception as exc:  # JSON or Avro errors of a schema someone registered
        logger.warning(
            "schema id %d is not a readable Avro schema (%s: %s): its messages are rejected "
            "(schema_mismatch)",
            schema_id,
            type(exc).__name__,
            exc,
        )
        return None
    return parsed[-1]
