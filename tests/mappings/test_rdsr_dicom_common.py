"""DICOM → FHIR helpers used by the dose mapping (dates, identifiers, names, conditional URLs)."""

from __future__ import annotations

import pytest

from mappings.dicom_common import (
    LOCAL_ISSUER_SYSTEM,
    dicom_date_to_fhir,
    dicom_datetime_to_fhir,
    escape_search_value,
    identifier_query,
    is_valid_uid,
    issuer_system,
    person_name_to_fhir,
)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"dt": "20180105172103.083003"}, "2018-01-05T17:21:03.083003Z"),
    ({"dt": "19970101000631.737+0000"}, "1997-01-01T00:06:31.737Z"),
    ({"dt": "20240301101500+0100"}, "2024-03-01T10:15:00+01:00"),
    ({"dt": "20240301"}, "2024-03-01"),
    ({"date": "20240301", "time": "101500.5"}, "2024-03-01T10:15:00.5Z"),
    ({"date": "20240301", "time": "10:15:00"}, "2024-03-01T10:15:00Z"),
    ({"date": "20240301", "time": "1015", "utc_offset": "-0500"}, "2024-03-01T10:15:00-05:00"),
    ({"date": "20240701", "time": "120000", "zone": "Europe/Paris"}, "2024-07-01T12:00:00+02:00"),
    ({"date": "20240101", "time": "120000", "zone": "Europe/Paris"}, "2024-01-01T12:00:00+01:00"),
    ({"dt": "2024-03-01"}, None),
    ({"dt": "20241301"}, None),
    ({"date": ""}, None),
    ({}, None),
])
def test_dicom_datetime_to_fhir(kwargs, expected):
    assert dicom_datetime_to_fhir(**kwargs) == expected


def test_dicom_date():
    assert dicom_date_to_fhir("19540322") == "1954-03-22"
    assert dicom_date_to_fhir("1954") is None and dicom_date_to_fhir("19540230") is None


@pytest.mark.parametrize(("args", "expected"), [
    (("HOSP", "1.2.3.4", "ISO"), "urn:oid:1.2.3.4"),
    ((None, "https://hosp.example/mrn", "URI"), "https://hosp.example/mrn"),
    ((None, "A8F7B0E2-1C3D-4E5F-8A9B-0C1D2E3F4A5B", "UUID"), "urn:uuid:a8f7b0e2-1c3d-4e5f-8a9b-0c1d2e3f4a5b"),
    (("CHU Rabat", None, None), "urn:dacs:hl7v2:authority:CHU%20Rabat"),
    (("HOSP", "not an oid", "ISO"), "urn:dacs:hl7v2:authority:HOSP"),
    ((None, "hosp.example", "DNS"), "urn:dacs:hl7v2:authority:hosp.example"),
    ((None, None, None), LOCAL_ISSUER_SYSTEM),
])
def test_issuer_system(args, expected):
    assert issuer_system(*args) == expected


def test_search_values_are_escaped_for_a_query_string():
    assert escape_search_value("a|b,c$d\\e") == "a%5C%7Cb%5C%2Cc%5C%24d%5C%5Ce"
    assert escape_search_value("LO_Tm85+So=") == "LO_Tm85%2BSo%3D"
    assert identifier_query("urn:dicom:uid", "urn:oid:1.2") == "identifier=urn:dicom:uid|urn:oid:1.2"


def test_uid_validation():
    assert is_valid_uid("1.2.840.10008.5.1.4.1.1.88.67")
    assert not is_valid_uid("1.02.3") and not is_valid_uid("") and not is_valid_uid("1." * 40)


def test_person_names():
    assert person_name_to_fhir("Doe^Jane^M^Dr") == {"family": "Doe", "given": ["Jane", "M"], "prefix": ["Dr"],
                                                   "text": "Dr Jane M Doe"}
    assert person_name_to_fhir("Yamada^Tarou=山田^太郎")["text"] == "Tarou Yamada = 山田 太郎"
    assert person_name_to_fhir("") is None and person_name_to_fhir("^^") is None
