"""Protocol speakers: DICOM (pynetdicom), HL7 v2 over MLLP, SMTP and webhooks.

Receivers are thin: they archive the raw bytes, hand the work on, and turn the outcome into the
protocol's own status.
"""
