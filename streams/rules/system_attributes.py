"""System attributes: check and normalise each one, so profiles hold one form per fact.

Checks use maintained data sets rather than hand-written tables: libphonenumber for phones,
ISO 3166/639 from pycountry, the IANA zone database, and email-validator for email syntax.
A value that fails is refused alone (the rest of the event still applies) with a reason code
named after the attribute, e.g. ``invalid_phone``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any, Final

import email_validator
import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    ATEXT,
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DNS_LABEL_LENGTH_LIMIT,
    DOMAIN_MAX_LENGTH,
    DOMAIN_NAME_REGEX,
    EMAIL_MAX_LENGTH,
    HOSTNAME_LABEL,
)

from streams.rules.attribute_values import InvalidAttribute

GENDERS: Final[tuple[str, ...]] = ("male", "female", "other")
# Checks are pure and a person's email and phone come again with each of their devices' logins:
# the latest valid ones are remembered. A refusal is not (lru_cache keeps no exception), so its
# message is made afresh each time, as before.
_RECENT_PEOPLE: Final = 16_384
_CODES: Final = 1_024  # languages and countries: a few hundred exist


# The address most people have: an ASCII dot-atom before the @ and two or more hostname labels
# after it, the last ending in a letter, all in email-validator's own terms (its ATEXT,
# HOSTNAME_LABEL and DOMAIN_NAME_REGEX). Dashes in a row (Punycode's "xn--", or the "ab--" it
# refuses) are left to the library.
_PLAIN_EMAIL: Final = re.compile(
    rf"([{ATEXT}]+(?:\.[{ATEXT}]+)*)@({HOSTNAME_LABEL}(?:\.{HOSTNAME_LABEL})+)\Z"
)
_SPECIAL_USE: Final[tuple[str, ...]] = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)
_ROLE_NAMES: Final = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def _plain_email(value: str) -> str | None:
    """email-validator's normalized form of a plain ASCII address, or None: ask the library.

    The library checks an address in ~20 us of pure Python: 23,000 of the rules' 402,000
    instructions per event on the peers input, where nearly every address is new (the cache
    below only catches repeats). For this form its checks come down to the ones below and its
    normalizing to lower-casing the domain (and the local part of role names such as
    postmaster); anything else goes to the library. A property test holds the two to the same
    answers.
    """
    match = _PLAIN_EMAIL.match(value)
    if match is None or "--" in value or len(value) > EMAIL_MAX_LENGTH:
        return None
    local, domain = match.group(1), match.group(2).lower()
    if len(domain) > DOMAIN_MAX_LENGTH or not DOMAIN_NAME_REGEX.search(domain):
        return None
    if any(len(label) > DNS_LABEL_LENGTH_LIMIT for label in domain.split(".")):
        return None
    if any(domain == name or domain.endswith("." + name) for name in _SPECIAL_USE):
        return None
    if local.lower() in _ROLE_NAMES:
        local = local.lower()
    return f"{local}@{domain}"


@lru_cache(maxsize=_RECENT_PEOPLE)
def _email(value: str) -> str:
    plain = _plain_email(value)
    if plain is not None:
        return plain
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidAttribute("invalid_email", f"email {value!r}: {exc}") from exc


_E164_DIGITS: Final = re.compile(r"\+([1-9][0-9]{2,16})\Z")


def _plain_phone(value: str) -> str | None:
    """libphonenumber's E.164 form of a number written as E.164 when it is valid, or None: ask
    the library (which says why when it is not).

    Parsing is half of the library's ~16 us a number (17,500 of the rules' instructions per
    event on the peers input); for "+" and digits it comes down to taking the country code (the
    first of one to three digits that is one) and the national number after it, as long as that
    has no leading zero (Italy keeps them) and the region's national prefix does not start it
    (the library would weigh stripping it). Validity is still the library's, on the number
    built. A property test holds the two to the same answers.
    """
    match = _E164_DIGITS.match(value)
    if match is None:
        return None
    digits = match.group(1)
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if not 2 <= len(national) <= 17 or national[0] == "0":
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, phonenumbers.region_code_for_country_code(country_code)
    )
    if metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing
    if prefix and re.match(prefix, national):
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return value if phonenumbers.is_valid_number(number) else None


@lru_cache(maxsize=_RECENT_PEOPLE)
def _phone(value: str) -> str:
    plain = _plain_phone(value)
    if plain is not None:
        return plain
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAttribute("invalid_phone", f"phone {value!r} is not E.164: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidAttribute("invalid_phone", f"phone {value!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _gender(value: str) -> str:
    folded = value.strip().lower()
    if folded not in GENDERS:
        raise InvalidAttribute("invalid_gender", f"gender {value!r} is not male, female or other")
    return folded


def _birth_date(value: str) -> str:
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidAttribute(
            "invalid_birth_date", f"birthDate {value!r} is not an ISO-8601 date or date-time"
        ) from exc
    return parsed.date().isoformat()


@lru_cache(maxsize=_CODES)
def _language(value: str) -> str:
    code = value.strip().lower()
    if len(code) != 2 or pycountry.languages.get(alpha_2=code) is None:
        raise InvalidAttribute("invalid_language", f"language {value!r} is not ISO 639-1")
    return code


@lru_cache(maxsize=_CODES)
def _country(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidAttribute("invalid_country", f"country {value!r} is not ISO 3166-1 alpha-2")
    return code


@cache
def _zones() -> dict[str, str]:
    return {zone.lower(): zone for zone in zoneinfo.available_timezones()}


def _timezone(value: str) -> str:
    zone = _zones().get(value.strip().lower())
    if zone is None:
        raise InvalidAttribute("invalid_timezone", f"timezone {value!r} is not an IANA zone")
    return zone


def _location(value: dict[str, float]) -> dict[str, float]:
    lat, lon = value["latitude"], value["longitude"]
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidAttribute(
            "invalid_location", f"location ({lat}, {lon}) is outside -90..90 / -180..180"
        )
    return {"latitude": lat, "longitude": lon}


_CHECKS: Final[dict[str, Callable[[Any], Any]]] = {
    "email": _email,
    "phone": _phone,
    "gender": _gender,
    "birthDate": _birth_date,
    "language": _language,
    "country": _country,
    "timezone": _timezone,
    "location": _location,
}


def normalize(name: str, value: Any) -> Any:
    """The stored form of a system attribute value, or InvalidAttribute."""
    check = _CHECKS.get(name)
    if check is not None:
        return check(value)
    if isinstance(value, str):
        trimmed = value.strip()
        if not trimmed:
            raise InvalidAttribute("empty_value", f"{name} is empty")
        return trimmed
    return value  # opt-ins: the Avro enum already allows only valid states
