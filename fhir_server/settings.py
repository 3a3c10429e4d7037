"""Server settings: every ``dacs serve`` option is also an environment variable ``DACS_<NAME>``.

Read once through :func:`get_settings` (cached); tests build their own :class:`Settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of one DACS instance (PRODUCT.md, "Interface contract")."""

    model_config = SettingsConfigDict(env_prefix="DACS_", extra="ignore")

    data_dir: Path = Path("dacs-data")
    # ``sqlite:///path`` or ``mongodb://host/dbname``; empty = SQLite inside the data dir.
    store: str = ""
    host: str = "127.0.0.1"
    http_port: int = 8080
    dicom_port: int = 11112
    dicom_aet: str = "DACS"
    mllp_port: int = 2575
    # Comma-separated calling AE titles allowed to send; empty accepts every caller.
    dicom_calling_aets: str = ""
    # IANA time zone of the modalities and RIS, for DICOM/HL7 times that carry no offset.
    timezone: str = "UTC"
    # Public base URL of the FHIR endpoint; derived from the request when empty.
    base_url: str = ""
    default_count: int = 20
    max_count: int = 1000
    # Chained and ``_has`` searches resolve their inner search first; more matches than this is an error.
    max_chain_matches: int = 10000

    def store_url(self) -> str:
        """The store URL, defaulting to an SQLite file inside the data directory."""
        if self.store:
            return self.store
        return f"sqlite:///{(self.data_dir / 'dacs.sqlite3').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, read once."""
    return Settings()
