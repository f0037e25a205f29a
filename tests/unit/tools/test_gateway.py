"""The gateway's HTTP contract: each seed endpoint, its answers and errors, auth and rate limits.

The broker is replaced by a sink that records what would be produced (and can hold back its
acknowledgement); the worker's lookup by a small aiohttp server.
"""

import asyncio
import base64
import hashlib
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.rules.identity import IdKind, derive_profile_id
from streams.runtime.delivery import Outbox
from streams.runtime.settings import Settings
from streams.tools.gateway import Gateway, GatewaySettings
from streams.tools.gateway_auth import Credential, Keys, RateLimiter, Workspace, credential
from streams.tools.harness import free_ports
from topology.avro import IDENTIFY_EVENT

KEY = "we-key"
KEYS = {
    "acme": {"keys": [KEY], "aliases": ["~lic", "heap-1", "brand-9", "hg-app"]},
    "other": {"keys": ["other-key"], "aliases": ["~other"]},
    "slow": {"keys": ["slow-key"], "ratePerMinute": 2},
}
BEARER = {"Authorization": f"Bearer {KEY}"}
WEBENGAGE_USER = {  # the seed's example
    "userId": "johndoe",
    "firstName": "John",
    "lastName": "Doe",
    "birthDate": "1986-08-19T15:45:00-0800",
    "gender": "male",
    "email": "john@doe.com",
    "phone": "+551155256325",
    "company": "Alphabet Inc.",
    "attributes": {"Age": "31", "Dollars spent": 461.93, "Points earned": 78732},
}
NV_USER = {  # the seed's example entry
    "userID": "michael@example.com",
    "user_attributes": {
        "name": "Michael Smith",
        "email": "michael@example.com",
        "mobile": "+551155256325",
        "email_opt_in": "1",
        "whatsapp_opt_in": "1",
    },
}


def basic(name, secret=KEY):
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()}


class FakeSink:
    """Records what the gateway hands to the producer; acknowledges when ``acks`` is set."""

    def __init__(self, acks=True):
        self.records = []
        self.acks = asyncio.Event()
        if acks:
            self.acks.set()

    async def deliver(self, records):
        await self.acks.wait()
        self.records.extend(records)

    def events(self):
        return [(r.key.decode(), IDENTIFY_EVENT.decode(r.value)) for r in self.records]


async def healthy():
    return None


def serve(scenario, sink=None, keys=KEYS, worker=None, health=healthy, **options):
    """Run ``scenario(client, sink)`` against a gateway (and a fake worker when given)."""

    async def main():
        # no worker listens on a port just freed, unless the test starts a fake one there
        settings = Settings(topic_prefix="t.", api_token="tok", web_port=free_ports())
        worker_server = None
        if worker is not None:
            worker_server = TestServer(worker)
            await worker_server.start_server()
            settings = settings.with_changes(web_host="127.0.0.1", web_port=worker_server.port)
        gateway = Gateway(
            GatewaySettings(settings=settings, keys=Keys.from_config(keys), **options),
            sink if sink is not None else FakeSink(),
            health,
        )
        try:
            async with TestClient(TestServer(gateway.app())) as client:
                return await scenario(client, gateway.sink)
        finally:
            if worker_server is not None:
                await worker_server.close()

    return asyncio.run(main())


def call(method, path, body=None, headers=None, raw=None, **options):
    """One call: (status, headers, JSON body or text, sink)."""

    async def scenario(client, sink):
        response = await client.request(
            method, path, json=body if raw is None else None, data=raw, headers=headers
        )
        text = await response.text()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        return response.status, response.headers, parsed, sink

    return serve(scenario, **options)


# --- WebEngage ---


def test_webengage_users_is_queued_with_x_request_id_as_the_message_id():
    status, _, body, sink = call(
        "POST",
        "/v1/accounts/~lic/users",
        WEBENGAGE_USER,
        {**BEARER, "x-request-id": "a1b2c3"},
    )
    assert (status, body) == (201, {"response": {"status": "queued"}})
    [(key, event)] = sink.events()
    assert key == "johndoe"
    assert sink.records[0].topic == "t.identify-events"
    assert event["messageId"] == "a1b2c3"
    assert event["workspaceId"] == "acme"
    assert event["userId"] == "johndoe"
    assert event["set"]["firstName"] == "John"
    assert event["set"]["custom"]["Dollars spent"] == 461.93


def test_webengage_without_x_request_id_each_call_is_its_own_event():
    async def twice(client, sink):
        for _ in range(2):
            response = await client.post(
                "/v1/accounts/acme/users", json=WEBENGAGE_USER, headers=BEARER
            )
            assert response.status == 201
            await asyncio.sleep(0.01)
        return sink

    sink = serve(twice)
    ids = [event["messageId"] for _, event in sink.events()]
    assert len(set(ids)) == 2


def test_webengage_bulk_users_number_their_message_ids():
    users = [WEBENGAGE_USER, {"anonymousId": "anon-7", "city": "Lyon"}]
    status, _, body, sink = call(
        "POST",
        "/v1/accounts/~lic/bulk-users",
        {"users": users},
        {**BEARER, "x-request-id": "r9"},
    )
    assert (status, body) == (201, {"response": {"status": "queued"}})
    assert [(k, e["messageId"]) for k, e in sink.events()] == [
        ("johndoe", "r9-0"),
        ("anon-7", "r9-1"),
    ]


def test_webengage_errors_are_shaped_like_its_own():
    status, _, body, sink = call("POST", "/v1/accounts/~lic/users", {"firstName": "Nobody"}, BEARER)
    assert status == 400
    assert body == {
        "response": {"status": "error", "message": "Error: userId and anonymousId cannot be empty."}
    }
    assert sink.records == []


@pytest.mark.parametrize("name", ["userId", "anonymousId"])
def test_an_id_over_100_characters_is_refused(name):
    status, _, body, sink = call("POST", "/v1/accounts/~lic/users", {name: "x" * 101}, BEARER)
    assert status == 400
    assert "101 characters long: at most 100" in body["response"]["message"]
    assert sink.records == []


def test_a_batch_over_100_users_is_refused_whole():
    users = [{"userId": f"u{n}"} for n in range(101)]
    status, _, body, sink = call("POST", "/v1/accounts/~lic/bulk-users", {"users": users}, BEARER)
    assert status == 400
    assert "101 users in one call: at most 100" in body["response"]["message"]
    assert sink.records == []


def test_one_unfit_entry_refuses_the_whole_batch_naming_it():
    users = [{"userId": "ok"}, {"userId": "u", "favouriteColour": "red"}]
    status, _, body, sink = call("POST", "/v1/accounts/~lic/bulk-users", {"users": users}, BEARER)
    assert status == 400
    assert body["response"]["message"].startswith("Error: users[1]: unknown fields")
    assert sink.records == []


def test_a_body_too_large_is_413_and_not_json_is_400():
    big = {"userId": "u", "attributes": {"note": "x" * 500}}
    status, _, body, _ = call("POST", "/v1/accounts/~lic/users", big, BEARER, max_body_bytes=300)
    assert status == 413
    assert body["response"]["message"] == "Error: the body is larger than 300 bytes"
    status, _, body, _ = call("POST", "/v1/accounts/~lic/users", headers=BEARER, raw=b"{oops")
    assert status == 400
    assert "not JSON" in body["response"]["message"]


def test_a_body_naming_another_workspace_is_forbidden():
    status, _, _, sink = call(
        "POST", "/v1/accounts/~lic/users", {"userId": "u", "workspaceId": "other"}, BEARER
    )
    assert status == 403
    assert sink.records == []


# --- authentication and rate limits ---


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/accounts/~lic/users", {}),  # no key
        ("/v1/accounts/~lic/users", {"Authorization": "Bearer nope"}),  # unknown key
        ("/v1/accounts/~other/users", BEARER),  # a key of acme for another account
        ("/v1/identify", basic("~other")),  # Basic: the named app is not the key's
    ],
)
def test_without_a_key_of_the_named_workspace_it_is_401(path, headers):
    status, response_headers, _, sink = call("POST", path, {"userId": "u"}, headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] in ("Bearer", "Basic")
    assert sink.records == []


def test_the_rate_limit_is_per_workspace_with_retry_after():
    async def scenario(client, sink):
        answers = []
        for key in ("slow-key", "slow-key", "slow-key", KEY):
            response = await client.post(
                "/v1/accounts/slow/users" if key != KEY else "/v1/accounts/acme/users",
                json={"userId": "u"},
                headers={"Authorization": f"Bearer {key}"},
            )
            answers.append((response.status, response.headers.get("Retry-After")))
        return answers

    assert serve(scenario) == [(201, None), (201, None), (429, "30"), (201, None)]


# --- at-least-once ---


def test_the_answer_waits_for_the_broker_s_acknowledgement():
    async def scenario(client, sink):
        answer = asyncio.ensure_future(
            client.post("/v1/accounts/~lic/users", json={"userId": "u"}, headers=BEARER)
        )
        await asyncio.sleep(0.3)
        assert not answer.done(), "answered before the broker acknowledged"
        sink.acks.set()
        response = await answer
        return response.status, len(sink.records)

    assert serve(scenario, sink=FakeSink(acks=False)) == (201, 1)


def test_no_acknowledgement_in_time_is_503_never_2xx():
    status, headers, body, _ = call(
        "POST",
        "/v1/accounts/~lic/users",
        {"userId": "u"},
        BEARER,
        sink=FakeSink(acks=False),
        ack_timeout_s=0.2,
    )
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert "did not acknowledge" in body["response"]["message"]


def test_with_no_broker_at_all_the_real_producer_never_answers_2xx():
    outbox = Outbox({"bootstrap.servers": "127.0.0.1:9", "log_level": "0"}, linger_ms=5)
    try:
        status, _, _, _ = call(
            "POST", "/v1/accounts/~lic/users", {"userId": "u"}, BEARER, sink=outbox, ack_timeout_s=1
        )
    finally:
        outbox.close(timeout_s=0)
    assert status == 503


# --- Herogi ---


def test_herogi_identify_answers_the_hgid():
    herogi = {
        "city": "Bangkok",
        "mobileNo": "+90111111111",
        "email": "johnwick@example.com",
        "firstname": "John",
        "lastname": "Wick",
        "externalUserId": "johnwick@example.com",
        "timezone": "Europe/Moscow",
    }
    status, _, body, sink = call("POST", "/v1/identify", herogi, basic("hg-app"))
    hgid = derive_profile_id("acme", IdKind.USER, "johnwick@example.com")
    assert (status, body) == (200, {"status": "success", "hgid": hgid})
    [(key, event)] = sink.events()
    assert key == "johnwick@example.com"
    assert event["set"]["firstName"] == "John"
    hgid = "6ef91c7c-3363-4a9e-9b0c-10e2fb537b71"
    status, _, body, sink = call("POST", "/v1/identify", {"hgid": hgid}, basic("hg-app"))
    assert (status, body) == (200, {"status": "success", "hgid": hgid})
    assert sink.events()[0][1]["profileId"] == hgid
    status, _, body, _ = call("POST", "/v1/identify", {"hgid": "6ef9-4agh"}, basic("hg-app"))
    assert (status, body) == (
        400,
        {"status": "error", "message": "profileId (hgid) '6ef9-4agh' is not a UUID"},
    )
    status, _, body, _ = call("POST", "/v1/identify", {"city": "Bangkok"}, basic("hg-app"))
    assert (status, body) == (
        400,
        {"status": "error", "message": "externalUserId or hgid is required"},
    )


# --- NotifyVisitors ---


def test_notifyvisitors_create_takes_up_to_100_users():
    second = {"userID": "ann", "user_attributes": {"first_name": "Ann"}}
    status, _, body, sink = call(
        "POST", "/api/v1/user/create", {"nv": [NV_USER, second]}, basic("brand-9")
    )
    assert (status, body) == (
        200,
        {"userIDs": ["michael@example.com", "ann"], "status_code": "200", "processed": 2},
    )
    assert [e["set"].get("fullName") for _, e in sink.events()] == ["Michael Smith", None]
    status, _, body, _ = call(
        "POST", "/api/v1/user/create", {"nv": [NV_USER, {"user_attributes": {}}]}, basic("brand-9")
    )
    assert (status, body) == (
        400,
        {"message": "nv[1]: All records must contain userID", "status_code": "400"},
    )


def test_notifyvisitors_delete_is_an_erasure():
    status, _, body, sink = call("POST", "/api/v1/user/delete", {"userID": "ann"}, basic("brand-9"))
    assert (status, body) == (200, {"userIDs": ["ann"], "status_code": "200", "processed": 1})
    [(key, event)] = sink.events()
    assert (key, event["userId"], event["erase"]) == ("ann", "ann", True)


def fake_worker(seen):
    async def user(request):
        seen.append((request.match_info["ws"], request.headers.get("Authorization")))
        if request.match_info["user"] == "ann":
            return web.json_response({"userId": "ann", "attributes": {"firstName": "Ann"}})
        return web.json_response({"error": "no profile"}, status=404)

    app = web.Application()
    app.router.add_get("/workspaces/{ws}/users/{user}", user)
    return app


def test_notifyvisitors_user_data_is_answered_by_the_worker_lookup():
    seen = []
    status, _, body, _ = call(
        "POST",
        "/api/v1/user/userData",
        {"userID": "ann"},
        basic("brand-9"),
        worker=fake_worker(seen),
    )
    assert (status, body) == (
        200,
        {"status_code": "200", "data": {"userId": "ann", "attributes": {"firstName": "Ann"}}},
    )
    assert seen == [("acme", "Bearer tok")]
    status, _, body, _ = call(
        "GET", "/api/v1/user/userData?userID=bob", headers=basic("brand-9"), worker=fake_worker([])
    )
    assert (status, body) == (404, {"message": "User not found", "status_code": "404"})


def test_user_data_with_no_worker_reachable_is_502():
    async def scenario(client, sink):
        response = await client.get("/api/v1/user/userData?userID=a", headers=basic("brand-9"))
        return response.status

    assert serve(scenario) == 502


# --- Heap ---


def test_heap_identify_and_user_properties():
    identify = {"app_id": "heap-1", "identity": "alice@example.com", "user_id": 5404281197559477}
    status, _, body, sink = call("POST", "/api/v1/identify", identify, BEARER)
    assert (status, body) == (200, "")
    [(key, event)] = sink.events()
    assert (key, event["userId"], event["anonymousId"]) == (
        "alice@example.com",
        "alice@example.com",
        "5404281197559477",
    )
    bulk = {
        "app_id": "heap-1",
        "users": [
            {"identity": "a", "properties": {"plan": "Startup"}},
            {"identity": "b", "properties": {"plan": "Growth"}},
        ],
    }
    status, _, _, sink = call("POST", "/api/add_user_properties", bulk, BEARER)
    assert status == 200
    assert [(k, e["set"]["custom"]["plan"]) for k, e in sink.events()] == [
        ("a", "Startup"),
        ("b", "Growth"),
    ]


def test_heap_app_id_must_be_the_key_s_workspace():
    body = {"identity": "a", "properties": {"plan": "x"}}
    status, _, answer, _ = call(
        "POST", "/api/add_user_properties", {**body, "app_id": "heap-2"}, BEARER
    )
    assert (status, answer) == (401, {"error": "this key is not valid for 'heap-2'"})
    status, _, answer, _ = call("POST", "/api/add_user_properties", body, BEARER)
    assert (status, answer) == (400, {"error": "app_id is required"})


# --- health and metrics ---


def test_health_and_metrics():
    async def broken():
        return "broker unreachable"

    async def scenario(client, sink):
        await client.post("/v1/accounts/~lic/users", json={"userId": "u"}, headers=BEARER)
        await client.post("/v1/accounts/~lic/users", json={"userId": "u"})
        health = await client.get("/health")
        metrics = await client.get("/metrics")
        return health.status, await health.json(), await metrics.text()

    status, health, metrics = serve(scenario)
    assert (status, health) == (200, {"status": "ok", "topic": "t.identify-events"})
    assert (
        'identity_stream_gateway_requests_total{endpoint="webengage_users",status="201"} 1.0'
        in metrics
    )
    assert (
        'identity_stream_gateway_requests_total{endpoint="webengage_users",status="401"} 1.0'
        in metrics
    )
    assert 'identity_stream_gateway_messages_total{endpoint="webengage_users"} 1.0' in metrics

    async def health_only(client, sink):
        response = await client.get("/health")
        return response.status, await response.json()

    assert serve(health_only, health=broken) == (
        503,
        {"status": "unavailable", "reason": "broker unreachable"},
    )


# --- keys, credentials, rate limiter, settings ---


def test_credentials_of_each_scheme():
    encoded = base64.b64encode(b"brand-9:s3cret").decode()
    assert credential(f"Basic {encoded}") == Credential("s3cret", "brand-9")
    assert credential("Bearer k") == Credential("k")
    assert credential("Basic AUTHKEY") == Credential("AUTHKEY")  # Herogi's key as the token
    assert credential("Token k") is None
    assert credential(None) is None


def test_keys_may_be_stored_hashed_and_name_one_workspace():
    hashed = "sha256:" + hashlib.sha256(b"s3cret").hexdigest()
    keys = Keys.from_config({"acme": {"keys": [hashed]}})
    assert keys.authenticate(Credential("s3cret")).id == "acme"
    assert keys.authenticate(Credential("s3cret", "acme")).id == "acme"
    assert keys.authenticate(Credential("s3cret", "beta")) is None
    with pytest.raises(ValueError, match="a key must name one workspace"):
        Keys.from_config({"a": {"keys": ["k"]}, "b": {"keys": ["k"]}})
    with pytest.raises(ValueError, match="needs a non-empty 'keys' list"):
        Keys.from_config({"a": {"keys": []}})
    with pytest.raises(ValueError, match="unknown fields"):
        Keys.from_config({"a": {"keys": ["k"], "rate": 5}})


def test_rate_limiter_refills_continuously():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    workspace = Workspace("w", rate_per_minute=60)  # one a second, a minute's worth at once
    assert all(limiter.retry_after(workspace) is None for _ in range(60))
    assert limiter.retry_after(workspace) == 1
    now[0] = 2.0
    assert limiter.retry_after(workspace) is None
    assert limiter.retry_after(workspace) is None
    assert limiter.retry_after(workspace) == 1


def test_settings_from_the_environment(tmp_path):
    with pytest.raises(ValueError, match="IDENTITY_STREAM_GATEWAY_KEYS is not set"):
        GatewaySettings.from_env({})
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"acme": {"keys": ["k"]}}))
    settings = GatewaySettings.from_env(
        {
            "IDENTITY_STREAM_GATEWAY_KEYS": str(path),
            "IDENTITY_STREAM_GATEWAY_PORT": "9000",
            "IDENTITY_STREAM_GATEWAY_RATE_PER_MINUTE": "100",
            "IDENTITY_STREAM_WEB_PORT": "7000",
        }
    )
    assert (settings.port, settings.bind, settings.lookup_url) == (
        9000,
        "127.0.0.1",
        "http://127.0.0.1:7000",
    )
    assert settings.keys.workspaces["acme"].rate_per_minute == 100
    inline = GatewaySettings.from_env({"IDENTITY_STREAM_GATEWAY_KEYS": '{"b": {"keys": ["k"]}}'})
    assert list(inline.keys.workspaces) == ["b"]
