"""The lake's file system by URI: a path and file:// behave alike; s3:// maps its options."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from serverkit.lakefs import LakeFS, normalize_uri, resolve_storage_options


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_join_exists_children_delete_tree(tmp_path: Path, as_uri: bool):
    root = tmp_path / "lake"
    fs = LakeFS(root.as_uri() if as_uri else str(root))
    assert fs.root == str(root) and fs.is_local
    fs.makedirs(fs.join("datasets"))
    ds = fs.join("datasets", "a.lance")
    assert ds == f"{root}/datasets/a.lance"
    assert not fs.exists(ds)
    (root / "datasets" / "a.lance" / "_versions").mkdir(parents=True)
    (root / "datasets" / "a.lance" / "_versions" / "1.manifest").write_bytes(b"x")
    (root / "datasets" / "b.lance").mkdir()
    assert fs.exists(ds)
    assert fs.children(fs.join("datasets")) == ["a.lance", "b.lance"]
    assert fs.children(fs.join("missing")) == []
    fs.delete_tree(ds)
    assert not fs.exists(ds) and fs.children(fs.join("datasets")) == ["b.lance"]
    fs.delete_tree(ds)  # nothing there: fine


@pytest.mark.parametrize("bad", ["..", "a/../b", "/etc", "", "a//b"])
def test_join_refuses_what_is_not_a_name(tmp_path: Path, bad: str):
    with pytest.raises(ValueError, match="bad lake path segment"):
        LakeFS(str(tmp_path)).join(bad)


def test_paths_outside_the_root_are_refused(tmp_path: Path):
    fs = LakeFS(str(tmp_path / "lake"))
    assert not fs.contains(str(tmp_path / "lake-other"))
    with pytest.raises(ValueError, match="not under the lake"):
        fs.delete_tree(str(tmp_path / "elsewhere"))


def test_uris_are_normalised():
    assert normalize_uri("file:///srv/lake/") == "/srv/lake"
    assert normalize_uri("s3://bucket/prefix/") == "s3://bucket/prefix"
    with pytest.raises(ValueError, match="names no bucket"):
        normalize_uri("s3:///prefix")
    with pytest.raises(ValueError, match="names a host"):
        normalize_uri("file://host/x")


def test_storage_options_take_json_then_aws_vars():
    env = {"AWS_ACCESS_KEY_ID": "env-key", "AWS_REGION": "eu-1", "AWS_ENDPOINT_URL": "http://h:9"}
    options = resolve_storage_options('{"aws_access_key_id": "mine", "allow_http": true}', env)
    assert options == {
        "aws_access_key_id": "mine",
        "allow_http": "true",
        "aws_region": "eu-1",
        "aws_endpoint": "http://h:9",
    }
    with pytest.raises(ValueError, match="JSON object"):
        resolve_storage_options("[1]", {})


def test_s3_lake_maps_lance_options_to_pyarrow():
    fs = LakeFS(
        "s3://bucket/lake/",
        {
            "aws_access_key_id": "k",
            "aws_secret_access_key": "s",
            "aws_endpoint": "http://127.0.0.1:9000",
            "aws_region": "us-east-1",
        },
    )
    assert not fs.is_local
    assert fs.join("datasets", "x.lance") == "s3://bucket/lake/datasets/x.lance"
    s3 = fs.fs
    assert isinstance(s3, pafs.S3FileSystem) and s3.region == "us-east-1"
    assert fs._path("s3://bucket/lake/datasets/x.lance") == "bucket/lake/datasets/x.lance"
