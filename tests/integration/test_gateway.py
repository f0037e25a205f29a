"""The gateway on a real broker in front of a real worker: seed calls become profiles."""

import base64
import json
import urllib.error
import urllib.request

import pytest

from streams.tools.harness import free_ports
from streams.tools.readback import read_all
from streams.tools.supervisor import GatewayProcess
from topology.avro import IDENTIFY_EVENT

pytestmark = pytest.mark.integration
KEYS = {"ws": {"keys": ["we-key"], "aliases": ["~lic", "heap-1", "brand-9"]}}
BEARER = {"Authorization": "Bearer we-key"}
NV_AUTH = {"Authorization": "Basic " + base64.b64encode(b"brand-9:we-key").decode()}


def call(gateway, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        gateway.url + path,
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST" if data is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def start_gateway(deployment, tmp_path, worker):
    """A gateway whose profile reads go to ``worker``."""
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(KEYS))
    settings = deployment.settings.with_changes(web_port=worker.settings.web_port)
    process = GatewayProcess(settings, tmp_path / "gateway.log", str(keys), free_ports())
    return process.start().wait_ready()


def test_seed_calls_are_on_the_topic_when_answered_and_become_profiles(deployment, tmp_path):
    worker = deployment.start_worker()
    gateway = start_gateway(deployment, tmp_path, worker)
    try:
        check_seed_calls(deployment, gateway)
    finally:
        gateway.stop()


def check_seed_calls(deployment, gateway):
    topic = deployment.topology.identify_events.name

    def on_topic(message_id):
        """Read right after the answer: a 2xx means the broker has the message already."""
        events = read_all(deployment.kafka_config, topic, IDENTIFY_EVENT.decode)
        return [(key, e) for key, e, _ in events if e["messageId"] == message_id]

    # WebEngage: an anonymous visit, then the login with the seed's example body
    visit = {"anonymousId": "anon-1", "city": "Lyon"}
    status, body = call(gateway, "/v1/accounts/~lic/users", visit, {**BEARER, "x-request-id": "v1"})
    assert (status, body) == (201, {"response": {"status": "queued"}})
    assert [key for key, _ in on_topic("v1")] == ["anon-1"]
    login = {
        "userId": "johndoe",
        "anonymousId": "anon-1",
        "firstName": "John",
        "email": "john@doe.com",
        "attributes": {"Dollars spent": 461.93},
    }
    status, _ = call(gateway, "/v1/accounts/~lic/users", login, {**BEARER, "x-request-id": "v2"})
    assert status == 201
    assert len(on_topic("v2")) == 1
    # the same call retried (same x-request-id): on the topic twice, applied once
    assert (
        call(gateway, "/v1/accounts/~lic/users", login, {**BEARER, "x-request-id": "v2"})[0] == 201
    )

    # Heap: identify a Heap anonymous user, then properties of the identity
    heap = {"app_id": "heap-1", "identity": "alice", "user_id": 42, "messageId": "h1"}
    assert call(gateway, "/api/v1/identify", heap, BEARER) == (200, None)
    assert len(on_topic("h1")) == 1
    properties = {"app_id": "heap-1", "identity": "alice", "properties": {"plan": "Startup"}}
    assert call(gateway, "/api/add_user_properties", properties, BEARER)[0] == 200

    # NotifyVisitors: two users in one call
    nv = {"nv": [{"userID": "ann", "user_attributes": {"first_name": "Ann"}}, {"userID": "bob"}]}
    status, body = call(gateway, "/api/v1/user/create", nv, NV_AUTH)
    assert (status, body) == (
        200,
        {"userIDs": ["ann", "bob"], "status_code": "200", "processed": 2},
    )

    deployment.wait_processed()
    profiles = {p["userId"]: p for p in deployment.profiles().values() if p is not None}
    assert set(profiles) == {"johndoe", "alice", "ann", "bob"}
    john = profiles["johndoe"]
    assert john["anonymousIds"] == ["anon-1"]
    assert john["attributes"]["city"] == "Lyon"
    assert john["attributes"]["custom"]["Dollars spent"] == 461.93
    assert profiles["alice"]["anonymousIds"] == ["42"]
    assert profiles["alice"]["attributes"]["custom"]["plan"] == "Startup"
    assert deployment.counters()["duplicate"] == 1  # the retried login

    # NotifyVisitors' profile read, answered through the worker's lookup
    status, body = call(gateway, "/api/v1/user/userData", {"userID": "ann"}, NV_AUTH)
    assert status == 200, body
    assert body["status_code"] == "200"
    assert body["data"]["userId"] == "ann"
    assert body["data"]["attributes"]["firstName"] == "Ann"
    status, body = call(gateway, "/api/v1/user/userData?userID=nobody", headers=NV_AUTH)
    assert (status, body) == (404, {"message": "User not found", "status_code": "404"})
