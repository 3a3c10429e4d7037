"""Pure mappings from received inputs (DICOM datasets, HL7 v2 messages) to FHIR R4 resources.

Nothing here does I/O: each mapping takes a parsed input and returns FHIR resources (usually a
transaction Bundle) plus the warnings met on the way. Storage, sockets and files live elsewhere.
"""
