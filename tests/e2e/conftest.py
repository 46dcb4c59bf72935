"""The e2e tests use the same real-service fixtures as the integration tests."""

from tests.integration.conftest import api_keys, catalog_db, client, unique  # noqa: F401
