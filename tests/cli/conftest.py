"""The same shared platform as tests/sdk: one set of servers for both directories."""

from __future__ import annotations

import json

import pytest

from aip.cli import main
from tests.sdk.conftest import (  # noqa: F401 - fixtures and hooks, found by name
    client,
    platform,
    pytest_collection_modifyitems,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    served,
)
from tests.support import PlatformServers


class Run:
    """``aip --url URL ARGS...`` in this process; captures what it printed."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()  # drop what came before
        code = main(["--url", self.url, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> object:
        code, out, err = self("--json", *args)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def aip(platform: PlatformServers, capsys: pytest.CaptureFixture[str]) -> Run:  # noqa: F811
    return Run(platform.url, capsys)


def ingest(*args: str, name: str, script: str, output: str = "cli_out") -> list[str]:
    """``aip ingest`` arguments for a fixture script on the raw MNIST folder."""
    base = ["--name", name, "--input", "raw/mnist", "--script", script, "--output", output]
    return ["ingest", *base, *args]
