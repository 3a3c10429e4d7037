"""The archive of originals: every received or imported object kept verbatim, and a quarantine.

Objects are keyed by kind (``dicom``, ``hl7``, ``hl7-ack``) and a natural key (the SOP Instance UID,
the HL7 message key). Storing the same bytes again is a no-op; different bytes under the same key are
kept as another version (a corrected re-send is never lost). A ``put`` returns only after the bytes
are durable. Objects that failed to map are flagged in the quarantine with the reason, listed and
retried by ``dacs``.
"""

from __future__ import annotations

from fhir_server.archive.base import Archive, ArchivedObject, QuarantineEntry, open_archive

__all__ = ["Archive", "ArchivedObject", "QuarantineEntry", "open_archive"]
