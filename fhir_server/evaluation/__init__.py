"""Dose evaluation on the server: evaluate stored examinations, record results and alerts, summarise.

* ``records``: read a stored examination (ImagingStudy + dose Observations) into typed records;
* ``rules``: the pure evaluation rules (effective dose, SSDE, DRLs, thresholds, cumulative, repeats);
* ``resources``: the FHIR Observations, DetectedIssues and Provenance that record the results;
* ``evaluator``: :class:`DoseEvaluator`, the reads and the one transaction that writes the results;
* ``summary``: the patient dose summary behind ``Patient/$dose-summary``.

Numbers and rules come from :mod:`terminology` (with the site's overrides in ``<data dir>/reference``).
"""

from fhir_server.evaluation.evaluator import DoseEvaluator, EvaluationReport, IssueOutcome, study_ids_of
from fhir_server.evaluation.rules import ExamEvaluation, Finding
from fhir_server.evaluation.summary import dose_summary

__all__ = ["DoseEvaluator", "EvaluationReport", "ExamEvaluation", "Finding", "IssueOutcome", "dose_summary",
           "study_ids_of"]
