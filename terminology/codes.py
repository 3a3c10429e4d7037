"""Code systems, codings and the legacy SRT → SNOMED CT translation.

Why: RDSR content must be selected by (code value, coding scheme), never by CodeMeaning, and most
field RDSRs still send legacy SNOMED-RT ("SRT") codes. ``normalise_coding`` turns any DICOM-scheme
coding into the FHIR system URI and, for SRT, into the current SNOMED CT concept, using the DICOM
PS3.16 Annex O map shipped in ``data/dicom_srt_to_sct.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

from terminology.reference import ReferenceData, load_reference

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
SRT = "http://snomed.info/srt"  # PS3.16 Table 8-1 FHIR URI for SNOMED-RT legacy codes
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

# Canonical base for DACS-defined CodeSystems, ValueSets and ConceptMaps. Change it in one place.
DACS_FHIR_BASE = "http://dacs.example.org/fhir"

# DICOM coding scheme designators (PS3.16 Table 8-1) and the FHIR system each stands for.
# SNM3 (SNOMED v3, used by Carestream) and 99SDM carry SNOMED-RT style codes as well.
SCHEME_TO_SYSTEM: dict[str, str] = {
    "DCM": DCM,
    "SCT": SCT,
    "SRT": SRT,
    "SNM3": SRT,
    "99SDM": SRT,
    "LN": LOINC,
    "LNC": LOINC,
    "UCUM": UCUM,
}

DACS_CODE_SYSTEMS = (
    "calculation-method",
    "dose-finding",
    "dose-quantity",
    "body-region",
    "standard-procedure",
)


def dacs_system(name: str) -> str:
    """Canonical URL of a DACS code system (``"body-region"`` → ``…/CodeSystem/body-region``)."""
    return f"{DACS_FHIR_BASE}/CodeSystem/{name}"


@dataclass(frozen=True)
class Coding:
    """A FHIR-style coding: system URI, code and optional display."""

    system: str
    code: str
    display: str | None = None

    def __post_init__(self) -> None:
        # An empty code is allowed: vendors send empty CodeValues (e.g. Target Region "Other"), and the
        # coding must survive to be reported as unrecognised.
        if not self.system:
            raise ValueError(f"a coding needs a system, got {self.system!r}|{self.code!r}")

    @classmethod
    def from_dicom(cls, code_value: str, scheme: str, meaning: str | None = None) -> Coding:
        """Build from a DICOM code triplet; an unknown scheme becomes ``urn:dicom:scheme:<scheme>``."""
        scheme = (scheme or "").strip()
        system = SCHEME_TO_SYSTEM.get(scheme) or f"urn:dicom:scheme:{scheme or 'unknown'}"
        return cls(system, (code_value or "").strip(), meaning)

    def key(self) -> tuple[str, str]:
        return (self.system, self.code)

    def to_fhir(self) -> dict[str, str]:
        out = {"system": self.system}
        if self.code:
            out["code"] = self.code
        if self.display:
            out["display"] = self.display
        return out


def snomed_from_legacy(srt_code: str, reference: ReferenceData | None = None) -> str | None:
    """The SNOMED CT concept id for a legacy SNOMED-RT code (``"T-D3000"`` → ``"51185008"``), if mapped."""
    ref = reference or load_reference()
    return ref.legacy_srt_to_sct.get(srt_code.strip())


def display_of(system: str, code: str, reference: ReferenceData | None = None) -> str | None:
    """The display DACS ships for a code, or None when the code is not in its fragments."""
    ref = reference or load_reference()
    cs = ref.code_systems.get(system)
    if cs is not None and code in cs.concepts:
        return cs.concepts[code].display
    return None


def normalise_coding(coding: Coding, reference: ReferenceData | None = None) -> Coding:
    """Translate a legacy SRT coding to SNOMED CT; other codings come back unchanged.

    The display is DACS's own for the target concept when known (so downstream code never depends
    on the vendor's CodeMeaning), else the incoming display.
    """
    ref = reference or load_reference()
    if coding.system != SRT:
        return coding
    sct = ref.legacy_srt_to_sct.get(coding.code)
    if sct is None:
        return coding
    return Coding(SCT, sct, display_of(SCT, sct, ref) or coding.display)


def same_concept(a: Coding, b: Coding, reference: ReferenceData | None = None) -> bool:
    """True when two codings name the same concept once legacy codes are translated."""
    ref = reference or load_reference()
    return normalise_coding(a, ref).key() == normalise_coding(b, ref).key()
