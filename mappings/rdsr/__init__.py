"""RDSR → FHIR mapping (see mappings/rdsr/api.py for the public functions)."""
