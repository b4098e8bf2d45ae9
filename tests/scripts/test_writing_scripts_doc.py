"""The complete training script in docs/writing-scripts.md runs and saves a servable model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lakekit import models
from tests.scripts.test_tabular import CSV, ROOT, csv_clean

DOC = ROOT / "docs" / "writing-scripts.md"


def example_script() -> str:
    text = DOC.read_text()
    section = text[text.index("## Writing a training script") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_guides_tabular_example_trains_a_servable_model(tmp_path: Path) -> None:
    script = tmp_path / "my_tabular.py"
    script.write_text(example_script())
    spec = importlib.util.spec_from_file_location("my_tabular_under_test", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    data = str(tmp_path / "machine_health.lance")
    csv_clean.run(str(CSV), data, {})
    out = tmp_path / "machine_health_mlp.lance"
    result = module.run(data, str(out), {"epochs": 3})
    assert result["epochs"] == 3 and result["test_accuracy"] > 0.85
    assert models.check_model_record(out, load=True) is None
    info = models.read_model_info(out)
    assert info["signature"]["inputs"] == [
        {"name": "features", "dtype": "float32", "shape": [-1, 8]}
    ]
    assert info["labels"] == ["faulty", "ok", "worn"]
    assert info["source"]["version"] == 1 and len(info["history"]) == 3
    with pytest.raises(ValueError, match=r"params\.epochs must be a positive integer"):
        module.run(data, str(tmp_path / "other.lance"), {"epochs": 0})
