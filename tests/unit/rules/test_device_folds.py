"""The link's fold of an anonymous visit is taken by the profile only for the very same event
object and an equal slice, and is then exactly the profile's own fold."""

import orjson

from streams.rules import device_folds, profile
from streams.rules.events import from_json, to_json
from tests.unit.rules.test_profile import event

DEVICE = "d-1"


def visit(n: int) -> dict:
    """An anonymous visit as the link sends it on: the event's JSON."""
    return to_json(event(anon="a-1", ts=1_000 + n, set={"city": f"City {n}"}))


def test_the_profile_takes_the_links_fold_of_the_same_objects():
    before = profile.fold(None, from_json(visit(0)), DEVICE)
    sent = visit(1)
    at_link = device_folds.fold_at_link(before, from_json(sent), DEVICE, sent)
    at_profile = device_folds.fold_at_profile(before, from_json(sent), DEVICE, sent)
    assert at_profile is at_link
    # taken once: the same call again folds afresh, to the same value
    again = device_folds.fold_at_profile(before, from_json(sent), DEVICE, sent)
    assert again is not at_link and again == at_link


def test_an_equal_slice_takes_the_links_fold_an_equal_event_does_not():
    before = profile.fold(None, from_json(visit(0)), DEVICE)
    decoded_state = orjson.loads(orjson.dumps(before))  # read back from RocksDB
    sent = visit(1)
    at_link = device_folds.fold_at_link(before, from_json(sent), DEVICE, sent)
    assert device_folds.fold_at_profile(decoded_state, from_json(sent), DEVICE, sent) is at_link
    at_link = device_folds.fold_at_link(before, from_json(sent), DEVICE, sent)
    decoded_sent = orjson.loads(orjson.dumps(sent))  # an envelope decoded from Kafka
    folded = device_folds.fold_at_profile(before, from_json(decoded_sent), DEVICE, decoded_sent)
    assert folded is not at_link and folded == at_link


def test_another_slice_folds_its_own():
    sent = visit(1)
    device_folds.fold_at_link(None, from_json(sent), DEVICE, sent)
    other = profile.fold(None, from_json(visit(0)), DEVICE)  # the profile's copy differs
    folded = device_folds.fold_at_profile(other, from_json(sent), DEVICE, sent)
    assert folded == profile.fold(other, from_json(sent), DEVICE)
    assert folded["lww"]["city"][2] == "City 1" and folded["createdAt"] == 1_000


def test_another_key_never_takes_the_links_fold():
    sent = visit(1)
    at_link = device_folds.fold_at_link(None, from_json(sent), DEVICE, sent)
    other = device_folds.fold_at_profile(None, from_json(sent), "d-2", sent)
    assert other["profileId"] == "d-2" and at_link["profileId"] == DEVICE


def test_results_not_taken_are_bounded():
    for n in range(device_folds.LIMIT + 10):
        sent = visit(n)
        device_folds.fold_at_link(None, from_json(sent), DEVICE, sent)
    assert len(device_folds._folded) <= device_folds.LIMIT
