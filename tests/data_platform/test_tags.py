"""Tags, version listing and restore on datasets and models; housekeeping keeps every
tagged version (user tags, aliases, trained-on pins, service pins)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import lance
import pyarrow as pa

from data_platform.store import Lake
from tests.lakekit.test_modelrec import make_module, write


def put_rows(path: str, *values: int) -> int:
    mode = "overwrite" if Path(path).exists() else "create"
    return lance.write_dataset(pa.table({"x": list(values)}), path, mode=mode).version


def error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    return r.json()["error"]["message"]


def test_dataset_tags_create_list_move_delete_and_refusals(dp, dp_root):
    data = str(dp_root / "lake" / "datasets" / "d.lance")
    for value in range(3):
        put_rows(data, value)
    r = dp.post("/api/v1/datasets/d/tags", json={"tag": "baseline", "version": 1})
    assert r.status_code == 201 and r.json()["name"] == "baseline" and r.json()["version"] == 1
    msg = error(
        dp.post("/api/v1/datasets/d/tags", json={"tag": "baseline", "version": 2}),
        409,
        "ALREADY_EXISTS",
    )
    assert "on version 1" in msg
    # A tag may be put where another one is.
    r = dp.post("/api/v1/datasets/d/tags", json={"tag": "copy", "version": "baseline"})
    assert r.json()["version"] == 1
    assert dp.put("/api/v1/datasets/d/tags/baseline", json={"version": 3}).json()["version"] == 3
    assert dp.put("/api/v1/datasets/d/tags/fresh", json={"version": 2}).status_code == 200
    tags = dp.get("/api/v1/datasets/d/tags").json()
    assert [(t["name"], t["version"]) for t in tags] == [("baseline", 3), ("copy", 1), ("fresh", 2)]
    versions = dp.get("/api/v1/datasets/d/versions").json()
    assert [v["tags"] for v in versions] == [["copy"], ["fresh"], ["baseline"]]
    assert dp.get("/api/v1/datasets/d").json()["tags"] == {"baseline": 3, "copy": 1, "fresh": 2}

    assert dp.delete("/api/v1/datasets/d/tags/copy").status_code == 204
    error(dp.delete("/api/v1/datasets/d/tags/copy"), 404, "TAG_NOT_FOUND")
    error(dp.put("/api/v1/datasets/d/tags/x", json={"version": 9}), 404, "VERSION_NOT_FOUND")
    error(dp.put("/api/v1/datasets/d/tags/x", json={"version": "nope"}), 404, "TAG_NOT_FOUND")
    error(
        dp.post("/api/v1/datasets/d/tags", json={"tag": "12", "version": 1}), 400, "INVALID_REQUEST"
    )
    error(dp.put("/api/v1/datasets/d/tags/bad.tag", json={"version": 1}), 400, "INVALID_REQUEST")
    error(dp.get("/api/v1/datasets/nope/tags"), 404, "DATASET_NOT_FOUND")


def test_restore_makes_a_new_version_with_the_old_content_and_rewrites_nothing(dp, dp_root):
    data = str(dp_root / "lake" / "datasets" / "d.lance")
    put_rows(data, 1, 2, 3)
    put_rows(data, 9)
    files_before = sorted(p.name for p in (Path(data) / "data").iterdir())
    r = dp.post("/api/v1/datasets/d/restore", json={"version": 1})
    assert r.status_code == 200, r.text
    assert r.json() == {"version": 3, "restored_from": 1}
    assert lance.dataset(data).to_table().column("x").to_pylist() == [1, 2, 3]
    assert sorted(p.name for p in (Path(data) / "data").iterdir()) == files_before
    assert lance.dataset(data, version=2).to_table().column("x").to_pylist() == [9]
    error(dp.post("/api/v1/datasets/d/restore", json={"version": 8}), 404, "VERSION_NOT_FOUND")


def test_model_aliases_versions_and_restore(dp, dp_root):
    path = dp_root / "lake" / "models" / "m.lance"
    for seed in range(3):
        write(path, make_module(seed), metrics={"seed": seed})
    versions = dp.get("/api/v1/models/m/versions").json()
    assert [(v["version"], v["metrics"]) for v in versions] == [
        (1, {"seed": 0}),
        (2, {"seed": 1}),
        (3, {"seed": 2}),
    ]
    assert dp.put("/api/v1/models/m/tags/prod", json={"version": 2}).status_code == 200
    assert (
        dp.post("/api/v1/models/m/tags", json={"tag": "staging", "version": 3}).status_code == 201
    )
    assert dp.get("/api/v1/models/m").json()["tags"] == {"prod": 2, "staging": 3}
    assert dp.post("/api/v1/models/m/restore", json={"version": "prod"}).json() == {
        "version": 4,
        "restored_from": 2,
    }
    model = dp.get("/api/v1/models/m").json()
    assert model["version"] == 4 and model["metrics"] == {"seed": 1}
    error(dp.get("/api/v1/models/nope/versions"), 404, "MODEL_NOT_FOUND")


def test_deleting_a_model_a_service_runs_is_refused_unless_forced(dp, dp_root):
    write(dp_root / "lake" / "models" / "m.lance", make_module())
    assert dp.put("/api/v1/models/m/tags/service-web", json={"version": 1}).status_code == 200
    msg = error(dp.delete("/api/v1/models/m"), 409, "IN_USE")
    assert "service web (version 1)" in msg
    assert dp.delete("/api/v1/models/m", params={"force": "true"}).status_code == 204
    error(dp.get("/api/v1/models/m"), 404, "MODEL_NOT_FOUND")


def test_housekeeping_keeps_what_tags_aliases_and_services_use(tmp_path: Path):
    lake = Lake(tmp_path / "lake")
    data = lake.path_of("datasets", "d")
    for value in range(5):
        put_rows(data, value)  # versions 1..5
    lake.tag("datasets", "d", "baseline", 2)
    model = lake.path_of("models", "m")
    for seed in range(5):
        write(model, make_module(seed))  # versions 1..5
    lake.tag("models", "m", "prod", 1)  # an alias
    lake.tag("models", "m", "service-web", 3)  # the version a service runs

    removed = lake.clean_old_versions(timedelta(0))
    assert removed == {"datasets/d": 3, "models/m": 2}
    assert [v.version for v in lake.dataset_versions("d")] == [2, 5]
    assert [v.version for v in lake.model_versions("m")] == [1, 3, 5]
    assert lance.dataset(data, version="baseline").to_table().column("x").to_pylist() == [1]
    # Untagged, the alias's version goes at the next round; the latest always stays.
    lake.untag("models", "m", "prod")
    assert lake.clean_old_versions(timedelta(0)) == {"models/m": 1}
    assert [v.version for v in lake.model_versions("m")] == [3, 5]
