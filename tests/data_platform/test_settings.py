"""The lake is one URI with storage options; logs and scratch live in a local work dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_platform.settings import DataPlatformSettings


def test_a_local_lake_by_path_or_file_uri_keeps_its_work_dir_inside(tmp_path: Path):
    by_path = DataPlatformSettings(_env_file=None, lake_root=tmp_path / "lake")
    by_uri = DataPlatformSettings(_env_file=None, lake_root=(tmp_path / "lake").as_uri())
    assert by_path.lake_root == by_uri.lake_root == str(tmp_path / "lake")
    assert by_path.resolved_work_dir == tmp_path / "lake" / "_system"
    # Code written when the root was a Path still joins under it.
    assert by_path.lake_root / "_ai_platform" == f"{tmp_path}/lake/_ai_platform"


def test_an_object_store_lake_takes_json_options_then_aws_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DP_LAKE_ROOT", "s3://bucket/lake/")
    monkeypatch.setenv("DP_LAKE_STORAGE_OPTIONS", '{"aws_endpoint": "http://127.0.0.1:9000"}')
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    settings = DataPlatformSettings(_env_file=None)
    assert settings.lake_root == "s3://bucket/lake"
    assert settings.storage_options == {
        "aws_endpoint": "http://127.0.0.1:9000",
        "aws_access_key_id": "from-env",
        "aws_secret_access_key": "secret",
    }
    assert settings.resolved_work_dir == tmp_path / ".dp-work"


def test_a_bad_lake_uri_is_refused():
    with pytest.raises(ValueError, match="names no bucket"):
        DataPlatformSettings(_env_file=None, lake_root="s3:///nothing")
