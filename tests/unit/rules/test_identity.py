import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.rules.identity import (
    DEFAULT_BLOCKLIST,
    PROFILE_NAMESPACE,
    Blocklist,
    Blocklists,
    IdentifierRefused,
    IdKind,
    derive_profile_id,
    normalize_identifier,
)

HEAP = [
    "anonymous",
    "guest",
    "undefined",
    "null",
    "true",
    "false",
    "not_authenticated",
    "NaN",
    "0",
    "[object Object]",
    "None",
    "none",
    "Email",
    "email",
]
POSTHOG_CI = [
    "anonymous",
    "guest",
    "distinctid",
    "distinct_id",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "true",
    "false",
]


@pytest.mark.parametrize("value", HEAP)
def test_heap_blocklist_is_refused(value):
    with pytest.raises(IdentifierRefused) as err:
        normalize_identifier(value)
    assert err.value.reason == "blocklisted_identifier"


@pytest.mark.parametrize("value", POSTHOG_CI)
def test_posthog_case_insensitive_list_in_any_case_and_quoted(value):
    for variant in (value.upper(), value.title(), f"'{value}'", f'"{value.upper()}"'):
        assert DEFAULT_BLOCKLIST.refuses(variant), variant


@pytest.mark.parametrize("value", ["0", "000", "00000000-0000-0000-0000-000000000000", "--0-"])
def test_zero_and_nil_uuids_are_refused(value):
    assert DEFAULT_BLOCKLIST.refuses(value)


@pytest.mark.parametrize("value", ["NULL", "NONE", "nan", "alice", "user-42", "0x1", "10"])
def test_real_looking_ids_pass(value):
    assert normalize_identifier(value) == value


def test_trimmed_and_length_checked():
    assert normalize_identifier("  alice \t") == "alice"
    assert normalize_identifier("a" * 100) == "a" * 100
    with pytest.raises(IdentifierRefused) as err:
        normalize_identifier("a" * 101)
    assert err.value.reason == "identifier_too_long"
    with pytest.raises(IdentifierRefused) as err:
        normalize_identifier("   ")
    assert err.value.reason == "empty_identifier"


def test_workspace_blocklist_is_configurable():
    custom = Blocklist.default(extra=["test-user"], extra_case_insensitive=["Demo"])
    assert custom.refuses("test-user") and custom.refuses("DEMO") and custom.refuses("guest")
    assert not DEFAULT_BLOCKLIST.refuses("test-user")


def test_profile_ids_are_deterministic_and_isolated_by_workspace_and_kind():
    a = derive_profile_id("ws1", IdKind.USER, "u1")
    assert a == derive_profile_id("ws1", IdKind.USER, "u1")
    assert a != derive_profile_id("ws2", IdKind.USER, "u1")
    assert a != derive_profile_id("ws1", IdKind.ANONYMOUS, "u1")


@given(st.text(), st.sampled_from(list(IdKind)), st.text())
def test_profile_ids_are_the_uuid_modules_uuid5(workspace, kind, identifier):
    name = f"{workspace}\x1f{kind}\x1f{identifier}"
    want = str(uuid.uuid5(PROFILE_NAMESPACE, name))
    assert derive_profile_id(workspace, kind, identifier) == want


def test_blocklists_config_extends_the_default_per_workspace():
    lists = Blocklists.from_config(
        {"extra": ["test"], "workspaces": {"acme": {"extraCaseInsensitive": ["Kiosk"]}}}
    )
    assert lists.for_workspace("acme").refuses("KIOSK")
    assert lists.for_workspace("acme").refuses("test")
    assert lists.for_workspace("acme").refuses("guest")
    assert not lists.for_workspace("other").refuses("kiosk")
    assert lists.for_workspace("other").refuses("test")
    assert not Blocklists().for_workspace("x").refuses("test")
