"""FHIR errors as exceptions that carry their HTTP status and OperationOutcome issue code.

Every failure in the server raises :class:`FhirError` (or a subclass); exactly one FastAPI exception
handler turns it into an ``OperationOutcome`` (see ``fhir_server.api.app``). The issue codes are from
the FHIR R4 value set ``issue-type`` (http://hl7.org/fhir/R4/valueset-issue-type.html).
"""

from __future__ import annotations

from typing import Any


class FhirError(Exception):
    """An error the client should see as an OperationOutcome with ``status``."""

    status: int = 400
    code: str = "invalid"

    def __init__(self, diagnostics: str, *, status: int | None = None, code: str | None = None,
                 expression: list[str] | None = None, severity: str = "error") -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.expression = expression or []
        self.severity = severity

    def outcome(self) -> dict[str, Any]:
        """The OperationOutcome resource for this error."""
        return operation_outcome(self.severity, self.code, self.diagnostics, self.expression)


class NotFound(FhirError):
    status, code = 404, "not-found"


class Gone(FhirError):
    status, code = 410, "deleted"


class Conflict(FhirError):
    status, code = 409, "conflict"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class Unprocessable(FhirError):
    status, code = 422, "processing"


class NotSupported(FhirError):
    status, code = 400, "not-supported"


class TooCostly(FhirError):
    status, code = 400, "too-costly"


def operation_outcome(severity: str, code: str, diagnostics: str,
                      expression: list[str] | None = None) -> dict[str, Any]:
    """A one-issue OperationOutcome as a JSON-ready dict."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}
