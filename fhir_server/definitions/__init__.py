"""Vendored FHIR R4 definitions (SearchParameters, required bindings) and the list of served types.

See ``README.md`` in this folder for where the data comes from and how to regenerate it.
"""

from __future__ import annotations

# The resource types DACS serves (PRODUCT.md, issue "FHIR R4 server core").
SERVED_TYPES: tuple[str, ...] = (
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Device", "Endpoint",
    "ImagingStudy", "Observation", "ServiceRequest", "Encounter", "DiagnosticReport",
    "DetectedIssue", "Subscription", "AuditEvent", "Provenance", "Binary", "Basic", "Composition",
    "MeasureReport", "CodeSystem", "ValueSet", "ConceptMap", "Parameters", "OperationDefinition",
    "Location", "Group", "DocumentReference", "Bundle", "Media",
)
