"""The SDK and the CLI over both real services: batch inference on a vector dataset (the
generic, non-image path), search by row, lineage and reproduce."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aip import Client
from aip.cli import main
from tests.support import PlatformServers, make_scripts_root

INGEST = """
import csv
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa


def run(input_path, output_path, params):
    rows = []
    for file in sorted(Path(input_path).glob("*.csv")):
        with open(file) as fh:
            rows += list(csv.DictReader(fh))
    features = np.array([[float(r[f"f{i}"]) for i in range(4)] for r in rows], np.float32)
    table = pa.table({
        "features": pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), 4),
        "label": pa.array([int(r["label"]) for r in rows], pa.int64()),
    })
    lance.write_dataset(table, output_path)
    return {"rows": len(rows)}
"""

TRAIN = """
import numpy as np
import torch

from lakekit import datasets
from lakekit.models import save_model


def run(input_path, output_path, params):
    ds = datasets.open_dataset(input_path)
    table = ds.to_table()
    x = torch.from_numpy(np.stack(table["features"].to_numpy(zero_copy_only=False)))
    y = torch.from_numpy(table["label"].to_numpy())
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(int(params.get("steps", 50))):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    accuracy = float((net(x).argmax(1) == y).float().mean())
    save_model(output_path, net, x[:2], labels=["0", "1"], params=params,
               metrics={"accuracy": accuracy}, source=ds)
    return {"accuracy": accuracy}
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    root = tmp_path_factory.mktemp("lakeops_sdk")
    raw = root / "data" / "raw" / "pts"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["f0,f1,f2,f3,label"]
    for i in range(200):
        label = i % 2
        f = rng.normal(size=4) + (3 if label else -3)
        lines.append(",".join(f"{v:.4f}" for v in f) + f",{label}")
    (raw / "a.csv").write_text("\n".join(lines) + "\n")
    scripts = make_scripts_root(root)
    (scripts / "lakeops").mkdir()
    (scripts / "lakeops" / "ingest.py").write_text(textwrap.dedent(INGEST))
    (scripts / "lakeops" / "train.py").write_text(textwrap.dedent(TRAIN))
    servers = PlatformServers(root).start()
    servers.scripts = scripts  # type: ignore[attr-defined]
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def client(platform: PlatformServers) -> Iterator[Client]:
    with Client(platform.url, timeout=60) as c:
        c.ingestion.submit("pts", "raw/pts", "lakeops/ingest.py", "pts").wait(timeout=120)
        c.training.submit("m", "pts", "lakeops/train.py", "m", {"steps": 50}).wait(timeout=120)
        yield c


def cli(platform: PlatformServers, capsys: pytest.CaptureFixture[str], *args: str):
    capsys.readouterr()
    code = main(["--url", platform.url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_sdk_batch_inference_search_lineage_and_reproduce(client, platform):
    lin = client.models.lineage("m")
    assert lin.training is not None and lin.training.script == "lakeops/train.py"
    assert lin.dataset == "pts" and lin.dataset_version == 1
    assert [p.script for p in lin.producers] == ["lakeops/ingest.py"]
    assert list(lin.producers[0].input_checksums) == ["a.csv"]
    rep = client.models.reproduce("m", wait=True, timeout=120)
    assert rep.new_version == 2 and rep.differences == {"accuracy": 0.0}
    # After the reproduction: a batch inference moves the dataset to a new version.
    task = client.batch_inference.submit("m", "pts", input_column="features").wait(timeout=120)
    assert task.kind == "batch_inference" and task.status == "completed"
    assert task.stats["rows"] == 200 and task.stats["embedding_dim"] == 8
    assert task.stats["accuracy"] >= 0.95
    assert [t.id for t in client.batch_inference.list()] == [task.id]
    found = client.datasets.search("pts", row_id=0, k=5)
    assert found.hits[0].row_id == 0 and not found.indexed
    assert sum(h.values["label"] == 0 for h in found.hits) == 5  # row 0 is class 0


def test_cli_covers_batch_infer_search_index_lineage_and_reproduce(client, platform, capsys):
    args = ("batch-infer", "--model", "m", "--dataset", "pts", "--input-column", "features")
    code, out, err = cli(platform, capsys, *args, "--prefix", "c_", "--wait")
    assert code == 0, err
    code, out, err = cli(platform, capsys, "--json", "search", "pts", "--row-id", "3", "-k", "3")
    assert code == 0, err
    assert json.loads(out)["hits"][0]["row_id"] == 3
    code, out, err = cli(platform, capsys, "search", "pts", "-k", "3")
    assert code == 2 and "exactly one" in err
    args = ("datasets", "index", "pts", "--column", "c_embedding", "--partitions", "2")
    code, out, err = cli(platform, capsys, *args)
    assert code == 0 and "IVF_FLAT" in out, err
    code, out, err = cli(platform, capsys, "models", "lineage", "m")
    assert code == 0 and "lakeops/train.py" in out and "a.csv" in out, err
    script = Path(platform.scripts) / "lakeops" / "train.py"
    with open(script, "a") as fh:
        fh.write("\n# changed\n")
    code, out, err = cli(platform, capsys, "models", "reproduce", "m")
    assert code == 4 and "SCRIPT_CHANGED" in err
