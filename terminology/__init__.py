"""Codes, units, reference data and the pure dose calculations DACS evaluates doses with.

Modules (no I/O except reading ``terminology/data`` and a site's reference directory):

* ``ucum``: strict UCUM parser, exact conversions, canonical unit per quantity kind;
* ``reference``: typed, cached loaders of ``data/*.json`` with site overrides (``load_reference``);
* ``codes``: code-system URIs, ``Coding``, legacy SRT → SNOMED CT normalisation;
* ``effective_dose``: E from DLP × k, from organ doses (ICRP 60/103), from projection DAP;
* ``ssde``: size-specific dose estimate (AAPM 204/220), effective and water-equivalent diameter;
* ``drl``: which DRL applies and the comparison (per exam and ICRP 135 median);
* ``thresholds``: fluoroscopy levels, CT notification/alert values, occupational/public limits;
* ``protocols``: protocol standardisation to DACS standard procedures and body regions;
* ``fhir``: CodeSystem/ValueSet/ConceptMap builders and pure ``$lookup``, ``$validate-code``,
  ``$translate``;
* ``age``: age in years from DICOM age strings and FHIR (partial) birth dates;
* ``results``: the provenance record (method, inputs, coefficients, sources) every result carries.

Reference numbers live in ``terminology/data`` as versioned files that name their sources.
"""
