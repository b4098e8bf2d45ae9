"""The same shared platform as tests/sdk: one set of servers for both directories."""

from tests.sdk.conftest import (  # noqa: F401 - fixtures and hooks, found by name
    client,
    platform,
    pytest_collection_modifyitems,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    served,
)
