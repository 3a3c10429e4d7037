"""HL7 v2 → FHIR transaction Bundles: every sample mapped, values asserted, resources validated (R4B)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from mappings.hl7v2 import (
    Hl7Error,
    MappingOptions,
    MappingResult,
    merge_upsert,
    parse_message,
    process_message,
    split_messages,
)
from mappings.hl7v2.errors import (
    RequiredFieldMissing,
    SegmentSequenceError,
    TableValueNotFound,
    UnsupportedEventCode,
    UnsupportedMessageType,
    UnsupportedProcessingId,
    UnsupportedVersionId,
)

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOCAL = "urn:dacs:hl7v2:authority:"


def sample(samples_dir: Path, prefix: str) -> bytes:
    return next((samples_dir / "hl7").glob(f"{prefix}_*.hl7")).read_bytes()


def mapped(samples_dir: Path, prefix: str) -> MappingResult:
    result = process_message(sample(samples_dir, prefix))
    validate(result)
    return result


def validate(result: MappingResult) -> None:
    """Every entry valid FHIR (R4B models), fullUrls urn:uuid, references resolve inside the Bundle."""
    assert result.bundle is not None
    get_fhir_model_class("Bundle").model_validate(result.bundle)
    urls = {e["fullUrl"] for e in result.bundle["entry"]}
    assert all(u.startswith("urn:uuid:") for u in urls) and len(urls) == len(result.bundle["entry"])
    for entry in result.bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert entry["request"]["method"] == "PUT"
        assert entry["request"]["url"].startswith(f"{resource['resourceType']}?identifier=")
        for ref in _references(resource):
            assert ref in urls, ref


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def resources(result: MappingResult, resource_type: str) -> list[dict[str, Any]]:
    assert result.bundle is not None
    return [e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def entry_of(result: MappingResult, resource: dict[str, Any]) -> dict[str, Any]:
    assert result.bundle is not None
    return next(e for e in result.bundle["entry"] if e["resource"] is resource)


def ident(resource: dict[str, Any], type_code: str) -> dict[str, Any]:
    return next(i for i in resource["identifier"]
                if i.get("type", {}).get("coding", [{}])[0].get("code") == type_code)


def study_uids(request: dict[str, Any]) -> list[str]:
    return [i["value"] for i in request["identifier"] if i.get("system") == "urn:dicom:uid"]


# --- orders ---------------------------------------------------------------------------------------------


def test_orm_o01_ihe_with_zds(samples_dir: Path) -> None:
    result = mapped(samples_dir, "01")
    assert (result.message_type, result.control_id) == ("ORM^O01", "103106")
    [patient] = resources(result, "Patient")
    [encounter] = resources(result, "Encounter")
    [request] = resources(result, "ServiceRequest")
    assert patient["identifier"] == [{"system": f"{LOCAL}ADT1", "value": "583295"}]
    assert patient["name"] == [{"family": "DOE", "given": ["J1"]}] and patient["gender"] == "male"
    assert encounter["identifier"][0]["value"] == "V103-1" and encounter["class"]["code"] == "EMER"
    assert encounter["participant"][0]["individual"]["identifier"]["value"] == "5101"
    assert ident(request, "PLAC") == {"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
                                      "system": f"{LOCAL}MESA_ORDPLC", "value": "A103Z"}
    assert ident(request, "FILL")["value"] == "B103Z"
    assert ident(request, "ACSN")["value"] == "MOF5026"  # OBR-18 in IHE v2.3.1
    assert study_uids(request) == ["urn:oid:1.113654.3.13.1026"]  # ZDS-1
    assert request["status"] == "active"  # ORC-5 SC
    assert request["priority"] == "stat"  # ORC-7.6 S
    assert request["category"][0]["coding"][0]["code"] == "MR"  # OBR-24
    assert [c["code"] for c in request["code"]["coding"]] == ["P1", "X1_A1"]
    assert request["requester"]["identifier"]["value"] == "7101"
    assert request["authoredOn"] == "2000-07-01T09:00:00+00:00"  # ORC-9, ORC-1 NW
    assert "occurrenceDateTime" not in request  # no TQ1, no ORC-7.4/OBR-27.4/OBR-36/OBR-6
    assert request["subject"]["reference"] == entry_of(result, patient)["fullUrl"]
    assert request["encounter"]["reference"] == entry_of(result, encounter)["fullUrl"]
    assert entry_of(result, request)["request"]["url"] == (
        f"ServiceRequest?identifier={LOCAL}MESA_ORDPLC|A103Z")
    assert entry_of(result, patient)["request"]["url"] == f"Patient?identifier={LOCAL}ADT1|583295"


def test_omi_o23_with_ipc_and_tq1(samples_dir: Path) -> None:
    result = mapped(samples_dir, "02")
    [patient] = resources(result, "Patient")
    [request] = resources(result, "ServiceRequest")
    values = [(i["system"], i["value"]) for i in patient["identifier"]]
    assert values == [(f"{LOCAL}zxcv", "4711471151"), (f"{LOCAL}CHIP-ISSUER", "1234"),
                      (f"{LOCAL}TATTOO-ISSUER", "1234")]  # PID-3 first (the key), then PID-2, PID-4
    assert patient["gender"] == "female"  # PID-8 "F^"
    assert ident(request, "ACSN")["value"] == "ACC"  # IPC-1
    assert study_uids(request) == ["urn:oid:1.2.392.200036.9125.0.199402091242.1"]  # IPC-3
    assert request["category"][0]["coding"][0]["code"] == "CT"  # IPC-5
    assert request["occurrenceDateTime"] == "2000-08-16T15:10:00+00:00"  # TQ1-7
    assert request["code"]["coding"][0] == {"system": "http://loinc.org", "code": "24725-4",
                                            "display": "Head CT"}  # OBR-4 empty → OBR-44


def test_omi_o23_charset_mismatch_and_repeated_aet(samples_dir: Path) -> None:
    result = mapped(samples_dir, "03")
    [request] = resources(result, "ServiceRequest")
    assert ident(request, "PLAC")["value"] == "PlacerOrderNumberImagingServiceRequest"
    assert ident(request, "ACSN") == {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                                      "system": f"{LOCAL}XYZ_RADIOLOGY", "value": "AccessionNumber"}
    assert study_uids(request) == ["urn:oid:1.2.392.200036.9125.0.198811291108.7"]
    reason = request["reasonCode"][0]["coding"][0]
    assert reason["code"] == "D1304" and "12 \u201335." in reason["display"]  # UTF-8 en dash intact
    assert "priority" not in request
    assert any("RequestedProcedurePriority".upper() in w for w in result.warnings)
    assert any("8859/1" in w for w in result.warnings)
    assert request["requester"]["display"] == (
        "DR RequestingPhysicianGN RequestingPhysicianMN RequestingPhysicianFN Md")


def test_omi_header_with_zds_and_obr18_instead_of_ipc(samples_dir: Path) -> None:
    result = mapped(samples_dir, "04")
    [request] = resources(result, "ServiceRequest")
    assert ident(request, "ACSN")["value"] == "AccessionNumber"  # OBR-18
    assert study_uids(request) == ["urn:oid:1.2.392.200036.9125.0.198811291108.7"]  # ZDS-1
    assert request["category"][0]["coding"][0]["code"] == "CT"  # OBR-24


def test_constructed_orm_with_escapes_latin1_and_oid_authority(samples_dir: Path) -> None:
    result = mapped(samples_dir, "15")
    [patient] = resources(result, "Patient")
    [request] = resources(result, "ServiceRequest")
    assert patient["identifier"][0] == {"type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                                        "system": "urn:oid:1.2.3.4.5", "value": "MRN001"}
    assert patient["identifier"][1]["type"]["coding"][0]["code"] == "NI"
    assert patient["name"] == [{"family": "Mü\\ller&Sons", "given": ["J|rgen"], "prefix": ["Dr."]}]
    assert patient["birthDate"] == "1960-02-29"
    assert request["code"]["coding"][0]["display"] == "CT Head w/o ^ contrast"
    assert request["occurrenceDateTime"] == "2024-01-02T10:00:00+00:00"  # ORC-7.4
    assert request["priority"] == "routine"  # ORC-7.6 R
    notes = [n["text"] for n in request["note"]]
    assert notes == ["Line 1 bold text\nsecond repetition ~ literal tilde",
                     "History:\nFall\r\nRule out bleed"]
    assert study_uids(request) == ["urn:oid:1.2.826.0.1.3680043.2.1125.1.99"]
    assert not resources(result, "Encounter")  # PV1 without PV1-19
    assert any("PV1-19" in w for w in result.warnings)


def test_timezone_option_applies_to_times_without_offset(samples_dir: Path) -> None:
    raw = sample(samples_dir, "15")
    zone = dt.timezone(dt.timedelta(hours=1))
    result = process_message(raw, MappingOptions(timezone=zone))
    [request] = resources(result, "ServiceRequest")
    assert request["occurrenceDateTime"] == "2024-01-02T10:00:00+01:00"


def test_order_cancel_and_status_maps() -> None:
    def status(orc1: str, orc5: str) -> str:
        raw = (f"MSH|^~\\&|RIS|H|DACS|H|||ORM^O01|{orc1}{orc5}|P|2.3.1\rPID|||1^^^H\r"
               f"ORC|{orc1}|P1^RIS|||{orc5}\rOBR|1|P1^RIS||X^Y^L\r").encode()
        [request] = resources(process_message(raw), "ServiceRequest")
        return request["status"]

    assert status("CA", "CA") == "revoked"
    assert status("CA", "") == "active"  # the IG: a cancel *request* leaves the order active
    assert status("DC", "") == "revoked"
    assert status("XO", "CM") == "completed"
    assert status("XO", "") == "unknown"
    assert status("NW", "IP") == "active"
    assert status("HD", "HD") == "on-hold"


def test_several_orders_in_one_message() -> None:
    raw = (b"MSH|^~\\&|RIS|H|DACS|H|||ORM^O01|9|P|2.3.1\rPID|||1^^^H\r"
           b"ORC|NW|P1^RIS\rOBR|1|P1^RIS||A^A^L\rZDS|1.2.3^100^Application^DICOM\r"
           b"ORC|NW|P2^RIS\rOBR|2|P2^RIS||B^B^L\rZDS|1.2.4^100^Application^DICOM\r")
    result = process_message(raw)
    validate(result)
    requests = resources(result, "ServiceRequest")
    assert [ident(r, "PLAC")["value"] for r in requests] == ["P1", "P2"]
    assert [study_uids(r) for r in requests] == [["urn:oid:1.2.3"], ["urn:oid:1.2.4"]]


@pytest.mark.parametrize(
    ("raw", "error", "code"),
    [
        (b"MSH|^~\\&|R|H|D|H|||ORM^O01|1|P|2.3.1\rPID|||1^^^H\r", SegmentSequenceError, 100),
        (b"MSH|^~\\&|R|H|D|H|||ORM^O01|1|P|2.3.1\rORC|NW|P1\rOBR|1|P1\r", SegmentSequenceError, 100),
        (b"MSH|^~\\&|R|H|D|H|||ORM^O01|1|P|2.3.1\rPID\rORC|NW|P1\rOBR|1|P1\r", RequiredFieldMissing, 101),
        (b"MSH|^~\\&|R|H|D|H|||ORM^O01|1|P|2.3.1\rPID|||1\rORC|NW\rOBR|1\r", RequiredFieldMissing, 101),
        (b"MSH|^~\\&|R|H|D|H|||ORM^O01|1|P|2.3.1\rPID|||1\rORC||P1\rOBR|1|P1\r", RequiredFieldMissing, 101),
        (b"MSH|^~\\&|R|H|D|H|||ORM^O01|1|P|2.3.1\rPID|||1\rORC|ZZ|P1\rOBR|1|P1\r", TableValueNotFound, 103),
        (b"MSH|^~\\&|R|H|D|H|||ORU^R01|1|P|2.5\rPID|||1\r", UnsupportedMessageType, 200),
        (b"MSH|^~\\&|R|H|D|H|||ADT^A02|1|P|2.5\rPID|||1\r", UnsupportedEventCode, 201),
        (b"MSH|^~\\&|R|H|D|H|||ADT^A08|1|Q|2.5\rPID|||1\r", UnsupportedProcessingId, 202),
        (b"MSH|^~\\&|R|H|D|H|||ADT^A08|1|P|2.9\rPID|||1\r", UnsupportedVersionId, 203),
        (b"MSH|^~\\&|R|H|D|H|||ADT^A08|1|P|2.2\rPID|||1\r", UnsupportedVersionId, 203),
        (b"MSH|^~\\&|R|H|D|H|||ADT^A08||P|2.5\rPID|||1\r", RequiredFieldMissing, 101),
        (b"MSH|^~\\&|R|H|D|H|||ADT^A40|1|P|2.5\rPID|||1^^^H\r", SegmentSequenceError, 100),
        (b"MSH|^~\\&|R|H|D|H|||ADT^A47|1|P|2.5\rPID|||1^^^H\rMRG|\r", RequiredFieldMissing, 101),
    ],
)
def test_refusals_carry_table_0357_codes(raw: bytes, error: type[Hl7Error], code: int) -> None:
    with pytest.raises(error) as caught:
        process_message(raw)
    assert caught.value.code == code


@pytest.mark.parametrize("prefix", ["09", "10", "12", "14"])
def test_results_and_queries_are_unsupported(samples_dir: Path, prefix: str) -> None:
    with pytest.raises(UnsupportedMessageType):
        process_message(sample(samples_dir, prefix))


# --- ADT ------------------------------------------------------------------------------------------------


def test_a01_v23_repeating_identifiers_address_telecom(samples_dir: Path) -> None:
    result = mapped(samples_dir, "11")
    [patient] = resources(result, "Patient")
    [encounter] = resources(result, "Encounter")
    keys = [(i["system"].removeprefix(LOCAL), i["value"]) for i in patient["identifier"]]
    assert keys == [("MSH_MRN", "2148790"), ("MSH_EMPI", "162840"), ("MSH_DTC", "3722"), ("IID", "184737"),
                    ("MSQ_MRN", "Q2147670")]  # PID-2 repeats PID-3[1]: kept once
    assert patient["identifier"][3]["type"]["coding"][0]["code"] == "DONOR"  # trailing blank trimmed
    assert entry_of(result, patient)["request"]["url"] == f"Patient?identifier={LOCAL}MSH_MRN|2148790"
    assert patient["birthDate"] == "1952-11-29" and patient["gender"] == "female"
    assert patient["address"] == [{"line": ["221 CANVIEW AVENUE", "66-D"], "city": "BRONX", "state": "NY",
                                   "postalCode": "10454", "country": "USA", "district": "058"}]
    assert [t["value"] for t in patient["telecom"]] == ["3472444150", "(000)000-0000"]
    assert {t["use"] for t in patient["telecom"]} == {"home"}  # PID-13, uses not in table 0201
    assert encounter["class"]["code"] == "IMP" and encounter["status"] == "in-progress"  # A01
    assert encounter["period"] == {"start": "2014-02-10T22:53:00+00:00"}  # PV1-45 is "" → no end


def test_a08_without_structure_component(samples_dir: Path) -> None:
    result = mapped(samples_dir, "06")
    [patient] = resources(result, "Patient")
    [encounter] = resources(result, "Encounter")
    assert patient["identifier"][0]["value"] == "583295"  # PID-3 is the key even with PID-2 present
    assert encounter["status"] == "unknown"  # IG Event[EncounterStatus]: A08 → unknown


def test_a31_update_person(samples_dir: Path) -> None:
    result = mapped(samples_dir, "07")
    [patient] = resources(result, "Patient")
    assert patient["name"] == [{"family": "Smith", "given": ["Lucy", "Mark"]}]
    assert patient["address"] == [{"line": ["PatientAddress"]}]
    assert result.repoints == ()


def test_batch_a04_messages(samples_dir: Path) -> None:
    for raw in split_messages(sample(samples_dir, "13")).messages:
        result = process_message(raw)
        validate(result)
        [patient] = resources(result, "Patient")
        assert patient["identifier"] == [{"type": {"coding": [{"system": V2_0203, "code": "A"}]},
                                          "system": f"{LOCAL}100", "value": "0000112234"}]
        assert patient["address"] == [{"city": "RICHMOND", "postalCode": "3121"}]
        assert "gender" not in patient  # PID-8 "1" is not in table 0001
        assert patient["birthDate"] == "1013-11-13"


def test_rsp_pid_iso_oid_authority(samples_dir: Path) -> None:
    from mappings.hl7v2.patient import map_pid

    message = parse_message(sample(samples_dir, "14"))
    pid = message.segment("PID")
    assert pid is not None
    patient = map_pid(pid, message.msh, MappingOptions())
    assert patient.key.system == "urn:oid:1.3.6.1.4.1.21367.2011.2.5.17" and patient.key.value == "10101"
    assert patient.resource["address"] == [{"use": "home", "line": ["VIA DELLE VIE"], "city": "CAGLIARI",
                                            "country": "100", "district": "092009"}]
    assert patient.resource["name"] == [{"family": "JOHN", "given": ["SMITH"]}]


def test_a40_merge_links_and_repoints(samples_dir: Path) -> None:
    result = mapped(samples_dir, "05")
    survivor, merged = resources(result, "Patient")
    assert survivor["identifier"][0]["value"] == "NEW_PID_1" and survivor["active"] is True
    assert merged["identifier"][0]["value"] == "OLD_PID_1" and merged["active"] is False
    assert survivor["link"] == [{"other": {"reference": entry_of(result, merged)["fullUrl"]},
                                 "type": "replaces"}]
    assert merged["link"] == [{"other": {"reference": entry_of(result, survivor)["fullUrl"]},
                               "type": "replaced-by"}]
    assert merged["name"] == [{"family": "Old_Smith", "given": ["Lucy", "Mark"]}]  # MRG-7
    [repoint] = result.repoints
    assert (repoint.old.value, repoint.new.value) == ("OLD_PID_1", "NEW_PID_1")
    assert repoint.old.system == repoint.new.system == f"{LOCAL}ADT1"


def test_a47_identifier_change_matches_old_or_new(samples_dir: Path) -> None:
    result = mapped(samples_dir, "08")
    [patient] = resources(result, "Patient")
    assert [i["value"] for i in patient["identifier"]] == ["NEW_PID_1"]
    url = entry_of(result, patient)["request"]["url"]
    assert url == f"Patient?identifier={LOCAL}ADT1|OLD_PID_1,{LOCAL}ADT1|NEW_PID_1"
    [upsert] = result.upserts
    assert {k.value for k in upsert.drop_identifiers} == {"OLD_PID_1"}
    stored = {"resourceType": "Patient", "id": "p1", "identifier": [
        {"system": f"{LOCAL}ADT1", "value": "OLD_PID_1"}, {"system": "urn:oid:9.9", "value": "keep"}]}
    merged = merge_upsert(stored, patient, upsert)
    assert [i["value"] for i in merged["identifier"]] == ["NEW_PID_1", "keep"] and merged["id"] == "p1"


# --- HL7 v2 update semantics ------------------------------------------------------------------------------

ADT = "MSH|^~\\&|RIS|H|DACS|H|||ADT^A08|{id}|P|2.5\rPID|||1^^^H||{name}||{birth}|{sex}|||{address}\r"


def test_hl7_null_clears_and_empty_keeps() -> None:
    stored = process_message(ADT.format(id=1, name="Doe^Jo", birth="19700101", sex="F",
                                        address="1 Rue^^Rabat").encode())
    [first] = resources(stored, "Patient")
    update = process_message(ADT.format(id=2, name="Doe^Joanna", birth='""', sex="",
                                        address='""').encode())
    [second] = resources(update, "Patient")
    [upsert] = update.upserts
    assert upsert.cleared == {"birthDate", "_birthDate", "address"}
    result = merge_upsert({**first, "id": "p1", "telecom": [{"system": "phone", "value": "1"}]},
                          second, upsert)
    assert result["name"] == [{"family": "Doe", "given": ["Joanna"]}]  # sent → replaced
    assert "birthDate" not in result and "address" not in result  # "" → cleared
    assert result["gender"] == "female"  # empty → kept
    assert result["telecom"] == [{"system": "phone", "value": "1"}]  # not mapped from this message → kept
    assert result["id"] == "p1"


def test_merge_upsert_without_stored_is_the_mapped_resource() -> None:
    result = process_message(ADT.format(id=1, name="Doe", birth="", sex="M", address="").encode())
    [patient] = resources(result, "Patient")
    assert merge_upsert(None, patient, result.upserts[0]) == patient


def test_same_message_maps_to_identical_bundle(samples_dir: Path) -> None:
    raw = sample(samples_dir, "02")
    assert process_message(raw).bundle == process_message(raw).bundle


def test_birth_time_and_invalid_dates() -> None:
    result = process_message(ADT.format(id=1, name="Doe", birth="197001011230", sex="X", address="").encode())
    validate(result)
    [patient] = resources(result, "Patient")
    assert patient["birthDate"] == "1970-01-01"
    assert patient["_birthDate"]["extension"][0]["valueDateTime"] == "1970-01-01T12:30:00+00:00"
    assert any("PID-8" in w for w in result.warnings)
    bad = process_message(ADT.format(id=2, name="Doe", birth="19701301", sex="M", address="").encode())
    assert "birthDate" not in resources(bad, "Patient")[0]
    assert any("PID-7" in w for w in bad.warnings)


def test_a40_with_two_patient_groups_and_several_prior_identifiers() -> None:
    raw = (b"MSH|^~\\&|RIS|H|DACS|H|||ADT^A40^ADT_A39|M1|P|2.5\r"
           b"PID|||NEW1^^^H||Doe^A\rMRG|OLD1^^^H~OLD1B^^^OTHER\r"
           b"PID|||NEW2^^^H||Doe^B\rMRG|OLD2^^^H\r")
    result = process_message(raw)
    validate(result)
    patients = resources(result, "Patient")
    assert [(p["identifier"][0]["value"], p["active"]) for p in patients] == [
        ("NEW1", True), ("OLD1", False), ("NEW2", True), ("OLD2", False)]
    assert [i["value"] for i in patients[1]["identifier"]] == ["OLD1", "OLD1B"]
    assert [(r.old.value, r.new.value) for r in result.repoints] == [("OLD1", "NEW1"), ("OLD2", "NEW2")]
    with pytest.raises(SegmentSequenceError):
        process_message(b"MSH|^~\\&|RIS|H|DACS|H|||ADT^A40|M2|P|2.5\rMRG|OLD^^^H\rPID|||NEW^^^H\r")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024", "2024"), ("202402", "2024-02"), ("20240229", "2024-02-29"),
        ("2024022913", "2024-02-29T13:00:00+00:00"), ("202402291305", "2024-02-29T13:05:00+00:00"),
        ("20240229130507.25", "2024-02-29T13:05:07.250+00:00"),
        ("20240229130507-0500", "2024-02-29T13:05:07-05:00"),
        ("20230229", None), ("202413", None), ("0000", None), ("2024022925", None), ("2024x", None),
        ("202401011200+9900", None), ("", None),
    ],
)
def test_hl7_times_to_fhir(raw: str, expected: str | None) -> None:
    from mappings.hl7v2.datatypes import fhir_datetime

    assert fhir_datetime(raw, MappingOptions()) == expected


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8",
                                     "2.8.1", "2.8.2"])
def test_every_supported_version_maps(version: str) -> None:
    encoding = "^~\\&#" if version >= "2.7" else "^~\\&"
    raw = (f"MSH|{encoding}|RIS|H|DACS|H|20240101||ADT^A31^ADT_A05|V{version}|P|{version}\r"
           f"PID|||ID{version}^^^H||Doe^Jo\r").encode()
    result = process_message(raw)
    validate(result)
    [patient] = resources(result, "Patient")
    assert patient["identifier"][0]["value"] == f"ID{version}"
