"""End-to-end with fhirpy, a real FHIR client, against a running ``dacs serve``.

fhirpy sends counts as ``_count=0&_totalMethod=count``, conditional create and update with the
criteria as query parameters, and patches as a JSON object (merge patch): the server supports all.
"""

from __future__ import annotations

import uuid

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from tests.fhir_server.conftest import RunningServer


@pytest.fixture(scope="module")
def client(server: RunningServer) -> SyncFHIRClient:
    return SyncFHIRClient(server.base)


def test_crud_search_count(client: SyncFHIRClient) -> None:
    family = f"Fhirpy{uuid.uuid4().hex[:6]}"
    patient = client.resource("Patient", name=[{"family": family, "given": ["Amina"]}], gender="female",
                              birthDate="1990-04-02")
    patient.save()
    assert patient.id and patient.meta.versionId == "1"
    for i, when in enumerate(["2024-01-05", "2024-02-05", "2024-03-05"]):
        client.resource("Observation", status="final",
                        code={"coding": [{"system": "http://loinc.org", "code": "73569-6"}]},
                        subject=patient.to_reference(), effectiveDateTime=when,
                        valueQuantity={"value": 100 + i, "system": "http://unitsofmeasure.org", "code": "mGy.cm"}
                        ).save()
    search = client.resources("Observation").search(patient=patient.id).sort("-date")
    assert search.count() == 3
    found = search.limit(2).fetch()
    assert [o.effectiveDateTime for o in found] == ["2024-03-05", "2024-02-05"]
    assert len(search.limit(2).fetch_all()) == 3  # follows the next links
    assert client.resources("Patient").search(family=family.lower()).first().id == patient.id
    patient["active"] = True
    patient.save()
    assert client.reference("Patient", patient.id).to_resource().active is True
    patient.delete()
    with pytest.raises(ResourceNotFound):
        client.reference("Patient", patient.id).to_resource()


def test_conditional_create_update_and_patch(client: SyncFHIRClient) -> None:
    value = uuid.uuid4().hex
    criteria = {"identifier": f"urn:dacs:test|{value}"}
    body = client.resource("Patient", identifier=[{"system": "urn:dacs:test", "value": value}])
    created, is_new = client.resources("Patient").search(**criteria).get_or_create(body)
    again, is_new_again = client.resources("Patient").search(**criteria).get_or_create(body)
    assert is_new and not is_new_again and again.id == created.id
    updated, created_flag = client.resources("Patient").search(**criteria).update(
        client.resource("Patient", identifier=body.identifier, gender="male"))
    assert not created_flag and updated.id == created.id and updated.gender == "male"
    patched = client.patch("Patient", created.id, active=False)
    assert patched["active"] is False and patched["gender"] == "male"


def test_server_errors_reach_the_client(client: SyncFHIRClient) -> None:
    with pytest.raises(OperationOutcome):
        client.resource("Patient", gender="robot").save()
