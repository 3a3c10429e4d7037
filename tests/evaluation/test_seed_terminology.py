"""``seed_terminology``: the terminology resources become readable, and re-seeding writes only changes."""

from __future__ import annotations

from fhir_server.operations.terminology import seed_terminology
from fhir_server.service import FhirService
from terminology.fhir import all_resources
from terminology.reference import load_reference


def test_seed_is_idempotent_and_picks_up_site_changes(service: FhirService, site_reference) -> None:
    expected = all_resources(load_reference())
    assert seed_terminology(service) == len(expected)
    for resource in expected:
        stored = service.read(resource["resourceType"], resource["id"]).resource()
        stored.pop("meta")
        assert stored == resource
    found = service.search("CodeSystem", [("url", "http://dacs.example.org/fhir/CodeSystem/dose-finding")])
    assert [r.id for r in found.page.resources] == ["dose-finding"]

    assert seed_terminology(service) == 0
    assert service.read("ConceptMap", "srt-to-snomed").version == 1

    # a site procedure-code rule changes one ConceptMap, and only that one is rewritten
    site_reference("protocols.json", {"kind": "protocol-map", "version": "site 1", "source": {"citation": "site"},
                                      "code_rules": [{"system": "urn:hospital:ris", "code": "TDM-THX",
                                                      "standard_procedure": "CT-CHEST"}]})
    assert seed_terminology(service) == 1
    cmap = service.read("ConceptMap", "procedure-code-to-standard-procedure")
    assert cmap.version == 2
    [group] = cmap.resource()["group"]
    assert group["element"] == [{"code": "TDM-THX", "target": [{"code": "CT-CHEST", "equivalence": "equivalent",
                                                                "display": "CT chest"}]}]
