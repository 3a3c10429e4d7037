"""MPPS dose is a fallback: counted for a study without a dose report, ignored once the study has an RDSR
summary (evaluation records and the unevaluated path of ``$dose-summary``), on both backends."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from fhir_server.bundle import BundleProcessor
from fhir_server.evaluation import DoseEvaluator, dose_summary, study_ids_of
from fhir_server.evaluation.records import is_fallback_summary, parse_exam, preferred_summaries
from fhir_server.evaluation.summary import exam_rows
from fhir_server.service import FhirService
from mappings.rdsr import map_mpps_dose
from tests.evaluation.conftest import fluoro_exam, next_number, store_report

LOINC = "http://loinc.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def store_mpps(service: FhirService, patient: str, study_uid: str, dap_dgycm2: str) -> str:
    create = Dataset()
    create.PatientID = patient
    create.Modality = "RF"
    create.PerformedProcedureStepStartDate = "20240301"
    create.PerformedProcedureStepStartTime = "101500"
    step = Dataset()
    step.StudyInstanceUID = study_uid
    create.ScheduledStepAttributesSequence = Sequence([step])
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    done.ImageAndFluoroscopyAreaDoseProduct = dap_dgycm2
    done.TotalTimeOfFluoroscopy = 60
    entries = map_mpps_dose(create, [done], sop_instance_uid=generate_uid()).bundle["entry"]
    ids = study_ids_of(BundleProcessor(service).transaction(entries))
    assert len(ids) == 1
    return ids[0]


def dap_rows(service: FhirService, study_id: str) -> list[float]:
    patient = service.read("ImagingStudy", study_id).resource()["subject"]["reference"].split("/")[1]
    return [row["dap"]["value"] for row in exam_rows(dose_summary(service, patient)) if row.get("dap")]


@pytest.mark.parametrize("evaluated", [False, True])
def test_mpps_counts_alone_and_yields_to_the_rdsr(service: FhirService, evaluator: DoseEvaluator,
                                                  evaluated: bool) -> None:
    patient = f"P{next_number()}"
    report = fluoro_exam(patient=patient, dap_gym2="0.0003")  # 3 Gy.cm2
    study = store_mpps(service, patient, report.StudyInstanceUID, "12.5")  # 1.25 Gy.cm2
    if evaluated:
        evaluator.evaluate_study(study)
    assert dap_rows(service, study) == [pytest.approx(1.25)]
    assert store_report(service, report) == study
    if evaluated:
        evaluator.evaluate_study(study)
    assert dap_rows(service, study) == [pytest.approx(3.0)]  # not 4.25


def test_parse_exam_prefers_report_summaries() -> None:
    def summary(oid: str, system: str, dap: float) -> dict:
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "identifier": [{"system": system, "value": oid}],
                "code": {"coding": [{"system": LOINC, "code": "73569-6"}]},
                "component": [{"code": {"coding": [{"system": DCM, "code": "113722"}]},
                               "valueQuantity": {"value": dap, "unit": "mGy.cm2",
                                                 "system": "http://unitsofmeasure.org", "code": "mGy.cm2"}}]}

    mpps = summary("m", "urn:dacs:mpps-dose", 1250)
    rdsr = summary("r", "urn:dacs:dose-accumulation", 3000)
    continued = summary("c", "urn:dacs:dose-accumulation", 500)
    study = {"resourceType": "ImagingStudy", "id": "s", "modality": [{"system": DCM, "code": "RF"}]}
    assert is_fallback_summary(mpps) and not is_fallback_summary(rdsr)
    assert preferred_summaries([mpps]) == [mpps]
    assert preferred_summaries([mpps, rdsr, continued]) == [rdsr, continued]
    exam = parse_exam(study, [mpps, rdsr, continued])
    assert exam.summary_ids == ("r", "c")
    assert exam.dap_total is not None and exam.dap_total.value_in("mGy.cm2") == pytest.approx(3500)
    alone = parse_exam(study, [mpps])
    assert alone.summary_ids == ("m",) and alone.dap_total is not None
    assert alone.dap_total.value_in("Gy.cm2") == pytest.approx(1.25)
