"""Exceptions raised by ``terminology``: all are ``ValueError`` so callers can map them to 4xx outcomes."""

from __future__ import annotations


class TerminologyError(ValueError):
    """Base class for every error raised by the terminology package."""


class UnitError(TerminologyError):
    """A unit code is not valid UCUM, or not one DACS supports."""


class IncompatibleUnitsError(UnitError):
    """Two valid units measure different quantities (e.g. mGy and mSv, or mGy and mGy.cm)."""


class ReferenceDataError(TerminologyError):
    """A shipped or site reference-data file is missing, malformed or inconsistent."""


class UnknownRegionError(TerminologyError):
    """A body region is not in the DACS body-region vocabulary."""


class NoCoefficientError(TerminologyError):
    """No verified coefficient exists for the requested combination (set, region, age, phantom…)."""


class OutOfDomainError(TerminologyError):
    """An input lies outside the range over which a published fit or table is valid."""


class UnknownCodeError(TerminologyError):
    """A code or code system is not known to the terminology registry."""


class MissingInputError(TerminologyError):
    """A calculation lacks an input it needs (patient age under a 'refuse' policy, neutron energy…)."""
