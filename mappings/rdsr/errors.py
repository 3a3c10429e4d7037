"""The one exception family the dose-report mappings raise.

Every failure to understand an input ends as a :class:`RdsrMappingError` (a ``ValueError``) with a
message that says what was wrong and where, so the receiver can turn it into one DICOM failure
status and the archive can quarantine the object with that reason.
"""

from __future__ import annotations


class RdsrMappingError(ValueError):
    """Base class: the dataset cannot be mapped; the message says why."""


class NotADoseReportError(RdsrMappingError):
    """The dataset is not a dose report DACS maps (not an SR, a non-dose SR, a proprietary summary)."""


class UnsupportedTemplateError(RdsrMappingError):
    """A dose report of a template DACS recognises but does not map (e.g. TID 10030 patient dose)."""


class MalformedReportError(RdsrMappingError):
    """A dose report whose structure is broken: missing UIDs, no content, unreadable ContentSequence."""


class MalformedNumberError(MalformedReportError):
    """A numeric content item that DACS needs holds a value that is not a finite number."""


class NoHeaderDoseError(RdsrMappingError):
    """An image whose header carries no dose attribute at all (nothing to derive a dose from)."""
