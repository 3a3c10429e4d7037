"""The ingest tests run against a real ``dacs serve`` (fixtures shared with the FHIR server tests)."""

from tests.fhir_server.conftest import (  # noqa: F401
    RunningServer,
    mongo_server,
    server,
    service,
)
