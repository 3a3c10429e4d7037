"""FHIR search in stages: parse the query into a typed request (no I/O), plan it, compile it per
backend (SQL with placeholders, MongoDB filter documents), and index resources on write."""
