"""The ingest pipeline: what happens between a receiver and the store.

receive (``integrations/``) → archive (:mod:`fhir_server.archive`) → map (``mappings/``) → store
(one transaction Bundle through :class:`fhir_server.bundle.BundleProcessor`) → reconcile orders and
studies (:mod:`fhir_server.ingest.reconcile`). Receivers only see the outcome.
"""
