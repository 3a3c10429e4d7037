"""DICOM network receiver: Verification, Storage and MPPS SCP on pynetdicom.

The listener is a thin receiver (STYLE.md §2): for each C-STORE it wraps the data set, exactly as
received, into a Part 10 stream (:class:`~integrations.dicom.objects.ReceivedObject`), hands it to
the injected ``on_object`` callback, and turns the callback's
:class:`~integrations.dicom.objects.StoreOutcome` into the C-STORE status. It neither maps nor
stores; the callback must durably commit before it returns success, because the modality may delete
its copy once it sees 0x0000. MPPS N-CREATE/N-SET go the same way to ``on_mpps``. Exceptions from
either callback become statuses in exactly one place, :func:`_invoke`.

Callbacks run in the association's own thread (pynetdicom runs one thread per association), so a
slow callback delays only that association; callbacks must be thread-safe across associations.

Performance (pydicom/pynetdicom#917): a stock pynetdicom SCP manages ~21 stores/s per association
because the client's Nagle algorithm and the server's 40 ms delayed ACK stall every request; the
listener re-arms ``TCP_QUICKACK`` before each read, wakes on incoming data instead of sleeping, and
drops pynetdicom's per-PDU log formatting. Findings and numbers: :mod:`integrations.dicom.transport`
and ``benchmarks/bench_dicom_scp.py``.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.dimse_primitives import C_STORE, N_CREATE, N_SET
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from integrations.dicom.objects import (
    DACS_IMPLEMENTATION_CLASS_UID,
    DACS_IMPLEMENTATION_VERSION_NAME,
    MppsMessage,
    MppsOperation,
    MppsOutcome,
    MppsStatus,
    ReceivedObject,
    StoreOutcome,
    StoreStatus,
    encode_part10_prefix,
    error_comment,
    make_file_meta,
)
from integrations.dicom.transport import LowLatencyRequestHandler

LOGGER = logging.getLogger(__name__)

StoreCallback = Callable[[ReceivedObject], StoreOutcome]
MppsCallback = Callable[[MppsMessage], MppsOutcome]

VERIFICATION = "1.2.840.10008.1.1"
MODALITY_PERFORMED_PROCEDURE_STEP = "1.2.840.10008.3.1.2.3.3"
# Dose reports (UIDs from PS3.4 Annex B.5). 88.34 (Comprehensive 3D SR) is not a dose class, but
# the pipeline recognises dose reports by root concept and template, not by SOP class.
DOSE_SR_STORAGE_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.88.67",  # X-Ray Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.76",  # Enhanced X-Ray Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.68",  # Radiopharmaceutical Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.73",  # Patient Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR (GE CT dose reports, TID 10011)
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
)
# Images whose headers carry dose for equipment without RDSR (CTDIvol, DAP, entrance dose, EI);
# Secondary Capture because some CT scanners send their dose screen only as one.
IMAGE_STORAGE_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image - For Processing
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography X-Ray Image - For Processing
    "1.2.840.10008.5.1.4.1.1.13.1.3",  # Breast Tomosynthesis Image
    "1.2.840.10008.5.1.4.1.1.13.1.4",  # Breast Projection X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.13.1.5",  # Breast Projection X-Ray Image - For Processing
    "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image
    "1.2.840.10008.5.1.4.1.1.12.1.1",  # Enhanced XA Image
    "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image
    "1.2.840.10008.5.1.4.1.1.12.2.1",  # Enhanced XRF Image
    "1.2.840.10008.5.1.4.1.1.13.1.1",  # X-Ray 3D Angiographic Image
    "1.2.840.10008.5.1.4.1.1.13.1.2",  # X-Ray 3D Craniofacial Image
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
)
# Every non-compressed transfer syntax, including Explicit VR Big Endian (retired but still sent
# by old equipment) and Deflated Explicit VR Little Endian (PS3.5 A.5, used for large SR).
UNCOMPRESSED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
# Images additionally in every compressed syntax pynetdicom knows: the bytes are archived as sent
# and only the header is read, so no codec is needed.
IMAGE_TRANSFER_SYNTAXES: tuple[str, ...] = tuple(
    dict.fromkeys([*UNCOMPRESSED_TRANSFER_SYNTAXES, *ALL_TRANSFER_SYNTAXES])
)

# OSError numbers that mean "this host is short of something", answered as out of resources.
_RESOURCE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.ENOMEM, errno.EMFILE, errno.ENFILE})

_T = TypeVar("_T", StoreOutcome, MppsOutcome)


def _valid_ae_title(title: str) -> bool:
    """AE title rules of PS3.5 Table 6.2-1: 1–16 characters, no backslash or control characters."""
    stripped = title.strip()
    return 0 < len(stripped) <= 16 and "\\" not in stripped and stripped.isprintable()


@dataclass(frozen=True)
class DicomListenerConfig:
    """Settings of one listener (PRODUCT.md: ``--dicom-port``, ``--dicom-aet``).

    ``port`` 0 asks the OS for a free port (see :meth:`DicomListener.start`). An empty
    ``accepted_calling_ae_titles`` accepts every caller; otherwise other callers are rejected with
    A-ASSOCIATE-RJ "calling AE title not recognised" (PS3.8 9.3.4). ``max_pdu_size`` 0 means
    unlimited. ``low_latency`` False gives pynetdicom's stock transport (for diagnosis only: it is
    ~7x slower per association, see :mod:`integrations.dicom.transport`).
    """

    ae_title: str = "DACS"
    host: str = "0.0.0.0"
    port: int = 11112
    accepted_calling_ae_titles: frozenset[str] = field(default_factory=frozenset)
    require_called_ae_title: bool = False
    max_pdu_size: int = 262_144
    max_associations: int = 10
    acse_timeout_s: float = 30.0
    dimse_timeout_s: float = 30.0
    network_timeout_s: float = 60.0
    low_latency: bool = True

    def __post_init__(self) -> None:
        if not _valid_ae_title(self.ae_title):
            raise ValueError(f"invalid AE title {self.ae_title!r}: 1-16 printable characters, no '\\'")
        titles = frozenset(t.strip() for t in self.accepted_calling_ae_titles)
        bad = sorted(t for t in titles if not _valid_ae_title(t))
        if bad:
            raise ValueError(f"invalid accepted calling AE titles: {bad}")
        object.__setattr__(self, "accepted_calling_ae_titles", titles)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} out of range 0-65535")
        # PS3.8 D.1: Maximum Length is 0 (no limit) or a usable PDU size; pynetdicom needs >= 4096.
        if self.max_pdu_size != 0 and self.max_pdu_size < 4096:
            raise ValueError(f"max PDU size {self.max_pdu_size} must be 0 (unlimited) or >= 4096")
        if self.max_associations < 1:
            raise ValueError("max_associations must be at least 1")


def _is_resource_error(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS)


def _invoke(
    callback: Callable[[Any], _T],
    record: Callable[[], Any],
    outcome_type: type[_T],
    resource_failure: Callable[[str], _T],
    processing_failure: Callable[[str], _T],
) -> _T:
    """Build the record, run the callback, and turn any exception into an outcome.

    The one place where exceptions become DICOM statuses: shortage of memory, disk space or file
    handles → out of resources (the sender may retry later); anything else → processing failure.
    """
    try:
        outcome = callback(record())
    except Exception as exc:
        LOGGER.exception("DICOM callback %s raised", getattr(callback, "__qualname__", callback))
        reason = f"{type(exc).__name__}: {exc}"
        return resource_failure(reason) if _is_resource_error(exc) else processing_failure(reason)
    if not isinstance(outcome, outcome_type):
        return processing_failure(f"callback returned {type(outcome).__name__}, not {outcome_type.__name__}")
    return outcome


def _status_dataset(status: int, reason: str) -> Dataset:
    """Response status with the reason as Error Comment (0000,0902) on anything but plain success."""
    ds = Dataset()
    ds.Status = status
    if status != 0x0000 and reason:
        ds.ErrorComment = error_comment(reason)
    return ds


def _peer(event: Event) -> tuple[str, str, str, int]:
    """(calling AE, called AE, peer address, peer port) of the event's association."""
    requestor = event.assoc.requestor
    request = requestor.primitive
    called = request.called_ae_title if request is not None else event.assoc.acceptor.ae_title
    return requestor.ae_title.strip(), str(called).strip(), requestor.address, requestor.port


def _part10_prefix(event: Event, sop_class_uid: str, sop_instance_uid: str) -> bytes:
    """Preamble and File Meta Information for a data set received in ``event``'s context."""
    calling, called, _, _ = _peer(event)
    meta = make_file_meta(
        sop_class_uid,
        sop_instance_uid,
        str(event.context.transfer_syntax),
        sending_ae_title=calling,
        receiving_ae_title=called,
    )
    return encode_part10_prefix(meta)


class DicomListener:
    """Storage, Verification and MPPS SCP that hands objects to callbacks.

    Parameters
    ----------
    config
        Where to listen and whom to accept.
    on_object
        Called once per received C-STORE, in the association's thread; its outcome becomes the
        C-STORE status. Success must mean "durably committed".
    on_mpps
        Called for each MPPS N-CREATE and N-SET; without it MPPS is not offered in negotiation.
    """

    def __init__(
        self,
        config: DicomListenerConfig,
        on_object: StoreCallback,
        on_mpps: MppsCallback | None = None,
    ) -> None:
        self.config = config
        self._on_object = on_object
        self._on_mpps = on_mpps
        self._server: ThreadedAssociationServer | None = None
        self._thread: threading.Thread | None = None
        self._ae = self._make_ae()

    def _make_ae(self) -> AE:
        cfg = self.config
        ae = AE(ae_title=cfg.ae_title)
        ae.implementation_class_uid = DACS_IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = DACS_IMPLEMENTATION_VERSION_NAME
        ae.maximum_pdu_size = cfg.max_pdu_size
        ae.maximum_associations = cfg.max_associations
        ae.acse_timeout = cfg.acse_timeout_s
        ae.dimse_timeout = cfg.dimse_timeout_s
        ae.network_timeout = cfg.network_timeout_s
        ae.require_calling_aet = sorted(cfg.accepted_calling_ae_titles)
        ae.require_called_aet = cfg.require_called_ae_title
        ae.add_supported_context(VERIFICATION, list(UNCOMPRESSED_TRANSFER_SYNTAXES))
        for uid in DOSE_SR_STORAGE_CLASSES:
            ae.add_supported_context(uid, list(UNCOMPRESSED_TRANSFER_SYNTAXES))
        for uid in IMAGE_STORAGE_CLASSES:
            ae.add_supported_context(uid, list(IMAGE_TRANSFER_SYNTAXES))
        if self._on_mpps is not None:
            ae.add_supported_context(MODALITY_PERFORMED_PROCEDURE_STEP, list(UNCOMPRESSED_TRANSFER_SYNTAXES))
        return ae

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> int:
        """Bind, start serving in a background thread, and return the bound TCP port."""
        if self._server is not None:
            raise RuntimeError("listener already started")
        handlers: list[Any] = [
            (evt.EVT_C_ECHO, self._handle_echo),
            (evt.EVT_C_STORE, self._handle_store),
            (evt.EVT_REJECTED, self._handle_rejected),
        ]
        if self._on_mpps is not None:
            handlers += [(evt.EVT_N_CREATE, self._handle_n_create), (evt.EVT_N_SET, self._handle_n_set)]
        request_handler: type[RequestHandler] = LowLatencyRequestHandler if self.config.low_latency else RequestHandler
        server = self._ae.make_server(
            (self.config.host, self.config.port),
            evt_handlers=handlers,
            server_class=ThreadedAssociationServer,
            request_handler=request_handler,
        )
        self._ae._servers.append(server)  # as AE.start_server does, so AE.shutdown() finds it
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"dicom-listener-{self.port}", daemon=True)
        self._thread.start()
        LOGGER.info(
            "DICOM listener %s on %s:%d (calling AEs: %s)",
            self.config.ae_title,
            self.config.host,
            self.port,
            ", ".join(sorted(self.config.accepted_calling_ae_titles)) or "any",
        )
        return self.port

    @property
    def port(self) -> int:
        """The bound TCP port (the chosen one when configured with port 0)."""
        if self._server is None:
            raise RuntimeError("listener not started")
        return int(self._server.server_address[1])

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, let running associations finish for ``timeout_s``, then abort the rest.

        A store whose callback is running is never interrupted; an aborted association only loses
        objects whose success status was not yet sent, which the modality will resend.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # stops serve_forever, closes the socket, leaves running associations
        deadline = time.monotonic() + timeout_s
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.01)
        for assoc in server.active_associations:
            assoc.abort()
        if self._thread is not None:
            self._thread.join(timeout_s)
        LOGGER.info("DICOM listener %s stopped", self.config.ae_title)

    def __enter__(self) -> DicomListener:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- event handlers (run in association threads) ------------------------------------------

    @staticmethod
    def _handle_echo(event: Event) -> int:
        return 0x0000

    @staticmethod
    def _handle_rejected(event: Event) -> None:
        calling, called, address, port = _peer(event)
        reason = "association rejected"
        acceptor = event.assoc.acceptor.primitive
        if isinstance(acceptor, A_ASSOCIATE) and acceptor.result not in (None, 0):
            reason = f"{acceptor.result_str}: {acceptor.reason_str}"
        LOGGER.warning("Rejected association from %s@%s:%d to %s: %s", calling, address, port, called, reason)

    def _received_object(self, event: Event) -> ReceivedObject:
        request = cast(C_STORE, event.request)
        calling, called, address, port = _peer(event)
        transfer_syntax = str(event.context.transfer_syntax)
        prefix = _part10_prefix(event, str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID))
        if request.DataSet is None:  # pynetdicom's _config.STORE_RECV_CHUNKED_DATASET was switched on
            raise RuntimeError("data set was spooled to a file by pynetdicom; not supported")
        return ReceivedObject(
            part10=prefix + request.DataSet.getbuffer(),
            dataset_offset=len(prefix),
            sop_class_uid=str(request.AffectedSOPClassUID),
            sop_instance_uid=str(request.AffectedSOPInstanceUID),
            transfer_syntax_uid=transfer_syntax,
            received_at=datetime.now(UTC),
            calling_ae_title=calling,
            called_ae_title=called,
            peer_address=address,
            peer_port=port,
        )

    def _handle_store(self, event: Event) -> Dataset:
        outcome = _invoke(
            self._on_object,
            lambda: self._received_object(event),
            StoreOutcome,
            lambda reason: StoreOutcome(StoreStatus.OUT_OF_RESOURCES, reason),
            lambda reason: StoreOutcome(StoreStatus.PROCESSING_FAILURE, reason),
        )
        calling, _, address, port = _peer(event)
        request = cast(C_STORE, event.request)
        sop_class = UID(str(request.AffectedSOPClassUID))
        what = f"C-STORE {request.AffectedSOPInstanceUID} ({sop_class.name}) from {calling}@{address}:{port}"
        if outcome.status is StoreStatus.SUCCESS:
            LOGGER.info("%s stored", what)
        else:
            LOGGER.log(
                logging.ERROR if outcome.is_failure else logging.WARNING,
                "%s answered 0x%04X %s: %s",
                what,
                outcome.status,
                outcome.status.name,
                outcome.reason,
            )
        return _status_dataset(outcome.status, outcome.reason)

    def _mpps_message(
        self, event: Event, operation: MppsOperation, uid: str, uid_assigned: bool, encoded: bytes
    ) -> MppsMessage:
        calling, called, address, port = _peer(event)
        transfer_syntax = str(event.context.transfer_syntax)
        prefix = _part10_prefix(event, MODALITY_PERFORMED_PROCEDURE_STEP, uid)
        return MppsMessage(
            operation=operation,
            part10=prefix + encoded,
            dataset_offset=len(prefix),
            sop_instance_uid=uid,
            transfer_syntax_uid=transfer_syntax,
            received_at=datetime.now(UTC),
            calling_ae_title=calling,
            called_ae_title=called,
            peer_address=address,
            peer_port=port,
            uid_assigned_by_scp=uid_assigned,
        )

    def _handle_mpps(
        self, event: Event, operation: MppsOperation, requested_uid: str | None, encoded: bytes
    ) -> tuple[Dataset, Dataset | None]:
        assert self._on_mpps is not None
        # PS3.7 10.1.5.1.4: an N-CREATE without Affected SOP Instance UID asks the SCP for one.
        uid = requested_uid or generate_uid()
        outcome = _invoke(
            self._on_mpps,
            lambda: self._mpps_message(event, operation, uid, not requested_uid, encoded),
            MppsOutcome,
            lambda reason: MppsOutcome(MppsStatus.RESOURCE_LIMITATION, reason),
            lambda reason: MppsOutcome(MppsStatus.PROCESSING_FAILURE, reason),
        )
        calling, _, address, port = _peer(event)
        LOGGER.log(
            logging.INFO if outcome.status is MppsStatus.SUCCESS else logging.ERROR,
            "MPPS %s %s from %s@%s:%d answered 0x%04X %s%s",
            operation.value,
            uid,
            calling,
            address,
            port,
            outcome.status,
            outcome.status.name,
            f": {outcome.reason}" if outcome.reason else "",
        )
        attributes = None
        if not requested_uid and outcome.status is MppsStatus.SUCCESS:
            # pynetdicom moves this into the response's Affected SOP Instance UID.
            attributes = Dataset()
            attributes.AffectedSOPInstanceUID = uid
        return _status_dataset(outcome.status, outcome.reason), attributes

    def _handle_n_create(self, event: Event) -> tuple[Dataset, Dataset | None]:
        request = cast(N_CREATE, event.request)
        encoded = request.AttributeList.getvalue() if request.AttributeList is not None else b""
        uid = str(request.AffectedSOPInstanceUID) if request.AffectedSOPInstanceUID else None
        return self._handle_mpps(event, MppsOperation.N_CREATE, uid, encoded)

    def _handle_n_set(self, event: Event) -> tuple[Dataset, Dataset | None]:
        request = cast(N_SET, event.request)
        encoded = request.ModificationList.getvalue() if request.ModificationList is not None else b""
        return self._handle_mpps(event, MppsOperation.N_SET, str(request.RequestedSOPInstanceUID), encoded)
