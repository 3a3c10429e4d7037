"""Unit tests of the search building blocks: FHIRPath subset, value ranges, query parsing."""

from __future__ import annotations

import pytest

from fhir_server.definitions import SERVED_TYPES
from fhir_server.errors import FhirError
from fhir_server.search.fhirpath import UnsupportedExpression, compile_expression
from fhir_server.search.registry import params_for
from fhir_server.search.request import ChainClause, HasClause, ParamClause, parse_search, split_escaped
from fhir_server.search.values import BadValue, date_range, normalise_string, number_range


def test_every_served_search_parameter_compiles() -> None:
    for type_ in SERVED_TYPES:
        params = params_for(type_)
        assert "_id" in params and "_lastUpdated" in params, type_
    assert params_for("Observation")["component-code-value-quantity"].components[1].type == "quantity"


def test_fhirpath_subset() -> None:
    obs = {"resourceType": "Observation", "valueQuantity": {"value": 1}, "subject": {"reference": "Group/g"},
           "component": [{"valueCodeableConcept": {"text": "a"}}, {"valueQuantity": {"value": 2}}]}
    assert compile_expression("(Observation.value as Quantity)", "Observation")(obs) == [({"value": 1}, "Quantity")]
    assert compile_expression("Observation.subject.where(resolve() is Patient)", "Observation")(obs) == []
    values = compile_expression("(Observation.component.value as Quantity)", "Observation")(obs)
    assert values == [({"value": 2}, "Quantity")]
    pat = {"resourceType": "Patient", "telecom": [{"system": "email", "value": "a@b"}, {"system": "phone",
                                                                                      "value": "1"}],
           "deceasedDateTime": "2020"}
    assert compile_expression("Patient.telecom.where(system='phone')", "Patient")(pat)[0][0]["value"] == "1"
    deceased = compile_expression("Patient.deceased.exists() and Patient.deceased != false", "Patient")
    assert deceased(pat) == [(True, "boolean")] and deceased({"deceasedBoolean": False}) == []
    with pytest.raises(UnsupportedExpression):
        compile_expression("Patient.name.select(given)", "Patient")


def test_date_ranges_keep_precision() -> None:
    lo, hi = date_range("2024")
    assert hi - lo == 366 * 86_400_000 - 1  # 2024 is a leap year
    assert date_range("2024-03-05T14:30:00+01:00") == date_range("2024-03-05T13:30:00Z")
    assert date_range("2024-02-01")[1] + 1 == date_range("2024-02-02")[0]
    with pytest.raises(BadValue):
        date_range("2024-02-30")


def test_number_precision_and_strings() -> None:
    assert number_range("100") == (100.0, 99.5, 100.5)
    assert number_range("1.50") == (1.5, 1.495, 1.505)
    assert normalise_string("  Élodie ") == "elodie"
    assert split_escaped(r"a\,b,c", ",") == ["a,b", "c"]


def test_parse_search_forms() -> None:
    req = parse_search("Observation", [("subject:Patient.name", "x"), ("_has:Observation:patient:code", "1"),
                                       ("code", "a,b"), ("_sort", "-date,_id"), ("_count", "5000")])
    assert isinstance(req.clauses[0], ChainClause) and req.clauses[0].targets == ("Patient",)
    assert isinstance(req.clauses[1], HasClause)
    assert isinstance(req.clauses[2], ParamClause) and req.clauses[2].values == ("a", "b")
    assert [k.p for k in req.sort] == ["date", "_id"] and req.sort[0].descending
    assert req.count == 1000  # capped at the configured maximum
    for bad in [("_count", "x"), ("_sort", "component-code-value-quantity"), ("code:exact", "x"),
                ("_include", "Nope:x"), ("_total", "maybe"), ("patient.nosuch", "1")]:
        with pytest.raises(FhirError):
            parse_search("Observation", [bad])
