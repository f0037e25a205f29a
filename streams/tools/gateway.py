"""`identify-stream gateway`: the seeds' HTTP APIs in front of the input topic.

Many users will point an integration they already run at us rather than rewrite it, so the
gateway answers the seeds' own endpoints, with their auth schemes, limits and response shapes,
and publishes what they accept to ``identify-events`` as Avro single-object messages, built by
the same mapping (``streams.rules.mapping``) the workers apply to JSON on the topic:

* Herogi ``POST /v1/identify`` (Basic auth, ``base64(appId:key)``);
* WebEngage ``POST /v1/accounts/{licenseCode}/users`` and ``.../bulk-users`` (Bearer key;
  ``x-request-id`` becomes the messageId, so a retry within the dedupe window is a duplicate);
* NotifyVisitors ``POST /api/v1/user/create`` (``{"nv": [...]}``, at most 100 users),
  ``/api/v1/user/delete`` (an erasure) and ``/api/v1/user/userData`` (answered by a worker's
  profile lookup, ``streams.runtime.lookup``) (Basic auth, ``base64(brandID:secretKey)``);
* Heap ``POST /api/v1/identify`` and ``/api/add_user_properties`` (single or ``users``;
  ``app_id`` in the body names the workspace; Bearer key).

At-least-once: a 2xx is answered only once the broker has acknowledged every message of the call
(idempotent producer, ``acks=all``: ``streams.runtime.delivery.Outbox``), so a gateway that
crashes has lost nothing it accepted; a call it could not get acknowledged in time is answered
503 and may be retried with the same ``x-request-id``. The seeds' limits (ids of at most 100
characters, batches of at most 100, a bounded body) are refused whole, 400 or 413, before
anything is produced, so a call is never half accepted for a reason the caller could fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from streams.rules.identity import IdKind, derive_profile_id
from streams.rules.mapping import Unmappable, encode, to_record
from streams.runtime.delivery import Outbox, Record
from streams.runtime.settings import Settings
from streams.tools.gateway_auth import (
    DEFAULT_RATE_PER_MINUTE,
    Keys,
    RateLimiter,
    Workspace,
    credential,
)

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 100  # WebEngage's and NotifyVisitors' limit on userId and anonymousId
MAX_BATCH = 100  # NotifyVisitors' users per call; the gateway's for every batch
IDENTIFIERS = ("userId", "anonymousId")


@dataclass(frozen=True)
class GatewaySettings:
    """The gateway's own settings; Kafka, topics and the workers' lookup come from ``Settings``.

    From IDENTITY_STREAM_GATEWAY_BIND, _PORT, _KEYS (a JSON file or the JSON itself, see
    ``streams.tools.gateway_auth``), _RATE_PER_MINUTE (the default of workspaces that set
    none), _MAX_BODY_BYTES and _ACK_TIMEOUT_S (how long a call waits for the broker).
    """

    settings: Settings
    keys: Keys
    bind: str = "127.0.0.1"
    port: int = 8088
    max_body_bytes: int = 1 << 20
    ack_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        e = dict(os.environ if env is None else env)
        source = e.get("IDENTITY_STREAM_GATEWAY_KEYS")
        if not source:
            raise ValueError(
                "IDENTITY_STREAM_GATEWAY_KEYS is not set: without API keys the gateway would "
                "refuse every call (a JSON file's path, or the JSON itself; see README)"
            )
        rate = float(e.get("IDENTITY_STREAM_GATEWAY_RATE_PER_MINUTE", DEFAULT_RATE_PER_MINUTE))
        return cls(
            settings=Settings.from_env(e),
            keys=Keys.load(source, rate),
            bind=e.get("IDENTITY_STREAM_GATEWAY_BIND", cls.bind),
            port=int(e.get("IDENTITY_STREAM_GATEWAY_PORT", cls.port)),
            max_body_bytes=int(e.get("IDENTITY_STREAM_GATEWAY_MAX_BODY_BYTES", cls.max_body_bytes)),
            ack_timeout_s=float(e.get("IDENTITY_STREAM_GATEWAY_ACK_TIMEOUT_S", cls.ack_timeout_s)),
        )

    @property
    def lookup_url(self) -> str:
        """A worker's profile lookup pages (IDENTITY_STREAM_WEB_HOST and _PORT)."""
        return f"http://{self.settings.web_host}:{self.settings.web_port}"


class Sink(Protocol):
    """Where accepted messages go: ``Outbox`` in production, a fake in the contract tests."""

    def deliver(self, records: list[Record]) -> Awaitable[None]: ...


# None when the gateway can take calls, else why not (shown on /health).
Health = Callable[[], Awaitable[str | None]]


class Refused(Exception):
    """A call answered with an error, in the shape of the seed it was made to."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Seed:
    """How one seed API authenticates and answers errors."""

    auth_scheme: str  # for WWW-Authenticate
    error_body: Callable[[int, str], dict[str, Any]]
    missing_identity: str  # its words for an entry that names no one

    def refuse(self, refused: Refused) -> web.Response:
        headers = dict(refused.headers)
        if refused.status == 401:
            headers["WWW-Authenticate"] = self.auth_scheme
        return web.json_response(
            self.error_body(refused.status, str(refused)), status=refused.status, headers=headers
        )


WEBENGAGE = Seed(
    "Bearer",
    lambda status, message: {"response": {"status": "error", "message": f"Error: {message}"}},
    "userId and anonymousId cannot be empty.",
)
HEROGI = Seed(
    "Basic",
    lambda status, message: {"status": "error", "message": message},
    "externalUserId or hgid is required",
)
NOTIFYVISITORS = Seed(
    "Basic",
    lambda status, message: {"message": message, "status_code": str(status)},
    "All records must contain userID",
)
HEAP = Seed("Bearer", lambda status, message: {"error": message}, "identity is required")


@dataclass(frozen=True)
class Call:
    """What a seed's body asks for: identify payloads, and the workspace it names, if any.

    ``batch`` names the body's list of entries (``nv``, ``users``) when it has one: entries are
    then told apart in messages and messageIds by their index.
    """

    entries: list[Any]
    named: str | None = None
    batch: str | None = None


Reader = Callable[[web.Request, Any], Call]
Answer = Callable[[list[dict[str, Any]]], web.Response]


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused(400, f"the body must be a JSON object ({what})")
    return body


def _list(body: dict[str, Any], field: str) -> list[Any]:
    entries = body.get(field)
    if not isinstance(entries, list) or not entries:
        raise Refused(400, f"'{field}' must be a non-empty list of users")
    return entries


def _webengage_user(request: web.Request, body: Any) -> Call:
    return Call([_object(body, "one user")], request.match_info["license_code"])


def _webengage_bulk(request: web.Request, body: Any) -> Call:
    users = _list(_object(body, '{"users": [...]}'), "users")
    return Call(users, request.match_info["license_code"], "users")


def _herogi(request: web.Request, body: Any) -> Call:
    return Call([_object(body, "one user")])


def _nv_create(request: web.Request, body: Any) -> Call:
    return Call(_list(_object(body, '{"nv": [...]}'), "nv"), batch="nv")


def _nv_delete(request: web.Request, body: Any) -> Call:
    user_id = _object(body, '{"userID": ...}').get("userID")
    if user_id in (None, ""):
        raise Refused(400, "userID is required")
    return Call([{"userID": user_id, "erase": True}])


def _heap_app(body: Any) -> tuple[dict[str, Any], str]:
    body = _object(body, '{"app_id": ..., "identity": ...}')
    if body.get("app_id") in (None, ""):
        raise Refused(400, "app_id is required")
    return body, str(body["app_id"])


def _heap_identify(request: web.Request, body: Any) -> Call:
    body, app_id = _heap_app(body)
    return Call([body], app_id)


def _heap_properties(request: web.Request, body: Any) -> Call:
    body, app_id = _heap_app(body)
    if "users" not in body:
        return Call([body], app_id)
    users = _list(body, "users")
    return Call([{"app_id": app_id, **_object(u, "a user")} for u in users], app_id, "users")


def _hgid(record: dict[str, Any]) -> str:
    """Herogi's id of the user: the profile the event addresses (our profileId)."""
    if record["profileId"]:
        return str(record["profileId"])
    if record["userId"]:
        return derive_profile_id(record["workspaceId"], IdKind.USER, record["userId"])
    return derive_profile_id(record["workspaceId"], IdKind.ANONYMOUS, record["anonymousId"])


def _queued(records: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"response": {"status": "queued"}}, status=201)


def _identified(records: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"status": "success", "hgid": _hgid(records[0])})


def _processed(records: list[dict[str, Any]]) -> web.Response:
    ids = [r["userId"] or r["anonymousId"] for r in records]
    return web.json_response({"userIDs": ids, "status_code": "200", "processed": len(ids)})


def _heap_ok(records: list[dict[str, Any]]) -> web.Response:
    return web.Response(status=200)


class Metrics:
    """The gateway's Prometheus metrics, in a registry of their own as the worker's are."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "identity_stream_gateway_requests",
            "HTTP calls by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.messages = Counter(
            "identity_stream_gateway_messages",
            "Identify messages acknowledged by the broker, by endpoint",
            ["endpoint"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "identity_stream_gateway_request_seconds",
            "Time to answer a call (for accepted calls: until the broker acknowledged)",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )


class Gateway:
    """The HTTP handlers and what they share: keys, rate limits, the sink, the lookup client."""

    def __init__(self, settings: GatewaySettings, sink: Sink, health: Health) -> None:
        self.settings = settings
        self.sink = sink
        self.health = health
        self.topic = settings.settings.topology().identify_events.name
        self.limits = RateLimiter()
        self.metrics = Metrics()
        self._lookup: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Future[None]] = set()

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.max_body_bytes, middlewares=[self._measure]
        )
        endpoints: list[tuple[str, str, Seed, Reader, Answer]] = [
            ("/v1/identify", "herogi_identify", HEROGI, _herogi, _identified),
            (
                "/v1/accounts/{license_code}/users",
                "webengage_users",
                WEBENGAGE,
                _webengage_user,
                _queued,
            ),
            (
                "/v1/accounts/{license_code}/bulk-users",
                "webengage_bulk_users",
                WEBENGAGE,
                _webengage_bulk,
                _queued,
            ),
            (
                "/api/v1/user/create",
                "notifyvisitors_create",
                NOTIFYVISITORS,
                _nv_create,
                _processed,
            ),
            (
                "/api/v1/user/delete",
                "notifyvisitors_delete",
                NOTIFYVISITORS,
                _nv_delete,
                _processed,
            ),
            ("/api/v1/identify", "heap_identify", HEAP, _heap_identify, _heap_ok),
            (
                "/api/add_user_properties",
                "heap_add_user_properties",
                HEAP,
                _heap_properties,
                _heap_ok,
            ),
        ]
        for path, name, seed, read, answer in endpoints:
            app.router.add_post(path, self._endpoint(name, seed, read, answer), name=name)
        for method in ("GET", "POST"):
            app.router.add_route(
                method, "/api/v1/user/userData", self.user_data, name="notifyvisitors_user_data"
            )
        app.router.add_get("/health", self.show_health, name="health")
        app.router.add_get("/metrics", self.show_metrics, name="metrics")
        app.on_startup.append(self._open_lookup)
        app.on_cleanup.append(self._close_lookup)
        return app

    def _endpoint(
        self, name: str, seed: Seed, read: Reader, answer: Answer
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                workspace = self._admit(request)
                call = read(request, await self._body(request))
                if call.named is not None and not workspace.is_named(call.named):
                    raise Refused(401, f"this key is not valid for {call.named!r}")
                if len(call.entries) > MAX_BATCH:
                    raise Refused(
                        400, f"{len(call.entries)} users in one call: at most {MAX_BATCH}"
                    )
                records, messages = self._messages(request, workspace, call, seed)
                await self._deliver(messages)
            except Refused as refused:
                return seed.refuse(refused)
            self.metrics.messages.labels(name).inc(len(messages))
            return answer(records)

        return handle

    def _admit(self, request: web.Request) -> Workspace:
        """The caller's workspace (401 without a valid key), within its rate limit (429)."""
        workspace = self.settings.keys.authenticate(
            credential(request.headers.get("Authorization"))
        )
        if workspace is None:
            raise Refused(401, "missing or invalid API key")
        wait = self.limits.retry_after(workspace)
        if wait is not None:
            raise Refused(
                429,
                f"rate limit of {workspace.rate_per_minute:g} calls per minute reached",
                {"Retry-After": str(wait)},
            )
        return workspace

    async def _body(self, request: web.Request) -> Any:
        limit = self.settings.max_body_bytes
        too_large = Refused(413, f"the body is larger than {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise too_large from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise Refused(400, f"the body is not JSON: {exc}") from exc

    def _messages(
        self, request: web.Request, workspace: Workspace, call: Call, seed: Seed
    ) -> tuple[list[dict[str, Any]], list[Record]]:
        """Each entry as an IdentifyEvent record and its Kafka message; any unfit one refuses
        the whole call (400), naming the entry, before anything is produced."""
        now = time.time_ns() // 1_000_000
        request_id = request.headers.get("x-request-id")
        records: list[dict[str, Any]] = []
        messages: list[Record] = []
        for index, entry in enumerate(call.entries):
            where = f"{call.batch}[{index}]: " if call.batch else ""
            if not isinstance(entry, dict):
                raise Refused(400, f"{where}a user must be a JSON object")
            try:
                record = to_record(entry, workspace.id, now, arrival_ms=now)
                if request_id and not (entry.get("messageId") or entry.get("x-request-id")):
                    record["messageId"] = f"{request_id}-{index}" if call.batch else request_id
                if record["workspaceId"] != workspace.id:
                    raise Refused(
                        403,
                        f"{where}workspaceId {record['workspaceId']!r} is not this key's workspace",
                    )
                key = _identity(record, where, seed)
                value = encode(record)
            except Unmappable as exc:
                raise Refused(400, f"{where}{exc}") from exc
            records.append(record)
            messages.append(Record(self.topic, key.encode(), value))
        return records, messages

    async def _deliver(self, messages: list[Record]) -> None:
        """Until the broker has every message; past the timeout the call is answered 503 while
        the delivery goes on (a retry with the same x-request-id is then a duplicate)."""
        delivery = asyncio.ensure_future(self.sink.deliver(messages))
        self._in_flight.add(delivery)
        delivery.add_done_callback(self._in_flight.discard)
        timeout = self.settings.ack_timeout_s
        try:
            await asyncio.wait_for(asyncio.shield(delivery), timeout)
        except TimeoutError as exc:
            raise Refused(
                503,
                f"the broker did not acknowledge within {timeout:g}s; nothing is confirmed, "
                "retry with the same x-request-id",
                {"Retry-After": "5"},
            ) from exc

    async def user_data(self, request: web.Request) -> web.Response:
        """NotifyVisitors' profile read, answered by a worker's lookup by userId."""
        try:
            workspace = self._admit(request)
            if request.method == "GET":
                user_id = request.query.get("userID")
            else:
                user_id = _object(await self._body(request), '{"userID": ...}').get("userID")
            if user_id in (None, ""):
                raise Refused(400, "userID is required")
            status, found = await self._look_up(workspace.id, str(user_id))
            if status == 404:
                raise Refused(404, "User not found")
            if status == 503:
                raise Refused(503, "profiles are moving between workers", {"Retry-After": "2"})
            if status != 200:
                raise Refused(502, f"the profile lookup answered {status}")
        except Refused as refused:
            return NOTIFYVISITORS.refuse(refused)
        return web.json_response({"status_code": "200", "data": found})

    async def _look_up(self, workspace_id: str, user_id: str) -> tuple[int, Any]:
        assert self._lookup is not None
        quote = urllib.parse.quote
        path = f"/workspaces/{quote(workspace_id, safe='')}/users/{quote(user_id, safe='')}"
        token = self.settings.settings.api_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._lookup.get(
                self.settings.lookup_url + path, headers=headers
            ) as response:
                return response.status, await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Refused(502, f"the profile lookup is unreachable: {exc!r}") from exc

    async def show_health(self, request: web.Request) -> web.Response:
        """200 when the broker answers and the input topic exists, else 503 and why."""
        problem = await self.health()
        if problem is not None:
            return web.json_response({"status": "unavailable", "reason": problem}, status=503)
        return web.json_response({"status": "ok", "topic": self.topic})

    async def show_metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    @web.middleware
    async def _measure(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        endpoint = request.match_info.route.name or "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.seconds.labels(endpoint).observe(time.perf_counter() - started)

    async def _open_lookup(self, app: web.Application) -> None:
        self._lookup = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def _close_lookup(self, app: web.Application) -> None:
        if self._lookup is not None:
            await self._lookup.close()


def _identity(record: dict[str, Any], where: str, seed: Seed) -> str:
    """The message key (the caller's own id for the person), within the seeds' id limits; a
    profileId (Herogi's hgid) must be one of ours, a UUID."""
    for name in IDENTIFIERS:
        value = record.get(name)
        if value is not None and len(value.strip()) > MAX_ID_LENGTH:
            raise Refused(
                400,
                f"{where}{name} is {len(value.strip())} characters long: at most {MAX_ID_LENGTH}",
            )
    if record["profileId"] is not None:
        try:
            uuid.UUID(record["profileId"])
        except ValueError as exc:
            raise Refused(
                400, f"{where}profileId (hgid) {record['profileId']!r} is not a UUID"
            ) from exc
    key = record["userId"] or record["anonymousId"] or record["profileId"]
    if not key:
        raise Refused(400, f"{where}{seed.missing_identity}")
    return str(key)


class BrokerProbe:
    """Health: a metadata round-trip to the broker for the input topic, off the event loop."""

    def __init__(self, kafka_config: dict[str, str], topic: str) -> None:
        self._admin = AdminClient(kafka_config)
        self._topic = topic

    async def __call__(self) -> str | None:
        loop = asyncio.get_running_loop()
        try:
            metadata = await loop.run_in_executor(
                None, lambda: self._admin.list_topics(self._topic, timeout=3)
            )
        except KafkaException as exc:
            return f"broker unreachable: {exc}"
        found = metadata.topics.get(self._topic)
        if found is None or found.error is not None:
            return f"topic {self._topic} unavailable: {found.error if found else 'missing'}"
        return None


def run_gateway(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT; calls in flight are finished and the producer flushed first."""
    logging.basicConfig(
        level=settings.settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    kafka = settings.settings.kafka_config()
    outbox = Outbox(kafka, linger_ms=5)
    gateway = Gateway(
        settings, outbox, BrokerProbe(kafka, settings.settings.topology().identify_events.name)
    )
    app = gateway.app()

    async def close_outbox(app: web.Application) -> None:
        outbox.close()

    app.on_cleanup.append(close_outbox)
    log.info(
        "gateway for %s on http://%s:%d (workspaces: %s)",
        gateway.topic,
        settings.bind,
        settings.port,
        ", ".join(sorted(settings.keys.workspaces)),
    )
    web.run_app(app, host=settings.bind, port=settings.port, access_log=None, print=None)
