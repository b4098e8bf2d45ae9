"""The launcher (``make up``): both services, and how they end with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serverkit.net import free_port
from tests.support import FIXTURE_SCRIPTS, REPO, pid_alive, wait_until

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            found += [int(p) for p in fh.read().split()]
    return found


def test_both_services_die_with_a_sigkilled_launcher(tmp_path: Path):
    (tmp_path / "data").mkdir()
    dp_port, aip_port = free_port(), free_port()
    env = {
        **os.environ,
        "DP_LAKE_ROOT": str(tmp_path / "lake"),
        "DP_SCRIPTS_ROOT": str(FIXTURE_SCRIPTS),
        "DP_DATA_ROOT": str(tmp_path / "data"),
        "DP_PORT": str(dp_port),
        "AIP_PORT": str(aip_port),
    }
    log = open(tmp_path / "launcher.log", "wb")  # noqa: SIM115 - the child owns it
    launcher = subprocess.Popen(
        [sys.executable, "-m", "lakestack.launcher"], env=env, cwd=REPO, stdout=log, stderr=log
    )
    log.close()
    services: list[int] = []
    try:

        def both_up() -> bool:
            for port in (dp_port, aip_port):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code != 200:
                    return False
            return True

        wait_until(both_up, timeout=90)
        services = _children(launcher.pid)
        assert len(services) == 2, services

        launcher.send_signal(signal.SIGKILL)  # as an OOM killer or `docker kill` would
        launcher.wait()

        wait_until(lambda: not any(pid_alive(p) for p in services), timeout=10)
        for port in (dp_port, aip_port):
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in services:  # should the fix regress, no orphan outlives the test
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_console_shows_task_state_changes_not_one_line_per_request(tmp_path: Path):
    from lakestack.launcher import Platform

    (tmp_path / "data").mkdir()
    env = {
        "DP_LAKE_ROOT": str(tmp_path / "lake"),
        "DP_SCRIPTS_ROOT": str(FIXTURE_SCRIPTS),
        "DP_DATA_ROOT": str(tmp_path / "data"),
        "DP_PORT": str(free_port()),
        "AIP_PORT": str(free_port()),
    }
    platform = Platform(env, log_dir=tmp_path / "logs").start()
    try:
        job = {"name": "quiet", "input": "", "script": "exit_ok.py", "output": "quiet"}
        task = httpx.post(f"{platform.url}/api/v1/ingestion-tasks", json=job).json()
        for _ in range(30):  # a UI polling
            httpx.get(f"{platform.url}/api/v1/ingestion-tasks/{task['id']}").raise_for_status()
            httpx.get(f"{platform.url}/api/v1/datasets").raise_for_status()
        wait_until(
            lambda: (
                httpx.get(f"{platform.url}/api/v1/ingestion-tasks/{task['id']}").json()["status"]
                == "completed"
            )
        )
    finally:
        platform.stop()
    console = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert f"{task['id']} running -> completed" in console
    assert "HTTP Request" not in console and "200 OK" not in console, console[-2000:]
    assert len(console.splitlines()) < 30, console


def test_either_key_protects_both_services():
    from lakestack.launcher import Platform

    only_aip = Platform({"AIP_API_KEY": "k1", "DP_API_KEY": ""})
    assert only_aip.env["DP_API_KEY"] == "k1" and only_aip.env["AIP_API_KEY"] == "k1"
    only_dp = Platform({"DP_API_KEY": "k2", "AIP_API_KEY": ""})
    assert only_dp.env["DP_API_KEY"] == "k2"
    # The AI Platform takes the Data Platform's key when it has none of its own.
    from ai_platform.settings import AIPlatformSettings

    settings = AIPlatformSettings(_env_file=None, **{"DP_API_KEY": "k2"})
    assert settings.api_key == "k2" and settings.data_platform_api_key == "k2"


def test_the_grace_period_comes_from_the_environment():
    from lakestack.launcher import GRACE_SECONDS, Platform

    assert Platform({}).grace == GRACE_SECONDS
    assert Platform({"LAKESTACK_SHUTDOWN_GRACE_SECONDS": "2.5"}).grace == 2.5


def test_json_settings_from_the_environment_reach_both_services():
    """``make up`` with DP_LAKE_STORAGE_OPTIONS set (an S3 lake): the launcher builds each
    service's settings from its environment, JSON objects and lists included."""
    from ai_platform.settings import AIPlatformSettings
    from data_platform.settings import DataPlatformSettings
    from lakestack.launcher import _from_env

    env = {
        "DP_LAKE_STORAGE_OPTIONS": '{"aws_region": "us-east-1", "allow_http": "true"}',
        "DP_PORT": "8123",
        "AIP_ALLOWED_HOSTS": '["lake.example"]',
        "AIP_MODEL": "{not json",
    }
    dp = DataPlatformSettings(_env_file=None, **_from_env(env, "DP_"))
    assert dp.lake_storage_options == {"aws_region": "us-east-1", "allow_http": "true"}
    assert dp.port == 8123
    aip = AIPlatformSettings(
        _env_file=None, **_from_env({"AIP_ALLOWED_HOSTS": env["AIP_ALLOWED_HOSTS"]}, "AIP_")
    )
    assert aip.allowed_hosts == ["lake.example"]
    assert _from_env(env, "AIP_")["model"] == "{not json"  # left for the service to refuse
