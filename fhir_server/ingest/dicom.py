"""DICOM ingest: a received or imported object → archive → map → one transaction → reconcile → evaluate.

The receiver (``integrations.dicom``) calls :meth:`DicomPipeline.store` and turns the returned
:class:`~integrations.dicom.StoreOutcome` into the C-STORE status; ``dacs import`` and ``dacs remap`` call
:meth:`DicomPipeline.ingest` for the richer :class:`IngestResult`. Success is returned only after the
original is archived *and* its FHIR resources are committed.

* The same object twice is a no-op (same bytes in the archive, identical resources: no new versions).
* Dose reports (TID 10011/10001/10021) are mapped by :func:`mappings.rdsr.map_dose_report`; images
  without RDSR by :func:`mappings.rdsr.map_image_header_dose` (legacy header dose).
* A cumulative re-send (Siemens) whose events include every stored event replaces the stored summary;
  an older, smaller report does not (its events are still recorded, the summary stays): no double
  counting, nothing lost.
* ImagingStudy updates are merged into the stored study (series of continued studies, identifiers,
  ``basedOn`` and the reconciled patient are kept).
* Dose-related objects that are not mapped (patient dose reports, proprietary summaries) and objects
  that fail to map are kept in the archive and listed in the quarantine with the reason.
"""

from __future__ import annotations

import enum
import io
import logging
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from fhir_server.archive import Archive, QuarantineEntry
from fhir_server.bundle import BundleProcessor
from fhir_server.errors import FhirError
from fhir_server.ingest.reconcile import Reconciler
from fhir_server.service import FhirService, now_instant
from fhir_server.validation import validate_resource_cached
from integrations.dicom import (
    MppsMessage,
    MppsOperation,
    MppsOutcome,
    MppsStatus,
    ReceivedObject,
    StoreOutcome,
    StoreStatus,
    check_header,
)
from integrations.dicom.files import NotImportable, read_dicom_bytes
from mappings.rdsr import (
    DatasetKind,
    MappingOptions,
    MappingResult,
    RdsrMappingError,
    classify_dataset,
    map_dose_report,
    map_image_header_dose,
    map_mpps_dose,
    merge_imaging_study,
    summary_event_uids,
    supersedes,
)
from mappings.rdsr.errors import MalformedReportError, NoHeaderDoseError
from mappings.rdsr.mpps import NoMppsDoseError

log = logging.getLogger("dacs.ingest.dicom")

PENDING = "received, not yet mapped"  # quarantine reason while an object is being mapped and committed


class Disposition(enum.Enum):
    """What happened to one object (the ``dacs import`` summary columns)."""

    IMPORTED = "imported"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"  # an older cumulative report: events kept, the stored summary stays
    KEPT_UNMAPPED = "kept-unmapped"
    REJECTED = "rejected"


@dataclass(frozen=True)
class IngestResult:
    disposition: Disposition
    outcome: StoreOutcome
    reason: str = ""
    study_id: str | None = None
    changed: int = 0  # resources written (new versions)
    warnings: tuple[str, ...] = field(default=())


def _identifier_query(system: str, value: str) -> list[tuple[str, str]]:
    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
    return [("identifier", f"{system}|{escaped}")]


class DicomPipeline:
    """Archive, map and commit DICOM objects; ``evaluate(study_id)`` runs after each committed study."""

    def __init__(self, service: FhirService, archive: Archive, *, timezone: str = "UTC",
                 evaluate: Callable[[str], Any] | None = None, pool: Executor | None = None) -> None:
        self.service = service
        self.archive = archive
        self.pool = pool  # processes that run map_object (dacs serve), or None to map in this thread
        self.timezone = timezone
        self.evaluate = evaluate
        self.reconciler = Reconciler(service)

    # -- the receiver's callback ----------------------------------------------------------------
    def store(self, obj: ReceivedObject) -> StoreOutcome:
        """C-STORE callback: success only after archive + commit."""
        result = self.ingest(obj)
        level = logging.INFO if result.disposition is not Disposition.REJECTED else logging.WARNING
        log.log(level, "%s %s from %s: %s %s", result.disposition.value, obj.sop_instance_uid, obj.origin,
                result.reason, f"({len(result.warnings)} warnings)" if result.warnings else "")
        return result.outcome

    def ingest(self, obj: ReceivedObject, *, force: bool = False) -> IngestResult:
        """Archive ``obj`` and map it (``force`` maps again even an archived, already-mapped object)."""
        now = now_instant()
        try:
            record, new = self.archive.put("dicom", obj.sop_instance_uid, obj.part10, now)
        except OSError as exc:
            return IngestResult(Disposition.REJECTED, StoreOutcome(StoreStatus.OUT_OF_RESOURCES,
                                                                   f"archive write failed: {exc}"), str(exc))
        quarantined = self.archive.is_quarantined("dicom", obj.sop_instance_uid)
        if not new and not force and not quarantined:
            return IngestResult(Disposition.DUPLICATE, StoreOutcome.success("already archived and mapped"),
                                "same object received before")
        # Flag the object until its resources are committed: if the process dies in between, the
        # flag says so, a re-send maps it again and recover() finishes it at the next start.
        self.archive.quarantine(QuarantineEntry("dicom", obj.sop_instance_uid, record.sha256, PENDING, now))
        broken = check_header(obj)  # truncated streams and UID mismatches, which pydicom does not notice
        if broken is not None:
            return self._reject(obj, record.sha256, now, broken.status, broken.reason)
        return self._map_and_commit(obj, record.sha256, now)

    def _reject(self, obj: ReceivedObject, sha: str, now: str, status: StoreStatus, reason: str) -> IngestResult:
        self.archive.quarantine(QuarantineEntry("dicom", obj.sop_instance_uid, sha, reason, now))
        return IngestResult(Disposition.REJECTED, StoreOutcome(status, reason), reason)

    def _map_and_commit(self, obj: ReceivedObject, sha: str, now: str) -> IngestResult:
        mapped = None
        if self.pool is not None:  # the mapping runs on another core; this thread waits without the GIL
            try:
                mapped = self.pool.submit(map_object, obj.part10, self.timezone, obj.calling_ae_title).result()
            except BrokenExecutor:
                log.error("the mapping process died; mapping in the receiving process from now on")
                self.pool = None
        if mapped is None:
            mapped = map_object(obj.part10, self.timezone, obj.calling_ae_title)
        if mapped.kept_reason is not None:
            self.archive.quarantine(QuarantineEntry("dicom", obj.sop_instance_uid, sha, mapped.kept_reason, now))
            return IngestResult(Disposition.KEPT_UNMAPPED, StoreOutcome.success(mapped.kept_reason),
                                mapped.kept_reason)
        if mapped.result is None:
            return self._reject(obj, sha, now, mapped.status, mapped.error or "cannot map")
        return self._commit(obj, sha, now, mapped.result)

    def _commit(self, obj: ReceivedObject, sha: str, now: str, mapped: MappingResult) -> IngestResult:
        disposition = Disposition.IMPORTED
        try:
            with self.service.store.lock:
                if mapped.summary_identifier is not None:
                    stored = self.service.find("Observation", _identifier_query(*mapped.summary_identifier), limit=1)
                    if stored and not supersedes(mapped, summary_event_uids(stored[0].resource())):
                        mapped = mapped.without_summary()
                        disposition = Disposition.SUPERSEDED
                entries = BundleProcessor(self.service, _merge_study).transaction(mapped.bundle["entry"],
                                                                                  prevalidated=True)
        except FhirError as exc:
            return self._reject(obj, sha, now, StoreStatus.PROCESSING_FAILURE, f"not stored: {exc.diagnostics}")
        except Exception as exc:
            log.exception("store failure for %s", obj.sop_instance_uid)
            return IngestResult(Disposition.REJECTED, StoreOutcome(StoreStatus.OUT_OF_RESOURCES,
                                                                   f"store failure: {type(exc).__name__}"), str(exc))
        self.archive.release("dicom", obj.sop_instance_uid)
        study_id = next((e.stored.id for e in entries if e.stored is not None and e.stored.type == "ImagingStudy"),
                        None)
        changed = sum(1 for e in entries if e.write is not None)
        if study_id is not None:
            self.reconciler.link_study(study_id)
            if self.evaluate is not None:
                try:
                    self.evaluate(study_id)
                except Exception:  # evaluation must never lose a committed dose report
                    log.exception("evaluation of ImagingStudy/%s failed", study_id)
        return IngestResult(disposition, StoreOutcome.success(), "", study_id, changed, mapped.warnings)


    def reingest(self, key: str, sha256: str | None = None) -> IngestResult | None:
        """Map an archived object again (its latest version unless ``sha256`` names one).

        None when nothing is archived under ``key``; raises ``NotImportable`` when the archived bytes
        are not a DICOM object. For ``dacs remap``, ``dacs quarantine retry`` and :meth:`recover`.
        """
        data = self.archive.get("dicom", key, sha256)
        return None if data is None else self.ingest(read_dicom_bytes(data), force=True)

    def recover(self) -> int:
        """Map the objects a stopped process archived but did not finish (flagged ``PENDING``)."""
        done = 0
        for entry in self.archive.quarantined("dicom"):
            if entry.reason != PENDING:
                continue
            try:
                result = self.reingest(entry.key, entry.sha256)
            except NotImportable as exc:
                self.archive.quarantine(QuarantineEntry("dicom", entry.key, entry.sha256, f"unreadable: {exc}",
                                                        now_instant()))
                continue
            if result is not None:
                log.info("recovered %s: %s %s", entry.key, result.disposition.value, result.reason)
                done += 1
        return done

    # -- MPPS -----------------------------------------------------------------------------------
    def mpps(self, message: MppsMessage) -> MppsOutcome:
        """MPPS N-CREATE/N-SET callback: each message archived verbatim (kind ``mpps``), then the fallback dose.

        Keys: ``<mpps uid>/N-CREATE`` and ``<mpps uid>/N-SET`` (every N-SET a version of the latter). An N-SET
        that sets the step COMPLETED maps the N-CREATE merged with all N-SETs so far
        (:func:`mappings.rdsr.map_mpps_dose`) and commits it in one transaction like a dose report; the study
        is then linked to its order and evaluated. The MPPS dose is a fallback: evaluation ignores it when the
        study has an RDSR summary. A completed step without dose values (the usual case when the modality
        also sends RDSRs) is only archived. Statuses (PS3.4 F.7.2.2): 0x0112 N-SET for an unknown instance;
        0x0110 processing failure when a completed step with dose cannot be mapped or stored (the message
        stays archived and is quarantined with the reason, so it can be retried); 0x0213 when the archive or
        the store is out of resources.
        """
        key = f"{message.sop_instance_uid}/{message.operation.value}"
        now = now_instant()
        try:
            record, _ = self.archive.put("mpps", key, message.part10, now)
        except OSError as exc:
            return MppsOutcome(MppsStatus.RESOURCE_LIMITATION, f"archive write failed: {exc}")
        if message.operation is MppsOperation.N_SET and not self.archive.versions(
                "mpps", f"{message.sop_instance_uid}/{MppsOperation.N_CREATE.value}"):
            return MppsOutcome(MppsStatus.NO_SUCH_OBJECT_INSTANCE,
                               f"N-SET for unknown MPPS instance {message.sop_instance_uid}")
        if message.operation is not MppsOperation.N_SET:
            return MppsOutcome.success()
        try:
            completed = str(message.read_dataset().get("PerformedProcedureStepStatus") or "").strip() == "COMPLETED"
        except Exception as exc:  # pydicom raises many types on malformed input
            return self._mpps_failure(key, record.sha256, now, f"cannot read the N-SET: {type(exc).__name__}: {exc}")
        if not completed:
            return MppsOutcome.success()
        return self._map_mpps(message, key, record.sha256, now)

    def _map_mpps(self, message: MppsMessage, key: str, sha: str, now: str) -> MppsOutcome:
        """Map the archived N-CREATE and N-SETs of a completed step and commit the result."""
        uid = message.sop_instance_uid
        try:
            create = _read_part10(self.archive.get("mpps", f"{uid}/{MppsOperation.N_CREATE.value}"))
            updates = [_read_part10(self.archive.get("mpps", v.key, v.sha256))
                       for v in self.archive.versions("mpps", f"{uid}/{MppsOperation.N_SET.value}")]
            options = MappingOptions(timezone=self.timezone, calling_ae_title=message.calling_ae_title)
            mapped = map_mpps_dose(create, updates, options, sop_instance_uid=uid)
        except NoMppsDoseError:
            log.info("MPPS %s completed without dose values: archived only", uid)
            return MppsOutcome.success()
        except RdsrMappingError as exc:
            return self._mpps_failure(key, sha, now, f"cannot map: {exc}")
        except Exception as exc:  # pydicom raises many types on malformed input
            return self._mpps_failure(key, sha, now, f"cannot read the MPPS: {type(exc).__name__}: {exc}")
        try:
            with self.service.store.lock:
                entries = BundleProcessor(self.service, _merge_mpps_study).transaction(mapped.bundle["entry"])
        except FhirError as exc:
            return self._mpps_failure(key, sha, now, f"not stored: {exc.diagnostics}")
        except Exception as exc:
            log.exception("store failure for MPPS %s", uid)
            return MppsOutcome(MppsStatus.RESOURCE_LIMITATION, f"store failure: {type(exc).__name__}")
        self.archive.release("mpps", key)
        study_id = next((e.stored.id for e in entries if e.stored is not None and e.stored.type == "ImagingStudy"),
                        None)
        if study_id is not None:
            self.reconciler.link_study(study_id)
            if self.evaluate is not None:
                try:
                    self.evaluate(study_id)
                except Exception:  # evaluation must never lose a committed dose
                    log.exception("evaluation of ImagingStudy/%s failed", study_id)
        log.info("MPPS %s mapped: fallback dose for study %s %s", uid, mapped.study_instance_uid,
                 f"({len(mapped.warnings)} warnings)" if mapped.warnings else "")
        return MppsOutcome.success()

    def _mpps_failure(self, key: str, sha: str, now: str, reason: str) -> MppsOutcome:
        self.archive.quarantine(QuarantineEntry("mpps", key, sha, reason, now))
        return MppsOutcome(MppsStatus.PROCESSING_FAILURE, reason)


def _read_part10(data: bytes | None) -> Dataset:
    if data is None:
        raise MalformedReportError("an archived MPPS message is missing")
    return pydicom.dcmread(io.BytesIO(data))


def _merge_mpps_study(full_url: str | None, stored: dict[str, Any] | None, incoming: dict[str, Any]) -> dict[str, Any]:
    """Like :func:`_merge_study`, but the MPPS only fills gaps: a stored start and description (from a dose
    report or images) are kept."""
    merged = _merge_study(full_url, stored, incoming)
    if stored is not None and incoming.get("resourceType") == "ImagingStudy":
        for name in ("started", "description"):
            if stored.get(name):
                merged[name] = stored[name]
    return merged


@dataclass(frozen=True)
class MappedObject:
    """What :func:`map_object` made of an object: a validated mapping, a reason to keep it unmapped, or
    an error with the DICOM status it deserves."""

    result: MappingResult | None = None
    kept_reason: str | None = None
    error: str | None = None
    status: StoreStatus = StoreStatus.CANNOT_UNDERSTAND


def map_object(part10: bytes, timezone: str, calling_ae_title: str | None) -> MappedObject:
    """Decode, classify, map and validate one object: the CPU-heavy, side-effect-free part of ingest.

    A module-level function of picklable arguments, so ``dacs serve`` can run it in a worker process
    (the second core) while the receiving process archives and commits. The FHIR resources are
    validated here, so the commit does not validate them again.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
        kind = classify_dataset(ds)
        if kind.is_kept_unmapped or kind is DatasetKind.NOT_A_DOSE_OBJECT:
            return MappedObject(kept_reason=f"kept, not mapped: {kind.value}")
        options = MappingOptions(timezone=timezone, calling_ae_title=calling_ae_title)
        if kind is DatasetKind.IMAGE_HEADER_DOSE:
            mapped = map_image_header_dose(ds, options)
        else:
            mapped = map_dose_report(ds, options)
    except NoHeaderDoseError as exc:
        return MappedObject(kept_reason=f"kept, not mapped: image without dose attributes ({exc})")
    except RdsrMappingError as exc:
        return MappedObject(error=f"cannot map: {exc}")
    except Exception as exc:  # pydicom raises many types on malformed input
        return MappedObject(error=f"cannot read the data set: {type(exc).__name__}: {exc}")
    for index, entry in enumerate(mapped.bundle["entry"]):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            try:
                validate_resource_cached(resource, resource.get("resourceType", ""))
            except FhirError as exc:
                return MappedObject(error=f"not stored: Bundle.entry[{index}]: {exc.diagnostics}",
                                    status=StoreStatus.PROCESSING_FAILURE)
    return MappedObject(result=mapped)


def _merge_study(full_url: str | None, stored: dict[str, Any] | None, incoming: dict[str, Any]) -> dict[str, Any]:
    """Merge an incoming ImagingStudy into the stored one (continued studies, reconciliation kept)."""
    if stored is None or incoming.get("resourceType") != "ImagingStudy":
        return incoming
    merged = merge_imaging_study(stored, incoming)
    if stored.get("basedOn"):
        refs = [b for b in stored["basedOn"] if b not in merged.get("basedOn", [])]
        merged["basedOn"] = [*merged.get("basedOn", []), *refs]
    # The study's patient is settled by its first object or by its order (reconciliation), not by
    # whichever object of the study arrived last.
    if stored.get("subject"):
        merged["subject"] = stored["subject"]
    return merged
