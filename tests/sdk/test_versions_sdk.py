"""The SDK's versions, tags, restore and delete refusals, against the real platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from aip import Client
from aip.errors import AlreadyExists, InUse, NotFound, TagNotFound, VersionNotFound
from tests.data_platform.test_versions import TRAIN
from tests.sdk.test_sdk import submit
from tests.support import PlatformServers


def train_script(platform: PlatformServers) -> str:
    """A training script that reads its input with lakekit and records it as its source."""
    (Path(platform.dp.env["DP_SCRIPTS_ROOT"]) / "versions_train.py").write_text(TRAIN)
    return "versions_train.py"


def test_dataset_tags_restore_and_a_refused_delete(client: Client, platform: PlatformServers):
    submit(client, "sdkv_a", "fixtures/write_rows.py", "sdkv", rows=2, tag="old").wait(60, 0.1)
    submit(client, "sdkv_b", "fixtures/write_rows.py", "sdkv", rows=5).wait(60, 0.1)
    first, latest = (v.version for v in client.datasets.versions("sdkv"))

    tag = client.datasets.tag("sdkv", "baseline", first, move=False)
    assert tag.name == "baseline" and tag.version == first
    with pytest.raises(AlreadyExists) as info:
        client.datasets.tag("sdkv", "baseline", latest, move=False)
    assert info.value.code == "ALREADY_EXISTS" and info.value.status == 409
    assert client.datasets.tag("sdkv", "newest", latest).version == latest
    assert [(t.name, t.version) for t in client.datasets.tags("sdkv")] == [
        ("baseline", first),
        ("newest", latest),
    ]
    assert [v.tags for v in client.datasets.versions("sdkv")] == [["baseline"], ["newest"]]
    with pytest.raises(VersionNotFound):
        client.datasets.tag("sdkv", "x", 99)

    restored = client.datasets.restore("sdkv", "baseline")
    assert restored.version == latest + 1 and restored.restored_from == first
    assert client.datasets.get("sdkv").num_rows == 2

    client.datasets.untag("sdkv", "newest")
    with pytest.raises(TagNotFound) as missing:
        client.datasets.untag("sdkv", "newest")
    assert isinstance(missing.value, NotFound) and missing.value.code == "TAG_NOT_FOUND"

    trained = client.training.submit(
        name="sdkv_fit", input="sdkv", script=train_script(platform), output="sdkv_m"
    ).wait(120, 0.2)
    assert trained.status == "completed"
    (version,) = client.models.versions("sdkv_m")
    assert version.source["name"] == "sdkv" and version.source["version"] == restored.version
    assert version.provenance["script"].endswith("versions_train.py")
    assert len(version.provenance["script_sha256"]) == 64
    assert client.models.tag("sdkv_m", "prod", 1).version == 1
    assert client.models.get("sdkv_m").tags == {"prod": 1}

    with pytest.raises(InUse) as in_use:
        client.datasets.delete("sdkv")
    assert in_use.value.code == "IN_USE" and "model sdkv_m version 1" in in_use.value.message
    client.models.delete("sdkv_m")  # unpins the dataset version it was trained on
    client.datasets.delete("sdkv")
    with pytest.raises(NotFound):
        client.datasets.get("sdkv")
