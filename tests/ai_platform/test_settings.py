"""Where the AI Platform keeps its state: a path, a ``file://`` or an object-store URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_platform.settings import AIPlatformSettings


def test_a_local_state_dir_keeps_the_logs_beside_the_records(tmp_path: Path):
    settings = AIPlatformSettings(_env_file=None, state_dir=tmp_path / "state")
    assert settings.state_uri == str((tmp_path / "state").resolve())
    assert settings.logs_dir == tmp_path / "state" / "logs"


def test_a_file_uri_is_local(tmp_path: Path):
    settings = AIPlatformSettings(_env_file=None, state_dir=f"file://{tmp_path}/state/")
    assert settings.state_uri == str(tmp_path / "state")
    assert settings.logs_dir == tmp_path / "state" / "logs"


def test_an_object_store_uri_keeps_logs_on_local_disk(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIP_STATE_DIR", "s3://bucket/prefix/_ai_platform/")
    monkeypatch.setenv("AIP_STATE_STORAGE_OPTIONS", '{"aws_region": "us-east-1"}')
    settings = AIPlatformSettings(_env_file=None)
    assert settings.state_uri == "s3://bucket/prefix/_ai_platform"
    assert settings.state_storage_options == {"aws_region": "us-east-1"}
    assert settings.logs_dir == Path(".aip-logs")
    monkeypatch.setenv("AIP_LOG_DIR", "/var/log/aip")
    assert AIPlatformSettings(_env_file=None).logs_dir == Path("/var/log/aip")


def test_state_on_object_storage_takes_the_aws_environment_as_the_data_platform_does(
    monkeypatch,
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-from-env")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    s3 = AIPlatformSettings(_env_file=None, state_dir="s3://lake/_ai_platform")
    assert s3.state_options["aws_access_key_id"] == "key-from-env"
    assert s3.model_storage_options["aws_access_key_id"] == "key-from-env"
    explicit = AIPlatformSettings(
        _env_file=None,
        state_dir="s3://lake/_ai_platform",
        state_storage_options={"aws_access_key_id": "explicit"},
    )
    assert explicit.state_options["aws_access_key_id"] == "explicit"  # settings win
    local = AIPlatformSettings(_env_file=None, state_dir="/tmp/state")
    assert local.state_options == {}  # a local state dir takes nothing from AWS_*
