"""Size-specific dose estimate (SSDE), AAPM Reports 204 and 220.

SSDE = f(D) · CTDIvol with f(D) = a · exp(−b · D), D in cm, and (a, b) depending on the phantom the
scanner reported CTDIvol for (32 cm body or 16 cm head; read it from the RDSR's "CTDIw Phantom Type",
113835). Report 204 takes the *effective diameter*; Report 220 replaces it with the *water-equivalent
diameter* Dw, computed from the CT numbers of the image. Choosing the wrong phantom gives about a
factor of 2 error, so the phantom is a required input, never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from terminology.codes import DCM, Coding
from terminology.errors import NoCoefficientError, OutOfDomainError, TerminologyError
from terminology.reference import ReferenceData, SsdeFit, load_reference
from terminology.results import Calculation, Coefficient, Input
from terminology.ucum import Quantity, QuantityKind, as_quantity

# DICOM CID 10023 "Size Specific Dose Estimation Method for CT" (PS3.16).
METHOD_WATER_EQUIVALENT_DIAMETER = Coding(DCM, "113988", "Estimated from Water Equivalent Diameter")

_PHANTOM_ALIASES = {
    "32": "body-32cm",
    "body": "body-32cm",
    "body-32cm": "body-32cm",
    "16": "head-16cm",
    "head": "head-16cm",
    "head-16cm": "head-16cm",
}

DIAMETER_KINDS = ("effective", "water-equivalent")


@dataclass(frozen=True)
class Ssde(Calculation):
    """An SSDE in mGy with its conversion factor f and the diameter it came from."""

    value: float
    factor: float
    diameter_cm: float
    diameter_kind: str
    phantom: str
    dicom_method: Coding | None = None
    unit: str = "mGy"

    @property
    def quantity(self) -> Quantity:
        return Quantity(self.value, self.unit)


def _fit_for(phantom: str, ref: ReferenceData) -> SsdeFit:
    key = phantom.strip()
    for fit in ref.ssde_fits.values():
        if key in fit.phantom_codes or _PHANTOM_ALIASES.get(key.lower()) == fit.phantom or key == fit.phantom:
            return fit
    raise NoCoefficientError(
        f"no SSDE fit for phantom {phantom!r}; known: "
        + ", ".join(f"{f.phantom} ({'/'.join(f.phantom_codes)})" for f in ref.ssde_fits.values())
    )


def conversion_factor(
    diameter_cm: float,
    phantom: str,
    *,
    allow_extrapolation: bool | None = None,
    reference: ReferenceData | None = None,
) -> tuple[float, SsdeFit, bool]:
    """f(D) for a diameter in cm; returns (f, fit, extrapolated).

    Raises ``OutOfDomainError`` outside the fit's domain unless extrapolation is allowed (argument,
    else the evaluation policy's ``ssde_allow_extrapolation``).
    """
    ref = reference or load_reference()
    fit = _fit_for(phantom, ref)
    if not math.isfinite(diameter_cm) or diameter_cm <= 0:
        raise TerminologyError(f"diameter must be a positive length, got {diameter_cm!r} cm")
    low, high = fit.domain_cm
    outside = not (low <= diameter_cm <= high)
    allow = ref.policy.ssde_allow_extrapolation if allow_extrapolation is None else allow_extrapolation
    if outside and not allow:
        raise OutOfDomainError(f"diameter {diameter_cm:g} cm is outside the {fit.id} fit domain {low:g}-{high:g} cm")
    return fit.a * math.exp(-fit.b * diameter_cm), fit, outside


def ssde(
    ctdivol: Quantity | tuple[float, str],
    diameter: Quantity | tuple[float, str],
    phantom: str,
    *,
    diameter_kind: str = "water-equivalent",
    allow_extrapolation: bool | None = None,
    reference: ReferenceData | None = None,
) -> Ssde:
    """SSDE from CTDIvol and an effective (AAPM 204) or water-equivalent (AAPM 220) diameter.

    Parameters
    ----------
    ctdivol
        CTDIvol in any dose unit.
    diameter
        The patient diameter in any length unit (converted to cm).
    phantom
        The CTDI phantom of ``ctdivol``: ``"32"``/``"body"``/DCM ``113691`` or ``"16"``/``"head"``/``113690``.
    diameter_kind
        ``"effective"`` (AAPM 204) or ``"water-equivalent"`` (AAPM 220, DICOM method 113988).
    """
    if diameter_kind not in DIAMETER_KINDS:
        raise TerminologyError(f"diameter_kind must be one of {DIAMETER_KINDS}, got {diameter_kind!r}")
    ref = reference or load_reference()
    dose = as_quantity(ctdivol, QuantityKind.DOSE)
    if dose.value < 0:
        raise TerminologyError("CTDIvol cannot be negative")
    d_cm = as_quantity(diameter, QuantityKind.LENGTH).value_in("cm")
    f, fit, extrapolated = conversion_factor(d_cm, phantom, allow_extrapolation=allow_extrapolation, reference=ref)
    assumptions = (f"diameter {d_cm:g} cm outside the fit domain: extrapolated",) if extrapolated else ()
    water = diameter_kind == "water-equivalent"
    return Ssde(
        method="ssde-water-equivalent-diameter" if water else "ssde-effective-diameter",
        inputs=(
            Input("CTDIvol", dose.value, dose.unit),
            Input("water-equivalent diameter" if water else "effective diameter", d_cm, "cm"),
            Input("phantom", fit.phantom),
        ),
        coefficients=(Coefficient(f"f({d_cm:g} cm)", f, "1", fit.id, fit.source),),
        assumptions=assumptions,
        value=f * dose.value,
        factor=f,
        diameter_cm=d_cm,
        diameter_kind=diameter_kind,
        phantom=fit.phantom,
        dicom_method=METHOD_WATER_EQUIVALENT_DIAMETER if water else None,
    )


def effective_diameter(ap: Quantity | tuple[float, str], lateral: Quantity | tuple[float, str]) -> Quantity:
    """AAPM 204 effective diameter √(AP × LAT): the diameter of a circle with the ellipse's area.

    Returned in cm. (The reference document marks the Report 204 wording as unverified; the formula
    is the geometric mean the report's Table 1D is indexed by.)
    """
    ap_cm = as_quantity(ap, QuantityKind.LENGTH).value_in("cm")
    lat_cm = as_quantity(lateral, QuantityKind.LENGTH).value_in("cm")
    if ap_cm <= 0 or lat_cm <= 0:
        raise TerminologyError("AP and lateral dimensions must be positive")
    return Quantity(math.sqrt(ap_cm * lat_cm), "cm")


def water_equivalent_diameter(mean_ct_number: float, roi_area: Quantity | tuple[float, str]) -> Quantity:
    """AAPM 220 water-equivalent diameter Dw = 2 · √((CT̄/1000 + 1) · A_ROI / π), returned in cm.

    ``mean_ct_number`` is the mean HU inside the patient contour; ``roi_area`` that contour's area.
    """
    area_cm2 = as_quantity(roi_area, QuantityKind.AREA).value_in("cm2")
    if not math.isfinite(mean_ct_number) or area_cm2 <= 0:
        raise TerminologyError("need a finite mean CT number and a positive ROI area")
    water_area = (mean_ct_number / 1000 + 1) * area_cm2
    if water_area <= 0:
        raise TerminologyError(f"mean CT number {mean_ct_number} HU gives no water-equivalent area")
    return Quantity(2 * math.sqrt(water_area / math.pi), "cm")
