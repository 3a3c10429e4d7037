"""One conformance suite for every storage backend: versions, history, conditional interactions,
transactions and search semantics (http://hl7.org/fhir/R4/search.html) must behave identically."""

from __future__ import annotations

import threading

import pytest

from fhir_server.bundle import BundleProcessor
from fhir_server.errors import FhirError, Gone, NotFound, PreconditionFailed, Unprocessable
from fhir_server.service import FhirService
from fhir_server.storage import LoggedMessage
from fhir_server.storage.sqlite import SQLiteStore

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def ids(service: FhirService, type_: str, query: str) -> set[str]:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p] if query else []
    return {r.id for r in service.search(type_, pairs).page.resources}  # type: ignore[arg-type]


def patient(id_: str, family: str, **extra: object) -> dict:
    return {"resourceType": "Patient", "id": id_, "name": [{"family": family}], **extra}


def dose_obs(id_: str, patient_id: str, when: str, dlp: float, unit: str = "mGy.cm", **extra: object) -> dict:
    return {
        "resourceType": "Observation", "id": id_, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "73569-6", "display": "Radiation exposure"}],
                 "text": "Radiation dose summary"},
        "subject": {"reference": f"Patient/{patient_id}"}, "effectiveDateTime": when,
        "component": [{"code": {"coding": [{"system": DCM, "code": "113813"}]},
                       "valueQuantity": {"value": dlp, "unit": unit, "system": UCUM, "code": unit}}],
        **extra,
    }


# -- versions, history, deletes -----------------------------------------------------------------

def test_create_read_update_versions(service: FhirService) -> None:
    created = service.create("Patient", {"resourceType": "Patient", "name": [{"family": "Alaoui"}]})
    assert created.status == 201 and created.stored.version == 1
    body = service.read("Patient", created.stored.id).resource()
    assert body["meta"]["versionId"] == "1" and body["meta"]["lastUpdated"].endswith("Z")
    body["gender"] = "female"
    updated = service.update("Patient", created.stored.id, body)
    assert updated.status == 200 and updated.stored.version == 2
    assert service.vread("Patient", created.stored.id, "1").resource().get("gender") is None
    assert service.vread("Patient", created.stored.id, "2").resource()["gender"] == "female"
    history = service.history("Patient", created.stored.id, {})
    assert [r.version for r in history.resources] == [2, 1] and history.total == 2


def test_update_as_create_and_delete_tombstone(service: FhirService) -> None:
    result = service.update("Patient", "p-upd", patient("p-upd", "Bennani"))
    assert result.status == 201 and result.stored.version == 1
    deleted = service.delete("Patient", "p-upd")
    assert deleted is not None and deleted.deleted and deleted.version == 2
    with pytest.raises(Gone):
        service.read("Patient", "p-upd")
    with pytest.raises(Gone):
        service.vread("Patient", "p-upd", "2")
    assert service.vread("Patient", "p-upd", "1").resource()["name"][0]["family"] == "Bennani"
    assert service.delete("Patient", "p-upd") is None  # idempotent
    assert ids(service, "Patient", "family=bennani") == set()
    revived = service.update("Patient", "p-upd", patient("p-upd", "Bennani"))
    assert revived.status == 201 and revived.stored.version == 3
    assert [r.deleted for r in service.history("Patient", "p-upd", {}).resources] == [False, True, False]


def test_read_unknown_and_bad_version(service: FhirService) -> None:
    with pytest.raises(NotFound):
        service.read("Patient", "nope")
    service.update("Patient", "p1", patient("p1", "X"))
    with pytest.raises(NotFound):
        service.vread("Patient", "p1", "7")


def test_identical_update_is_a_no_op(service: FhirService) -> None:
    first = service.update("Patient", "same", patient("same", "A"))
    again = service.update("Patient", "same", {**patient("same", "A"), "meta": {"versionId": "1"}})
    assert again.status == 200 and again.stored.version == first.stored.version == 1
    assert service.history("Patient", "same", {}).total == 1


def test_if_match(service: FhirService) -> None:
    service.update("Patient", "p-m", patient("p-m", "A"))
    service.update("Patient", "p-m", patient("p-m", "B"), if_match='W/"1"')
    with pytest.raises(PreconditionFailed):
        service.update("Patient", "p-m", patient("p-m", "C"), if_match='W/"1"')
    assert service.read("Patient", "p-m").resource()["name"][0]["family"] == "B"


def test_validation_rejects_and_writes_nothing(service: FhirService) -> None:
    with pytest.raises(Unprocessable):
        service.create("Observation", {"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}})
    with pytest.raises(Unprocessable):
        service.create("Patient", {"resourceType": "Patient", "gender": "unknown-value"})
    with pytest.raises(FhirError):
        service.update("Patient", "a", {"resourceType": "Observation", "id": "a"})
    assert service.store.history(None, None, since=None, count=10, offset=0).total == 0


def test_type_and_system_history(service: FhirService) -> None:
    service.update("Patient", "h1", patient("h1", "A"))
    service.update("Device", "d1", {"resourceType": "Device", "id": "d1"})
    service.update("Patient", "h1", patient("h1", "B"))
    assert service.history("Patient", None, {}).total == 2
    system = service.history(None, None, {})
    assert system.total == 3 and system.resources[0].type == "Patient" and system.resources[0].version == 2
    since = system.resources[0].last_updated
    assert service.history(None, None, {"_since": since}).total == 1


# -- conditional interactions -------------------------------------------------------------------

def test_conditional_create_update_delete(service: FhirService) -> None:
    ident = [("identifier", "urn:oid:1.2|P7")]
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2", "value": "P7"}]}
    first = service.create("Patient", body, if_none_exist=ident)
    again = service.create("Patient", body, if_none_exist=ident)
    assert first.status == 201 and again.status == 200 and again.stored.id == first.stored.id
    updated = service.conditional_update("Patient", ident, {**body, "active": True})
    assert updated.stored.id == first.stored.id and updated.stored.version == 2
    created = service.conditional_update("Patient", [("identifier", "urn:oid:1.2|P8")],
                                         {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2",
                                                                                    "value": "P8"}]})
    assert created.status == 201
    service.create("Patient", body)  # now two match P7
    with pytest.raises(PreconditionFailed):
        service.conditional_update("Patient", ident, body)
    with pytest.raises(PreconditionFailed):
        service.conditional_delete("Patient", ident)
    assert service.conditional_delete("Patient", [("identifier", "urn:oid:1.2|P8")]) is not None
    assert ids(service, "Patient", "identifier=urn:oid:1.2|P8") == set()


def test_json_patch(service: FhirService) -> None:
    service.update("Patient", "pp", patient("pp", "Old"))
    result = service.patch("Patient", "pp", [{"op": "replace", "path": "/name/0/family", "value": "New"}])
    assert result.stored.version == 2 and ids(service, "Patient", "family=new") == {"pp"}
    with pytest.raises(FhirError) as bad:
        service.patch("Patient", "pp", [{"op": "replace", "path": "/gender", "value": "bogus"}])
    assert bad.value.status == 422
    with pytest.raises(FhirError):
        service.patch("Patient", "pp", [{"op": "remove", "path": "/nothing/here"}])


# -- transactions -------------------------------------------------------------------------------

def test_transaction_rewrites_urn_uuid_and_is_atomic(service: FhirService) -> None:
    processor = BundleProcessor(service)
    pat = "urn:uuid:11111111-1111-1111-1111-111111111111"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pat, "resource": {"resourceType": "Patient", "identifier": [{"system": "s", "value": "T1"}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=s|T1"}},
        {"resource": dose_obs("tx-o1", "x", "2024-01-01", 10) | {"subject": {"reference": pat}},
         "request": {"method": "PUT", "url": "Observation/tx-o1"}},
    ]}
    response = processor.process(bundle)
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created", "201 Created"]
    patient_id = response["entry"][0]["fullUrl"].split("/")[1]
    assert service.read("Observation", "tx-o1").resource()["subject"]["reference"] == f"Patient/{patient_id}"
    # the same bundle again: ifNoneExist finds the patient; the observation is unchanged: no new version
    again = processor.process(bundle)
    assert again["entry"][0]["response"]["status"] == "200 OK"
    assert service.read("Observation", "tx-o1").version == 1
    changed = {**bundle, "entry": [bundle["entry"][0], {**bundle["entry"][1], "resource": {
        **bundle["entry"][1]["resource"], "status": "amended"}}]}
    processor.process(changed)
    assert service.read("Observation", "tx-o1").version == 2
    assert len(ids(service, "Patient", "identifier=s|T1")) == 1
    # a failing entry rolls everything back
    broken = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("tx-p2", "Ok"), "request": {"method": "PUT", "url": "Patient/tx-p2"}},
        {"resource": {"resourceType": "Observation", "status": "nope", "code": {"text": "x"}},
         "request": {"method": "POST", "url": "Observation"}},
    ]}
    with pytest.raises(FhirError) as err:
        processor.process(broken)
    assert "entry[1]" in err.value.diagnostics
    with pytest.raises(NotFound):
        service.read("Patient", "tx-p2")


def test_transaction_conditional_reference_and_batch(service: FhirService) -> None:
    service.update("Patient", "cr", patient("cr", "Ref", identifier=[{"system": "mrn", "value": "42"}]))
    processor = BundleProcessor(service)
    response = processor.process({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": dose_obs("cr-o", "x", "2024-02-02", 5) | {"subject": {"reference": "Patient?identifier=mrn|42"}},
         "request": {"method": "PUT", "url": "Observation/cr-o"}}]})
    assert response["type"] == "transaction-response"
    assert service.read("Observation", "cr-o").resource()["subject"]["reference"] == "Patient/cr"
    batch = processor.process({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("b1", "Good"), "request": {"method": "PUT", "url": "Patient/b1"}},
        {"resource": {"resourceType": "Patient", "gender": "x"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/b1"}},
        {"request": {"method": "DELETE", "url": "Patient/cr"}},
    ]})
    statuses = [e["response"]["status"] for e in batch["entry"]]
    assert statuses[0] == "201 Created" and statuses[1] == "422" and statuses[2] == "200 OK"
    assert statuses[3] == "204 No Content"
    assert batch["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert batch["entry"][2]["resource"]["id"] == "b1"


# -- units of work and the message log ---------------------------------------------------------------

def _read_elsewhere(service: FhirService, type_: str, id_: str) -> bool:
    """Whether another thread (another connection) sees the resource."""
    seen: list[bool] = []
    worker = threading.Thread(target=lambda: seen.append(service.store.read(type_, id_) is not None))
    worker.start()
    worker.join()
    return seen[0]


def test_store_transaction_groups_commits(service: FhirService) -> None:
    store = service.store
    grouped = isinstance(store, SQLiteStore)  # MongoDB has no savepoints: each commit stays on its own
    with store.transaction():
        service.update("Patient", "u1", patient("u1", "One"))
        assert service.read("Patient", "u1").version == 1  # reads inside see the writes inside
        assert _read_elsewhere(service, "Patient", "u1") is not grouped  # others see them at the end
        with pytest.raises(Unprocessable), store.transaction():
            service.update("Patient", "u2", patient("u2", "Two"))
            service.update("Patient", "u3", {"resourceType": "Patient", "gender": "nope"})
        service.update("Patient", "u4", patient("u4", "Four"))
    assert _read_elsewhere(service, "Patient", "u1") and _read_elsewhere(service, "Patient", "u4")
    # the nested part that raised is undone alone (SQLite); on MongoDB its first commit stays
    assert (store.read("Patient", "u2") is None) is grouped
    assert store.read("Patient", "u3") is None
    with pytest.raises(RuntimeError), store.transaction():
        service.update("Patient", "u5", patient("u5", "Five"))
        raise RuntimeError("the whole unit fails")
    assert (store.read("Patient", "u5") is None) is grouped
    service.update("Patient", "u6", patient("u6", "Six"))  # the store is usable afterwards
    assert service.read("Patient", "u6").version == 1


def test_message_log(service: FhirService) -> None:
    store = service.store
    assert store.last_message("hl7", "RIS|H|1") is None
    first = LoggedMessage("hl7", "RIS|H|1", "2026-01-01T00:00:00.000001Z", "aa", "AE", b"MSH|1\r", b"ACK|AE\r")
    second = LoggedMessage("hl7", "RIS|H|1", "2026-01-01T00:00:01.000001Z", "aa", "AA", b"MSH|1\r", b"ACK|AA\r")
    silent = LoggedMessage("hl7", "RIS|H|2", "2026-01-01T00:00:02.000001Z", "bb", "AA", b"MSH|2\xe9\r", None)
    for message in (first, second, silent):
        store.log_message(message)
    assert store.last_message("hl7", "RIS|H|1") == second
    assert store.last_message("hl7", "RIS|H|2") == silent  # bytes kept exactly, no reply kept as None
    assert store.last_message("other", "RIS|H|1") is None
    if isinstance(store, SQLiteStore):  # logged inside a unit of work: undone with it
        with pytest.raises(RuntimeError), store.transaction():
            store.log_message(LoggedMessage("hl7", "RIS|H|3", "2026-01-01T00:00:03Z", "cc", "AA", b"x", b"y"))
            assert store.last_message("hl7", "RIS|H|3") is not None
            raise RuntimeError("undo")
        assert store.last_message("hl7", "RIS|H|3") is None


# -- search ---------------------------------------------------------------------------------------

@pytest.fixture
def data(service: FhirService) -> FhirService:
    s = service
    s.update("Organization", "org1", {"resourceType": "Organization", "id": "org1", "name": "CHU Ibn Rochd"})
    s.update("Patient", "pa", patient("pa", "Élodie", gender="female", birthDate="1980-05-17",
                                      managingOrganization={"reference": "Organization/org1"},
                                      identifier=[{"system": "urn:oid:2.16.504", "value": "MA-1"}],
                                      telecom=[{"system": "phone", "value": "+212600000001"}]))
    s.update("Patient", "pb", patient("pb", "Elmansouri", gender="male", birthDate="1975",
                                      meta={"tag": [{"system": "urn:dacs", "code": "vip"}]}))
    s.update("Patient", "pc", patient("pc", "Zahra", gender="female"))
    s.update("Observation", "o1", dose_obs("o1", "pa", "2024-01-10T09:00:00Z", 350.0))
    s.update("Observation", "o2", dose_obs("o2", "pa", "2024-03-05T14:30:00+01:00", 1200.0))
    s.update("Observation", "o3", dose_obs("o3", "pb", "2023-12-31", 0.8, unit="Gy.cm"))
    s.update("Observation", "o4", {"resourceType": "Observation", "id": "o4", "status": "preliminary",
                                   "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                                   "subject": {"reference": "Patient/pc"},
                                   "meta": {"profile": ["http://example.org/fhir/StructureDefinition/x/y"]},
                                   "effectivePeriod": {"start": "2024-06-01", "end": "2024-06-03"},
                                   "valueQuantity": {"value": 72, "system": UCUM, "code": "/min"}})
    return s


def test_string_search(data: FhirService) -> None:
    assert ids(data, "Patient", "family=el") == {"pa", "pb"}  # accent- and case-insensitive prefix
    assert ids(data, "Patient", "family:exact=Élodie") == {"pa"}
    assert ids(data, "Patient", "family:exact=elodie") == set()
    assert ids(data, "Patient", "family:contains=ahr") == {"pc"}
    assert ids(data, "Patient", "name=zah,elm") == {"pb", "pc"}
    assert ids(data, "Patient", "family=el&gender=male") == {"pb"}


def test_token_search(data: FhirService) -> None:
    assert ids(data, "Observation", f"code={LOINC}|73569-6") == {"o1", "o2", "o3"}
    assert ids(data, "Observation", "code=73569-6") == {"o1", "o2", "o3"}
    assert ids(data, "Observation", "code=|73569-6") == set()
    assert ids(data, "Observation", f"code={LOINC}|") == {"o1", "o2", "o3", "o4"}
    assert ids(data, "Observation", "status:not=final") == {"o4"}
    assert ids(data, "Observation", "code:text=radiation") == {"o1", "o2", "o3"}
    assert ids(data, "Patient", "identifier=urn:oid:2.16.504|MA-1") == {"pa"}
    assert ids(data, "Patient", "phone=+212600000001") == {"pa"}
    assert ids(data, "Patient", "_id=pa,pc") == {"pa", "pc"}
    assert ids(data, "Patient", "_tag=urn:dacs|vip") == {"pb"}
    assert ids(data, "Patient", "birthdate:missing=true") == {"pc"}
    assert ids(data, "Patient", "birthdate:missing=false") == {"pa", "pb"}


def test_date_search(data: FhirService) -> None:
    assert ids(data, "Observation", "date=2024-01-10") == {"o1"}
    assert ids(data, "Observation", "date=2024") == {"o1", "o2", "o4"}
    assert ids(data, "Observation", "date=2024-03-05T13:30:00Z") == {"o2"}  # same instant, other zone
    assert ids(data, "Observation", "date=lt2024-01-01") == {"o3"}
    assert ids(data, "Observation", "date=ge2024-03-05") == {"o2", "o4"}
    assert ids(data, "Observation", "date=gt2024-06-02") == {"o4"}  # the period ends after
    assert ids(data, "Observation", "date=sa2024-05-31") == {"o4"}
    assert ids(data, "Observation", "date=eb2024-01-01") == {"o3"}
    assert ids(data, "Observation", "date=ne2024-01-10") == {"o2", "o3", "o4"}
    assert ids(data, "Observation", "date=le2024-01-10") == {"o1", "o3"}
    assert ids(data, "Observation", "date=ge2024-01-01&date=lt2024-02-01") == {"o1"}
    assert ids(data, "Patient", "birthdate=1975-06-01") == set()  # 1975 is wider than the search day
    assert ids(data, "Patient", "birthdate=1975") == {"pb"}
    with pytest.raises(FhirError):
        ids(data, "Observation", "date=2024-13-45")


def test_quantity_and_number_search(data: FhirService) -> None:
    # o3 is 0.8 Gy.cm = 800 mGy.cm: units are compared after conversion
    assert ids(data, "Observation", f"component-value-quantity=gt500|{UCUM}|mGy.cm") == {"o2", "o3"}
    assert ids(data, "Observation", "component-value-quantity=350") == {"o1"}
    assert ids(data, "Observation", "component-value-quantity=ap1150") == {"o2"}
    assert ids(data, "Observation", "value-quantity=lt100") == {"o4"}
    assert ids(data, "Observation", "value-quantity=ge72.5") == set()
    assert ids(data, "Observation", "value-quantity=72.4") == set()
    assert ids(data, "Observation", "value-quantity=72") == {"o4"}


def test_combo_parameters_cover_value_and_components(data: FhirService) -> None:
    assert ids(data, "Observation", "combo-code=113813") == {"o1", "o2", "o3"}  # a component code
    assert ids(data, "Observation", "combo-code=8867-4") == {"o4"}  # the observation's own code
    assert ids(data, "Observation", "combo-value-quantity=72") == {"o4"}
    assert ids(data, "Observation", f"combo-value-quantity=gt1|{UCUM}|Gy.cm") == {"o2"}
    assert ids(data, "Observation", "combo-code-value-quantity=113813$lt400") == {"o1", "o3"}
    assert ids(data, "Observation", "combo-code:not=113813") == {"o4"}
    assert ids(data, "Observation", "combo-code:missing=false") == {"o1", "o2", "o3", "o4"}


def test_composite_search(data: FhirService) -> None:
    assert ids(data, "Observation", f"component-code-value-quantity={DCM}|113813$gt1000") == {"o2"}
    assert ids(data, "Observation", "component-code-value-quantity=113813$lt400") == {"o1", "o3"}
    assert ids(data, "Observation", "code-value-quantity=8867-4$72") == {"o4"}


def test_reference_search(data: FhirService) -> None:
    assert ids(data, "Observation", "subject=Patient/pa") == {"o1", "o2"}
    assert ids(data, "Observation", "patient=pa") == {"o1", "o2"}
    assert ids(data, "Observation", "subject=pb") == {"o3"}  # no type: matches the id in any target
    assert ids(data, "Observation", "subject:Patient=pc") == {"o4"}
    assert ids(data, "Observation", "subject=http://elsewhere.example/fhir/Patient/pa") == set()


def test_uri_and_profile_search(data: FhirService) -> None:
    assert ids(data, "Observation", "_profile=http://example.org/fhir/StructureDefinition/x/y") == {"o4"}


def test_chain_and_has(data: FhirService) -> None:
    assert ids(data, "Observation", "patient.family=elo") == {"o1", "o2"}
    assert ids(data, "Observation", "subject:Patient.gender=male") == {"o3"}
    assert ids(data, "Observation", "patient.organization.name=CHU") == {"o1", "o2"}
    assert ids(data, "Observation", "patient.family=nobody") == set()
    assert ids(data, "Patient", "_has:Observation:patient:code=73569-6") == {"pa", "pb"}
    assert ids(data, "Patient", "_has:Observation:patient:status=preliminary") == {"pc"}


def test_sort_paging_total(data: FhirService) -> None:
    result = data.search("Observation", [("patient", "pa"), ("_sort", "-date")])
    assert [r.id for r in result.page.resources] == ["o2", "o1"] and result.page.total == 2
    ordered = data.search("Observation", [("_sort", "date")]).page.resources
    assert [r.id for r in ordered] == ["o3", "o1", "o2", "o4"]
    multi = data.search("Patient", [("_sort", "gender,-family")]).page.resources
    assert [r.id for r in multi] == ["pc", "pa", "pb"]
    first = data.search("Observation", [("_sort", "date"), ("_count", "3")])
    second = data.search("Observation", [("_sort", "date"), ("_count", "3"), ("_offset", "3")])
    assert [r.id for r in first.page.resources] + [r.id for r in second.page.resources] == ["o3", "o1", "o2", "o4"]
    assert first.page.total == 4
    assert data.search("Observation", [("_total", "none")]).page.total is None
    counted = data.search("Observation", [("_summary", "count")])
    assert counted.page.total == 4 and counted.page.resources == []


def test_include_revinclude_iterate(data: FhirService) -> None:
    result = data.search("Observation", [("_id", "o1"), ("_include", "Observation:patient")])
    assert {(r.type, r.id) for r in result.included} == {("Patient", "pa")}
    rev = data.search("Patient", [("_id", "pa"), ("_revinclude", "Observation:subject")])
    assert {r.id for r in rev.included} == {"o1", "o2"}
    deep = data.search("Observation", [("_id", "o1"), ("_include", "Observation:patient"),
                                       ("_include:iterate", "Patient:organization")])
    assert {(r.type, r.id) for r in deep.included} == {("Patient", "pa"), ("Organization", "org1")}


def test_unknown_parameter_strict_and_lenient(data: FhirService) -> None:
    with pytest.raises(FhirError) as err:
        data.search("Patient", [("colour", "blue")])
    assert err.value.status == 400
    lenient = data.search("Patient", [("colour", "blue"), ("family", "zahra")], lenient=True)
    assert {r.id for r in lenient.page.resources} == {"pc"} and lenient.request.ignored == ("colour",)
    with pytest.raises(FhirError):
        data.search("Patient", [("family:below", "x")])


@pytest.mark.parametrize("value", ["' OR 1=1 --", '{"$gt": ""}', "%", "_", "\\", "x'); DROP TABLE history; --",
                                   "$where", ".*"])
def test_injection_is_inert(data: FhirService, value: str) -> None:
    assert ids(data, "Patient", f"family={value}") == set()
    assert ids(data, "Patient", f"family:contains={value}") == set()
    assert ids(data, "Patient", f"identifier={value}") == set()
    assert ids(data, "Patient", "family=el") == {"pa", "pb"}  # the store is intact


def test_quantity_search_converts_ucum_units(data: FhirService) -> None:
    # o3 is 0.8 Gy.cm = 800 mGy.cm; o2 is 1200 mGy.cm
    assert ids(data, "Observation", f"component-value-quantity=gt0.5|{UCUM}|Gy.cm") == {"o2", "o3"}
    assert ids(data, "Observation", f"component-value-quantity=800|{UCUM}|mGy.cm") == {"o3"}
    assert ids(data, "Observation", f"component-value-quantity=lt0.4|{UCUM}|Gy.cm") == {"o1"}
    # a unit of another kind never matches a dose-length product
    assert ids(data, "Observation", f"component-value-quantity=gt0|{UCUM}|mGy") == set()
