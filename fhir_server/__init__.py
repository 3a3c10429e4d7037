"""The DACS FHIR R4 server: REST API, search, storage, subscriptions and operations."""

__version__ = "0.1.0"
