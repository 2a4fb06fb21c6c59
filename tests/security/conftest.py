"""The cloud API fixtures (a real CloudService on SQLite behind its aiohttp app), shared."""

from tests.cloud_api.conftest import (  # noqa: F401 - fixtures, found by name
    backend,
    clock,
    cloud,
    cloud_signer,
    database_url,
    hub_keys,
)
