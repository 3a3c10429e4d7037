"""Order–study reconciliation and patient merges: keeping references consistent across sources.

Whichever arrives first, the RIS order (ServiceRequest) or the dose report (ImagingStudy), the study
ends up ``basedOn`` its order, matched by accession number and then by Study Instance UID, and the
study and its dose Observations point at the order's Patient (the RIS is the source of truth for who
the patient is). A patient merge (HL7 A40) re-points every resource of the merged patient.
"""

from __future__ import annotations

from typing import Any

from fhir_server.definitions import SERVED_TYPES
from fhir_server.search.filters import Cond, Match
from fhir_server.search.registry import params_for
from fhir_server.service import FhirService, now_instant
from fhir_server.storage.base import StoredResource, Write

ACCESSION = "ACSN"
DICOM_UID = "urn:dicom:uid"


def _accessions(resource: dict[str, Any]) -> list[str]:
    out = []
    for ident in resource.get("identifier", []):
        codings = (ident.get("type") or {}).get("coding", [])
        if any(c.get("code") == ACCESSION for c in codings) and ident.get("value"):
            out.append(ident["value"])
    return out


def _study_uids(resource: dict[str, Any]) -> list[str]:
    return [i["value"] for i in resource.get("identifier", []) if i.get("system") == DICOM_UID and i.get("value")]


def _rewrite_references(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: new if k == "reference" and v == old else _rewrite_references(v, old, new)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_references(v, old, new) for v in node]
    return node


def _search(service: FhirService, type_: str, p: str, cond: Cond, limit: int = 100) -> list[StoredResource]:
    page = service.store.search(type_, Match(p, cond), (), count=limit, offset=0, total=False)
    return page.resources


class Reconciler:
    """Links ImagingStudy ↔ ServiceRequest and re-points resources after patient merges."""

    def __init__(self, service: FhirService) -> None:
        self.service = service

    def _orders_for(self, study: dict[str, Any]) -> list[StoredResource]:
        for accession in _accessions(study):
            found = [o for o in _search(self.service, "ServiceRequest", "identifier", Cond("k", "eq", accession))
                     if accession in _accessions(o.resource())]
            if found:
                return found
        for uid in _study_uids(study):
            found = _search(self.service, "ServiceRequest", "identifier", Cond("k", "eq", uid))
            if found:
                return found
        return []

    def _studies_for(self, order: dict[str, Any]) -> list[StoredResource]:
        found: dict[str, StoredResource] = {}
        keys = set(_accessions(order) + _study_uids(order))
        if not keys:
            return []
        for study in _search(self.service, "ImagingStudy", "identifier", Cond("k", "in", tuple(sorted(keys)))):
            resource = study.resource()
            if keys & set(_accessions(resource) + _study_uids(resource)):
                found[study.id] = study
        return list(found.values())

    def link_study(self, study_id: str) -> bool:
        """Point a stored ImagingStudy at its order (and the order's patient). True if anything changed."""
        with self.service.store.lock:
            study = self.service.store.read("ImagingStudy", study_id)
            if study is None or study.deleted:
                return False
            orders = self._orders_for(study.resource())
            if not orders:
                return False
            return self._link(study, orders[0])

    def link_order(self, order_id: str) -> int:
        """Point every stored study of this order at it. Returns how many studies changed."""
        with self.service.store.lock:
            order = self.service.store.read("ServiceRequest", order_id)
            if order is None or order.deleted:
                return 0
            return sum(self._link(study, order) for study in self._studies_for(order.resource()))

    def _link(self, study: StoredResource, order: StoredResource) -> bool:
        resource = study.resource()
        order_ref = f"ServiceRequest/{order.id}"
        patient_ref = (order.resource().get("subject") or {}).get("reference")
        changed = dict(resource)
        if {"reference": order_ref} not in changed.get("basedOn", []):
            changed["basedOn"] = [*changed.get("basedOn", []), {"reference": order_ref}]
        if patient_ref:
            changed["subject"] = {**(resource.get("subject") or {}), "reference": patient_ref}
        writes: list[Write] = []
        now = now_instant()
        if changed != resource:
            writes.append(self.service.prepare("ImagingStudy", study.id, changed, "PUT", study, now))
        if patient_ref:
            # the study's dose Observations follow the study to the order's patient
            for obs in _search(self.service, "Observation", "part-of", Cond("k", "eq", f"ImagingStudy/{study.id}"),
                               limit=10000):
                body = obs.resource()
                old = (body.get("subject") or {}).get("reference")
                if old and old != patient_ref:
                    moved = _rewrite_references(body, old, patient_ref)
                    writes.append(self.service.prepare("Observation", obs.id, moved, "PUT", obs, now))
        if writes:
            self.service.store.commit(writes)
        return bool(writes)

    def repoint_patient(self, old_id: str, new_id: str) -> int:
        """Re-point every resource that references ``Patient/old_id`` to ``Patient/new_id`` (one commit)."""
        old, new = f"Patient/{old_id}", f"Patient/{new_id}"
        with self.service.store.lock:
            writes: list[Write] = []
            now = now_instant()
            seen: set[tuple[str, str]] = set()
            for type_ in SERVED_TYPES:
                params = params_for(type_)
                for code in ("patient", "subject"):
                    param = params.get(code)
                    if param is None or param.type != "reference" or type_ == "Patient":
                        continue
                    for stored in _search(self.service, type_, code, Cond("k", "eq", old), limit=100000):
                        if (type_, stored.id) in seen:
                            continue
                        seen.add((type_, stored.id))
                        body = _rewrite_references(stored.resource(), old, new)
                        writes.append(self.service.prepare(type_, stored.id, body, "PUT", stored, now))
            if writes:
                self.service.store.commit(writes)
            return len(writes)
