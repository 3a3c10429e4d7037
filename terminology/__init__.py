"""Codes, units and reference data: code systems, UCUM conversion, dose reference levels, weights.

Reference numbers live in ``terminology/data`` as versioned files that name their sources.
"""
