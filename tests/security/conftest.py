"""The cloud API fixtures (a real CloudService on SQLite and PostgreSQL behind its app)."""

from tests.cloud_api.conftest import (  # noqa: F401 - fixtures, found by name
    api_pg,
    backend,
    clock,
    cloud,
    cloud_signer,
    database_url,
    hub_keys,
    sqlite_template,
)
