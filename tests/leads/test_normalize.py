import pytest

from leads import normalize as norm


@pytest.mark.parametrize(
    "raw",
    ["(512) 555-0143", "512.555.0143", "+1 512 555 0143", "5125550143", "1-512-555-0143", " 512 555 0143 "],
)
def test_one_number_written_many_ways_is_one_e164(raw):
    assert norm.normalize_phone(raw, "US") == ("+15125550143", None)


def test_plus_one_and_ten_digits_agree():
    ten, _ = norm.normalize_phone("5125550143", "US")
    plus_one, _ = norm.normalize_phone("+15125550143", "US")
    eleven, _ = norm.normalize_phone("15125550143", "US")
    assert ten == plus_one == eleven == "+15125550143"


def test_region_decides_numbers_without_country_code():
    assert norm.normalize_phone("020 7946 0018", "GB")[0] == "+442079460018"
    # The same digits read as a US number are not valid there.
    assert norm.normalize_phone("020 7946 0018", "US")[0] is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [("call me", "phone_unparseable"), ("555-12", "phone_invalid"), ("123-456-7890", "phone_invalid")],
)
def test_bad_phone_gives_flag_with_reason(raw, code):
    value, flag = norm.normalize_phone(raw, "US")
    assert value is None
    assert flag.code == code and flag.field == "phone" and flag.value == raw and flag.reason


def test_email_is_case_folded_and_unwrapped():
    assert norm.normalize_email("  Maria.Garcia@Gmail.COM ") == ("maria.garcia@gmail.com", None)
    assert norm.normalize_email("Maria <MARIA@example.com>")[0] == "maria@example.com"
    assert norm.normalize_email("mailto:Bob@Example.com")[0] == "bob@example.com"


@pytest.mark.parametrize("raw", ["bob@", "n/a", "bob at example dot com"])
def test_bad_email_flagged(raw):
    value, flag = norm.normalize_email(raw)
    assert value is None and flag.code == "email_invalid" and flag.value == raw


def test_empty_values_are_neither_value_nor_flag():
    assert norm.normalize_phone("", "US") == (None, None)
    assert norm.normalize_email("   ") == (None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Web Form", "web_form"),
        ("webform", "web_form"),
        ("QUOTE", "quote_request"),
        ("HomeAdvisor", "angi"),
        ("missed_call", "missed_call"),
    ],
)
def test_source_aliases(raw, expected):
    assert norm.normalize_source(raw) == (expected, None)


def test_unknown_source_is_other_with_flag():
    value, flag = norm.normalize_source("billboard on I-35")
    assert value == "other" and flag.code == "source_unknown"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ASAP!!", "emergency"),
        ("burst pipe", "emergency"),
        ("no AC in the house", "emergency"),
        ("this week", "high"),
        ("no rush", "low"),
        ("not urgent", "low"),
        ("nothing urgent", "low"),
        ("Not an emergency, just a drip", "low"),
        ("no access to the attic", None),
        ("", None),
        ("hmm?", None),
    ],
)
def test_urgency(raw, expected):
    assert norm.normalize_urgency(raw) == expected


def test_names():
    assert norm.clean_name("  JOHN   SMITH ") == "John Smith"
    assert norm.clean_name("McDonald") == "McDonald"
    assert norm.split_full_name("Smith, John") == ("John", "Smith")
    assert norm.split_full_name("maria de la cruz") == ("Maria", "De La Cruz")


def test_catalog_match_uses_catalog_spelling_and_flags_unknown():
    catalog = ["Drain cleaning", "Water heater"]
    assert norm.match_catalog("WATER-HEATER", catalog, "service_type") == ("Water heater", None)
    assert norm.match_catalog("A/C Repair", ["AC repair"], "service_type") == ("AC repair", None)
    value, flag = norm.match_catalog("pool repair", catalog, "service_type")
    assert value == "pool repair" and flag.code == "service_type_not_in_catalog"
