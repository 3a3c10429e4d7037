"""DICOM receivers: the network listener (Storage, Verification, MPPS SCP) and the file walker.

Both produce the same :class:`~integrations.dicom.objects.ReceivedObject` (the object as a verbatim
Part 10 stream), so one callback archives and maps network and file input alike.
"""

from integrations.dicom.files import (
    NotImportable,
    SkippedInput,
    iter_dicom_inputs,
    plan_inputs,
    read_dicom_bytes,
    read_dicom_file,
)
from integrations.dicom.listener import DicomListener, DicomListenerConfig, MppsCallback, StoreCallback
from integrations.dicom.objects import (
    MppsMessage,
    MppsOperation,
    MppsOutcome,
    MppsStatus,
    ReceivedObject,
    StoreOutcome,
    StoreStatus,
)
from integrations.dicom.validate import MalformedDataSet, check_header, check_structure

__all__ = [
    "DicomListener",
    "DicomListenerConfig",
    "MalformedDataSet",
    "MppsCallback",
    "MppsMessage",
    "MppsOperation",
    "MppsOutcome",
    "MppsStatus",
    "NotImportable",
    "ReceivedObject",
    "SkippedInput",
    "StoreCallback",
    "StoreOutcome",
    "StoreStatus",
    "check_header",
    "check_structure",
    "iter_dicom_inputs",
    "plan_inputs",
    "read_dicom_bytes",
    "read_dicom_file",
]
