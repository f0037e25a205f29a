"""Files as `identify-stream publish` reads them; what a line means: rules/test_mapping."""

import json

from streams.rules.mapping import Unmappable, to_record
from streams.tools.importer import read_payloads
from tests.unit.rules.test_mapping import WEBENGAGE

NOW = 1_767_225_600_000


def test_jsonl_lines_with_their_numbers_and_what_is_wrong_with_the_others(tmp_path):
    jsonl = tmp_path / "users.jsonl"
    jsonl.write_text(json.dumps(WEBENGAGE) + "\n\nnot json\n[1]\n")
    lines = list(read_payloads(jsonl))
    assert lines[0] == (1, WEBENGAGE)
    assert [(n, type(p)) for n, p in lines[1:]] == [(3, Unmappable), (4, Unmappable)]
    assert [p.reason for _, p in lines[1:]] == ["undecodable", "unrecognised_json"]


def test_csv_columns_keep_their_json_types_except_identifiers_and_phones(tmp_path):
    table = tmp_path / "users.csv"
    table.write_text(
        "userId,phone,emailOptIn,attributes.visits,attributes.vip\n"
        "0042,+551155256325,true,3,false\n"
    )
    ((number, payload),) = read_payloads(table)
    assert number == 2
    record = to_record(payload, "w", NOW)
    assert record["userId"] == "0042"
    assert record["set"]["phone"] == "+551155256325"
    assert record["set"]["emailOptIn"] == "OPTIN"
    assert record["set"]["custom"] == {"visits": ("long", 3), "vip": ("boolean", False)}
