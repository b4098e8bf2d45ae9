"""``aip datasets|models versions|tags|tag|untag|restore`` and ``rm --force``."""

from __future__ import annotations

from tests.cli.conftest import Run, ingest
from tests.sdk.test_versions_sdk import train_script
from tests.support import PlatformServers


def test_dataset_versions_tags_and_restore_from_the_shell(aip: Run):
    for rows in ("2", "4"):
        code, _, err = aip(
            *ingest(
                "--wait",
                "--param",
                f"rows={rows}",
                name="cliv",
                script="fixtures/write_rows.py",
                output="cliv",
            )
        )
        assert code == 0, err
    code, out, _ = aip("datasets", "tag", "cliv", "baseline", "1")
    assert code == 0 and "cliv@baseline -> version 1" in out
    code, _, err = aip("datasets", "tag", "cliv", "baseline", "2", "--create")
    assert code == 4 and "already has tag 'baseline'" in err
    assert aip.json("datasets", "tags", "cliv")[0]["name"] == "baseline"
    versions = aip.json("datasets", "versions", "cliv")
    assert [v["tags"] for v in versions] == [["baseline"], []]
    code, out, _ = aip("datasets", "versions", "cliv")
    assert code == 0 and "baseline" in out

    assert aip.json("datasets", "restore", "cliv", "baseline") == {"version": 3, "restored_from": 1}
    assert aip.json("datasets", "show", "cliv")["num_rows"] == 2
    code, _, err = aip("datasets", "restore", "cliv", "9")
    assert code == 3 and "no version 9" in err
    code, out, _ = aip("datasets", "untag", "cliv", "baseline")
    assert code == 0 and "untagged cliv@baseline" in out
    code, _, err = aip("datasets", "untag", "cliv", "baseline")
    assert code == 3 and "no tag 'baseline'" in err


def test_model_versions_and_a_forced_delete(aip: Run, platform: PlatformServers):
    code, _, err = aip(
        *ingest(
            "--wait",
            "--param",
            "rows=3",
            name="clivm_d",
            script="fixtures/write_rows.py",
            output="clivm",
        )
    )
    assert code == 0, err
    train = ["--name", "clivm_t", "--input", "clivm", "--script", train_script(platform)]
    code, _, err = aip("train", *train, "--output", "clivm_m", "--wait")
    assert code == 0, err
    (version,) = aip.json("models", "versions", "clivm_m")
    assert version["source"]["name"] == "clivm" and version["provenance"]["script_sha256"]
    code, out, _ = aip("models", "versions", "clivm_m")
    assert code == 0 and version["provenance"]["script_sha256"][:12] in out
    code, out, _ = aip("models", "tag", "clivm_m", "prod", "1")
    assert code == 0 and "clivm_m@prod -> version 1" in out
    code, out, _ = aip("models", "show", "clivm_m")
    assert code == 0 and "prod=1" in out and "versions_train.py" in out

    code, _, err = aip("datasets", "rm", "clivm")
    assert code == 4 and "model clivm_m version 1" in err
    code, _, err = aip("datasets", "rm", "clivm", "--force")
    assert code == 0, err
    code, _, _ = aip("datasets", "show", "clivm")
    assert code == 3
