"""The REST API through real HTTP against a running ``dacs serve`` (http://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.fhir_server.conftest import RunningServer

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def http(server: RunningServer) -> httpx.Client:
    with httpx.Client(base_url=server.base, headers={"Accept": FHIR_JSON}, timeout=30) as client:
        yield client


def new_patient(family: str = "Tazi", **extra: object) -> dict:
    return {"resourceType": "Patient", "name": [{"family": family}],
            "identifier": [{"system": "urn:dacs:test", "value": uuid.uuid4().hex}], **extra}


def outcome_of(response: httpx.Response) -> dict:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"][0]["diagnostics"]
    return body


def test_metadata_declares_what_is_implemented(http: httpx.Client) -> None:
    r = http.get("/metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith(FHIR_JSON)
    cap = r.json()
    assert cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "4.0.1"
    rest = cap["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}
    obs = next(x for x in rest["resource"] if x["type"] == "Observation")
    names = {p["name"] for p in obs["searchParam"]}
    assert {"patient", "code", "date", "component-code-value-quantity", "_lastUpdated"} <= names
    assert "Observation:patient" in obs["searchInclude"]
    assert obs["conditionalCreate"] is True and obs["versioning"] == "versioned-update"


def test_create_read_vread_update_delete(http: httpx.Client) -> None:
    r = http.post("/Patient", json=new_patient(), headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201
    created = r.json()
    pid = created["id"]
    assert r.headers["location"].endswith(f"/Patient/{pid}/_history/1") and r.headers["etag"] == 'W/"1"'
    r = http.get(f"/Patient/{pid}")
    assert r.status_code == 200 and r.json() == created and r.headers["etag"] == 'W/"1"'
    assert "GMT" in r.headers["last-modified"]
    updated = {**created, "gender": "male"}
    r = http.put(f"/Patient/{pid}", json=updated, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "2"
    r = http.put(f"/Patient/{pid}", json=updated, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 412
    outcome_of(r)
    assert http.get(f"/Patient/{pid}/_history/1").json().get("gender") is None
    assert http.get(f"/Patient/{pid}/_history/9").status_code == 404
    history = http.get(f"/Patient/{pid}/_history").json()
    assert history["type"] == "history" and history["total"] == 2
    assert http.delete(f"/Patient/{pid}").status_code == 204
    r = http.get(f"/Patient/{pid}")
    assert r.status_code == 410 and outcome_of(r)["issue"][0]["code"] == "deleted"
    entries = http.get(f"/Patient/{pid}/_history").json()["entry"]
    assert entries[0]["request"]["method"] == "DELETE" and "resource" not in entries[0]


def test_update_as_create_and_prefer(http: httpx.Client) -> None:
    pid = f"pref-{uuid.uuid4().hex[:8]}"
    r = http.put(f"/Patient/{pid}", json={**new_patient(), "id": pid}, headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and r.headers["location"].endswith(f"/Patient/{pid}/_history/1")
    r = http.put(f"/Patient/{pid}", json={**new_patient(), "id": pid},
                 headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 200 and r.json()["resourceType"] == "OperationOutcome"


def test_errors_are_operation_outcomes(http: httpx.Client) -> None:
    cases = [
        (http.get("/Patient/does-not-exist"), 404),
        (http.get("/Unicorn/1"), 404),
        (http.post("/Patient/x", json=new_patient()), 405),
        (http.post("/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}), 415),
        (http.post("/Patient", content=b"{not json", headers={"Content-Type": FHIR_JSON}), 400),
        (http.post("/Patient", json={"resourceType": "Patient", "gender": "robot"}), 422),
        (http.post("/Patient", json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}}), 400),
        (http.put("/Patient/abc", json={"resourceType": "Patient", "id": "xyz"}), 400),
        (http.get("/Patient?nonsense=1"), 400),
        (http.get("/Patient?_format=xml"), 406),
        (http.get("/Observation?date=notadate"), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        outcome_of(response)


def test_conditional_create_header_and_query(http: httpx.Client) -> None:
    body = new_patient("Cond")
    ident = body["identifier"][0]
    criteria = f"identifier={ident['system']}|{ident['value']}"
    first = http.post("/Patient", json=body, headers={"If-None-Exist": criteria})
    second = http.post("/Patient", json=body, headers={"If-None-Exist": criteria})
    third = http.post(f"/Patient?{criteria}", json=body)  # fhirpy's form: criteria as query parameters
    assert first.status_code == 201 and second.status_code == 200 and third.status_code == 200
    assert first.json()["id"] == second.json()["id"] == third.json()["id"]
    r = http.put(f"/Patient?{criteria}", json={**body, "active": True})
    assert r.status_code == 200 and r.json()["id"] == first.json()["id"]
    assert http.delete(f"/Patient?{criteria}").status_code == 204
    assert http.get(f"/Patient?{criteria}").json()["total"] == 0


def test_conflict_is_409(http: httpx.Client) -> None:
    taken = http.post("/Patient", json=new_patient("Taken")).json()
    body = new_patient("Other")
    ident = body["identifier"][0]
    # the criteria match nothing, but the id the client gives belongs to a resource that does not match
    r = http.put(f"/Patient?identifier={ident['system']}|{ident['value']}", json={**body, "id": taken["id"]})
    assert r.status_code == 409
    outcome_of(r)


def test_patch_json_patch_and_merge(http: httpx.Client) -> None:
    pid = http.post("/Patient", json=new_patient("Patch")).json()["id"]
    r = http.patch(f"/Patient/{pid}", content=b'[{"op":"add","path":"/gender","value":"female"}]',
                   headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["gender"] == "female"
    r = http.patch(f"/Patient/{pid}", json={"active": False}, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["meta"]["versionId"] == "3"


def test_search_paging_links_and_shaping(http: httpx.Client) -> None:
    family = f"Page{uuid.uuid4().hex[:6]}"
    for _ in range(5):
        assert http.post("/Patient", json=new_patient(family, gender="other")).status_code == 201
    first = http.get("/Patient", params={"family": family, "_count": 2, "_sort": "_id"}).json()
    assert first["type"] == "searchset" and first["total"] == 5 and len(first["entry"]) == 2
    seen = [e["resource"]["id"] for e in first["entry"]]
    link = {x["relation"]: x["url"] for x in first["link"]}
    while "next" in link:
        page = http.get(link["next"]).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
        link = {x["relation"]: x["url"] for x in page["link"]}
    assert len(seen) == 5 and seen == sorted(seen)
    summary = http.get("/Patient", params={"family": family, "_summary": "true", "_count": 1}).json()
    tags = summary["entry"][0]["resource"]["meta"]["tag"]
    assert any(t["code"] == "SUBSETTED" for t in tags)
    elements = http.get("/Patient", params={"family": family, "_elements": "gender", "_count": 1}).json()
    assert set(elements["entry"][0]["resource"]) == {"resourceType", "id", "meta", "gender"}
    count = http.get("/Patient", params={"family": family, "_summary": "count", "_count": 2}).json()
    assert count["total"] == 5 and count["entry"] == []
    assert [link["relation"] for link in count["link"]] == ["self"]  # a count has no pages
    posted = http.post("/Patient/_search", data={"family": family})
    assert posted.status_code == 200 and posted.json()["total"] == 5


def test_lenient_handling_reports_ignored_parameters(http: httpx.Client) -> None:
    r = http.get("/Patient", params={"nonsense": "1", "_count": 1}, headers={"Prefer": "handling=lenient"})
    assert r.status_code == 200
    outcomes = [e for e in r.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert "nonsense" in outcomes[0]["resource"]["issue"][0]["diagnostics"]


def test_transaction_over_http(http: httpx.Client) -> None:
    urn = f"urn:uuid:{uuid.uuid4()}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": urn, "resource": new_patient("Trans"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "73569-6"}]},
                      "subject": {"reference": urn}},
         "request": {"method": "POST", "url": "Observation"}},
    ]}
    r = http.post("", json=bundle)
    assert r.status_code == 200 and r.json()["type"] == "transaction-response"
    locations = [e["response"]["location"] for e in r.json()["entry"]]
    patient_id = locations[0].split("/")[1]
    obs = http.get("/" + locations[1].rsplit("/_history", 1)[0]).json()
    assert obs["subject"]["reference"] == f"Patient/{patient_id}"
    found = http.get("/Observation", params={"patient": patient_id, "_include": "Observation:patient"}).json()
    assert {e["search"]["mode"] for e in found["entry"]} == {"match", "include"}
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": new_patient("Never"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "gender": "robot"}, "request": {"method": "POST", "url": "Patient"}}]}
    r = http.post("", json=bad)
    assert r.status_code == 422 and "entry[1]" in outcome_of(r)["issue"][0]["diagnostics"]
    assert http.get("/Patient", params={"family": "Never"}).json()["total"] == 0


def test_history_type_and_system(http: httpx.Client) -> None:
    http.post("/Device", json={"resourceType": "Device", "status": "active"})
    assert http.get("/Device/_history").json()["total"] >= 1
    system = http.get("/_history", params={"_count": 3}).json()
    assert system["type"] == "history" and len(system["entry"]) == 3


def test_mongo_backend_serves_the_same_api(mongo_server: RunningServer) -> None:
    with httpx.Client(base_url=mongo_server.base, timeout=30) as client:
        pid = client.post("/Patient", json=new_patient("Mongo")).json()["id"]
        client.post("/Observation", json={"resourceType": "Observation", "status": "final",
                                          "code": {"text": "dose"}, "subject": {"reference": f"Patient/{pid}"},
                                          "effectiveDateTime": "2024-05-01"})
        r = client.get("/Observation", params={"patient": pid, "date": "2024-05"})
        assert r.status_code == 200 and r.json()["total"] == 1
        assert client.get(f"/Patient/{pid}/_history").json()["total"] == 1
