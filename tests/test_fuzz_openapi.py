"""schemathesis against both services' OpenAPI specs: no 5xx, every error in the envelope.

The specs come from the apps themselves (no server needed to collect the tests); the generated
requests go to real server processes with an empty lake, so they exercise validation and
lookup paths. Examples per operation are bounded so the suite stays quick. (schemathesis's own
pytest plugin does not run on pytest 9 yet, so operations are parametrised here directly.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from ai_platform.app import create_app as create_aip
from data_platform.app import create_app as create_dp
from tests.support import PlatformServers

EXAMPLES = 12
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
SCHEMAS = {
    "dp": schemathesis.openapi.from_dict(create_dp().openapi()),
    "aip": schemathesis.openapi.from_dict(create_aip().openapi()),
}


def _has_invalid_inputs(operation: schemathesis.APIOperation) -> bool:
    """Negative cases exist only for a body or a typed query; any string is a valid path id."""
    raw = operation.definition.raw
    return "requestBody" in raw or any(p.get("in") == "query" for p in raw.get("parameters", []))


OPERATIONS = [
    pytest.param(service, op, mode, id=f"{mode} {service} {op.method.upper()} {op.path}")
    for service, schema in SCHEMAS.items()
    for op in (result.ok() for result in schema.get_all_operations())
    for mode in ("positive", "negative")
    if mode == "positive" or _has_invalid_inputs(op)
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    platform = PlatformServers(tmp_path_factory.mktemp("fuzz")).start()
    yield platform
    platform.stop()


@pytest.mark.slow
@pytest.mark.parametrize(("service", "operation", "mode"), OPERATIONS)
def test_no_5xx_and_errors_in_the_envelope(servers, service, operation, mode):
    base_url = servers.dp.url if service == "dp" else servers.url
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    @FUZZ
    @given(case=strategy)
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, timeout=60)
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        assert response.status_code < 500, f"{where}: {response.text}"
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"}, f"{where}: {body}"
            assert set(body["error"]) == {"code", "message"}, f"{where}: {body}"

    fuzz()
