"""Profile lookup over HTTP from any worker, by each identifier."""

import json
import urllib.error
import urllib.request

import pytest

from tests.factories import identify

pytestmark = pytest.mark.integration
TOKEN = "s3cret"


def get(worker, path, token=TOKEN):
    request = urllib.request.Request(f"http://127.0.0.1:{worker.settings.web_port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_any_worker_answers_for_every_identifier(deployment):
    deployment.settings = deployment.settings.with_changes(api_token=TOKEN)
    workers = [deployment.start_worker("worker-1"), deployment.start_worker("worker-2")]
    people = 12
    records = []
    for n in range(people):
        records.append((f"d{n}", identify(ts=1, anon=f"dev-{n}", set={"city": f"City {n}"})))
        if n % 2 == 0:  # half of them log in
            records.append((f"u{n}", identify(ts=2, anon=f"dev-{n}", user=f"user-{n}")))
    deployment.publish(records)
    deployment.wait_processed()
    profiles = deployment.profiles()

    for n in range(people):
        answers = [get(w, f"/workspaces/ws/anonymous/dev-{n}") for w in workers]
        assert answers[0] == answers[1], "both workers give the same answer"
        status, found = answers[0]
        assert status == 200, found
        assert found["attributes"]["city"] == f"City {n}"
        assert found["anonymousIds"] == [f"dev-{n}"]
        assert found["profileId"] in profiles
        if n % 2 == 0:
            assert found["userId"] == f"user-{n}"
            for w in workers:
                assert get(w, f"/workspaces/ws/users/user-{n}") == (200, found)
                assert get(w, f"/profiles/{found['profileId']}") == (200, found)
        else:
            assert found["userId"] is None

    assert get(workers[0], "/workspaces/ws/users/nobody")[0] == 404
    assert get(workers[1], "/workspaces/ws/anonymous/nothing")[0] == 404
    assert get(workers[0], "/workspaces/ws/users/user-0", token=None)[0] == 401
    assert get(workers[0], "/workspaces/ws/users/user-0", token="wrong")[0] == 401
