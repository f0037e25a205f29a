import contextlib

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules import system_attributes
from streams.rules.attribute_values import InvalidAttribute
from streams.rules.custom_attributes import AttributePolicy, LongStrings
from streams.rules.events import parse_identify
from tests.factories import identify
from topology.avro import IDENTIFY_EVENT


def parse(policy=None, **kwargs):
    return parse_identify(
        IDENTIFY_EVENT.decode(IDENTIFY_EVENT.encode(identify(user="u", **kwargs))), None, policy
    )


@pytest.mark.parametrize(
    ("name", "raw", "stored"),
    [
        ("email", "Ada@Example.COM", "Ada@example.com"),
        ("phone", "+55 11 5525-6325", "+551155256325"),
        ("gender", " FEMALE ", "female"),
        ("birthDate", "1986-08-19T15:45:00-0800", "1986-08-19"),
        ("birthDate", "1990-11-25", "1990-11-25"),
        ("language", "EN", "en"),
        ("country", "us", "US"),
        ("timezone", "america/new_york", "America/New_York"),
        (
            "location",
            {"latitude": 12.12, "longitude": 100.31},
            {"latitude": 12.12, "longitude": 100.31},
        ),
        ("firstName", "  Ada ", "Ada"),
    ],
)
def test_valid_values_are_normalised(name, raw, stored):
    assert system_attributes.normalize(name, raw) == stored


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("email", "not-an-email", "invalid_email"),
        ("phone", "05551234567", "invalid_phone"),
        ("phone", "+1 555", "invalid_phone"),
        ("gender", "MALEish", "invalid_gender"),
        ("birthDate", "19/08/1986", "invalid_birth_date"),
        ("language", "english", "invalid_language"),
        ("language", "qq", "invalid_language"),
        ("country", "EN", "invalid_country"),  # Herogi's own example uses EN as a country
        ("timezone", "Mars/Olympus", "invalid_timezone"),
        ("location", {"latitude": 91.0, "longitude": 0.0}, "invalid_location"),
        ("location", {"latitude": 0.0, "longitude": float("nan")}, "invalid_location"),
        ("city", "   ", "empty_value"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(name, raw, reason):
    with pytest.raises(InvalidAttribute) as err:
        system_attributes.normalize(name, raw)
    assert err.value.reason == reason


def test_an_invalid_attribute_is_refused_alone():
    parsed = parse(set={"email": "nope", "city": "Oslo", "phone": "+551155256325"})
    assert parsed.event.set == {"city": "Oslo", "phone": "+551155256325"}
    assert [(r.reason, r.subject, r.whole) for r in parsed.rejections] == [
        ("invalid_email", "email", False)
    ]


def test_custom_attribute_names():
    long = "x" * 50
    parsed = parse(set={"custom": {"ok": 1, long: 2, "we_internal": 3, "": 4}})
    assert parsed.event.set == {"custom.ok": ["number", 1]}
    assert sorted(r.reason for r in parsed.rejections) == [
        "invalid_attribute_name",
        "invalid_attribute_name",
        "reserved_attribute_name",
    ]
    custom_prefix = parse(AttributePolicy(reserved_prefix="x_"), set={"custom": {"we_ok": 1}})
    assert custom_prefix.event.set == {"custom.we_ok": ["number", 1]}


def test_long_strings_are_truncated_with_a_warning_or_refused():
    text = "a" * 1200
    truncated = parse(set={"custom": {"bio": text}, "city": text})
    assert truncated.event.set["custom.bio"] == ["string", "a" * 999]
    assert truncated.event.set["city"] == "a" * 999
    assert {(r.reason, r.subject) for r in truncated.rejections} == {
        ("value_truncated", "custom.bio"),
        ("value_truncated", "city"),
    }
    refused = parse(AttributePolicy(long_strings=LongStrings.REJECT), set={"custom": {"bio": text}})
    assert refused.event.set == {}
    assert [r.reason for r in refused.rejections] == ["value_too_long"]


def test_non_finite_numbers_are_refused():
    parsed = parse(set={"custom": {"score": float("inf")}})
    assert parsed.event.set == {}
    assert [r.reason for r in parsed.rejections] == ["invalid_value"]


@given(st.text(max_size=40), st.sampled_from([*system_attributes._CHECKS, "city"]))
def test_validators_never_raise_anything_else(text, name):
    value = {"latitude": 0.0, "longitude": 0.0} if name == "location" else text
    with contextlib.suppress(InvalidAttribute):
        system_attributes.normalize(name, value)


def _library_email(value):
    """email-validator's answer: the normalized address, or None when it refuses."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


_LOCAL_CHARS = "abcXYZ019_!#$%&'*+-/=?^`{|}~." + '" @é\\'
_DOMAIN_CHARS = "abcXYZ019-."
_label = st.one_of(
    st.text(_DOMAIN_CHARS, min_size=0, max_size=8),
    st.sampled_from(["xn--80ak6aa92e", "ab--cd", "com", "COM", "a" * 63, "a" * 64, "123"]),
    st.sampled_from(["test", "local", "localhost", "invalid", "onion", "arpa", "example"]),
)
_local = st.one_of(
    st.text(_LOCAL_CHARS, min_size=0, max_size=12),
    st.sampled_from(["PostMaster", "info", "Sales", "first.last12", "a" * 65]),
)
_address = st.one_of(
    st.builds(
        lambda local, labels: local + "@" + ".".join(labels),
        _local,
        st.lists(_label, min_size=1, max_size=4),
    ),
    st.builds(lambda local, n: local + "@" + "a" * n + ".com", _local, st.integers(60, 260)),
    st.text(_LOCAL_CHARS + _DOMAIN_CHARS, max_size=30),
)


@pytest.mark.parametrize(
    ("address", "normalized"),
    [
        ("ada.lovelace12@example.com", "ada.lovelace12@example.com"),
        ("Ada@Example.COM", "Ada@example.com"),
        ("PostMaster@Mail.Example.org", "postmaster@mail.example.org"),
        ("o'neil+news@sub-domain.co.uk", "o'neil+news@sub-domain.co.uk"),
    ],
)
def test_common_addresses_take_the_fast_path(address, normalized):
    assert system_attributes._plain_email(address) == normalized == _library_email(address)


@pytest.mark.parametrize(
    "address",
    ["a@xn--80ak6aa92e.com", "a@ab--cd.com", "a@b.test", "a@localhost", "a@b.c1", "a@-b.com"],
)
def test_unusual_addresses_are_left_to_the_library(address):
    assert system_attributes._plain_email(address) is None


def _library_phone(value):
    """libphonenumber's answer: the E.164 form of a valid number, or None."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_calling_codes = st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE))
# Valid numbers of every region and type, and of every non-geographic calling code (+800, ...),
# that the metadata gives an example of, in E.164.
_EXAMPLES = sorted(
    {
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for example in [
            *(
                phonenumbers.example_number_for_type(region, kind)
                for region in phonenumbers.SUPPORTED_REGIONS
                for kind in range(12)
            ),
            *map(
                phonenumbers.example_number_for_non_geo_entity,
                phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS,
            ),
        ]
        if example is not None
    }
)


def _edited(number: str, position: int, digits: str, cut: int) -> str:
    """An example with some digits replaced and some cut: sometimes still valid."""
    position = 1 + position % (len(number) - 1)
    return (number[:position] + digits + number[position + len(digits) :])[: len(number) - cut]


_phone_number = st.one_of(
    st.sampled_from(_EXAMPLES),
    st.builds(
        _edited,
        st.sampled_from(_EXAMPLES),
        st.integers(0, 20),
        st.text("0123456789", max_size=3),
        st.integers(0, 2),
    ),
    st.builds(
        lambda code, national: f"+{code}{national}",
        _calling_codes,
        st.text("0123456789", min_size=0, max_size=16),
    ),
    st.text("+0123456789 -", max_size=18),
    st.sampled_from(["+905551234567", "+14155552671", "+393331234567", "+390612345678"]),
)


# Each fast path and the library it stands in for
_FAST_PATHS = {
    "email": (system_attributes._plain_email, _library_email),
    "phone": (system_attributes._plain_phone, _library_phone),
}


@settings(max_examples=8000)
@given(st.one_of(_address.map(lambda a: ("email", a)), _phone_number.map(lambda n: ("phone", n))))
def test_fast_paths_get_the_libraries_answer(case):
    """A fast path answers only for values its library accepts, and with the library's form."""
    kind, value = case
    fast, library = _FAST_PATHS[kind]
    plain = fast(value)
    if plain is not None:
        assert plain == library(value)


@pytest.mark.parametrize("number", ["+905551234567", "+14155552671", "+447911123456"])
def test_common_numbers_take_the_fast_path(number):
    assert system_attributes._plain_phone(number) == number == _library_phone(number)


@pytest.mark.parametrize("number", ["+390612345678", "+90 555 123 4567", "+0123", "+1555"])
def test_unusual_numbers_are_left_to_the_library(number):
    assert system_attributes._plain_phone(number) is None


def test_every_regions_example_numbers_get_the_libraries_answer():
    answered = [n for n in _EXAMPLES if system_attributes._plain_phone(n) is not None]
    assert len(answered) > len(_EXAMPLES) // 2  # the fast path is the common one
    assert all(system_attributes._plain_phone(n) == _library_phone(n) for n in answered)
