"""``aip`` in-process (``main([...])``) and as the installed command, against real services."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from aip import Client
from aip.cli import EXIT_BY_CODE, describe_progress, main, parse_params
from aip.cli.output import size
from aip.errors import STATUS_BY_CODE
from aip.records import Task
from tests.cli.conftest import Run, ingest
from tests.sdk import shared
from tests.support import PlatformServers, free_port, wait_until

# -- without a server ----------------------------------------------------------------------


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "130" in out and "unreachable" in out and "AIP_URL" in out
    assert "141" in out and "1 MB = 1,000,000 bytes" in out and "letters, digits" in out
    assert main(["tasks", "logs", "--help"]) == 0
    assert "--follow" in capsys.readouterr().out


def test_every_server_error_code_has_an_exit_code():
    assert set(STATUS_BY_CODE) <= set(EXIT_BY_CODE)
    assert EXIT_BY_CODE["DATASET_NOT_FOUND"] == 3 and EXIT_BY_CODE["TASK_ALREADY_RUNNING"] == 4
    assert EXIT_BY_CODE["UPSTREAM_UNAVAILABLE"] == 5 and EXIT_BY_CODE["TASK_TIMEOUT"] == 6
    assert EXIT_BY_CODE["TASK_FAILED"] == 1 and EXIT_BY_CODE["INVALID_REQUEST"] == 2


def test_params_are_json_when_they_parse():
    params = parse_params(
        ["epochs=2", "normalize=true", "name=foo", "lr=1e-3", "sizes=[1,2]", "eq=a=b", "empty="],
        '{"epochs": 1, "limit": 100}',
    )
    assert params == {
        "epochs": 2,
        "limit": 100,
        "normalize": True,
        "name": "foo",
        "lr": 0.001,
        "sizes": [1, 2],
        "eq": "a=b",
        "empty": "",
    }


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]):
    assert main([]) == 2
    assert main(["datasets"]) == 2
    assert main(["tasks", "ls", "--status", "sleeping"]) == 2
    base = ["ingest", "--name", "n", "--input", "i", "--script", "s", "--output", "o"]
    assert main([*base, "--param", "novalue"]) == 2
    assert main([*base, "--params-json", "[1, 2]"]) == 2
    assert main([*base, "--params-json", "{oops"]) == 2
    assert "--params-json" in capsys.readouterr().err


def test_unreachable_platform_exits_5(capsys: pytest.CaptureFixture[str]):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--url", url, "datasets", "ls"]) == 5
    assert "unreachable" in capsys.readouterr().err
    assert main(["datasets", "ls", "--url", url, "--json"]) == 5  # flags after the command too
    error = json.loads(capsys.readouterr().err)
    assert error["error"]["code"] == "UPSTREAM_UNAVAILABLE"


def test_describe_progress_knows_training_and_ingestion_points():
    def task(progress: dict, params: dict | None = None) -> Task:
        return Task.model_validate(
            {
                "id": "train-1",
                "kind": "training",
                "name": "t",
                "status": "running",
                "input": "i",
                "script": "s",
                "output": "o",
                "created_at": "2026-01-01T00:00:00Z",
                "params": params or {},
                "progress": progress,
            }
        )

    mid_epoch = task({"time": 1.0, "epoch": 2, "step": 30, "loss": 0.25}, {"epochs": 3})
    assert describe_progress(mid_epoch) == (1, 3, "epoch 2/3 · loss 0.25")
    end = task({"epoch": 2, "epochs": 3, "train_loss": 0.2, "test_accuracy": 0.91234})
    assert describe_progress(end) == (2, 3, "epoch 2/3 · loss 0.2 · acc 0.9123")
    records = task({"records_done": 1500, "records_total": 4000, "split": "train"})
    assert describe_progress(records) == (1500, 4000, "1,500/4,000 records (train)")
    assert describe_progress(task({})) == (None, None, "")


def test_up_runs_the_launcher(monkeypatch: pytest.MonkeyPatch):
    import lakestack.launcher

    monkeypatch.setattr(lakestack.launcher, "main", lambda: 0)
    assert main(["up"]) == 0


# -- against the platform ------------------------------------------------------------------


def test_unknown_dataset_exits_3(aip: Run):
    code, out, err = aip("datasets", "show", "ghost")
    assert code == 3 and out == ""
    assert "DATASET_NOT_FOUND" in err and "ghost" in err
    code, out, err = aip("--json", "datasets", "rm", "ghost")
    assert code == 3 and json.loads(err)["error"]["code"] == "DATASET_NOT_FOUND"
    assert aip("models", "show", "ghost")[0] == 3
    assert aip("tasks", "show", "ingest-000000000000")[0] == 3
    assert aip("services", "rm", "ghost")[0] == 3
    assert aip("serve", "--name", "cli_ghost", "--model", "ghost")[0] == 3
    code, _, err = aip(
        "train", "--name", "t", "--input", "ghost", "--script", "s.py", "--output", "m"
    )
    assert code == 3 and "DATASET_NOT_FOUND" in err


def test_ingest_wait_shows_progress_then_the_result(aip: Run):
    code, out, err = aip(
        *ingest("--param", "epochs=3", "--wait", name="cli_p", script="fixtures/report_progress.py")
    )
    assert code == 0, err
    assert "epoch 3/3 · loss 0.3333 · acc 0.8" in out  # the progress line, piped
    assert "completed ingest-" in out and "epochs" in out
    assert "submitted ingest-" in err


def test_ingest_then_datasets_tables_and_json(aip: Run):
    code, out, err = aip(
        *ingest(
            "--param",
            "rows=7",
            "--params-json",
            '{"tag": "cli"}',
            "--wait",
            name="cli_rows",
            script="fixtures/write_rows.py",
            output="cli_rows",
        )
    )
    assert code == 0, err

    code, out, _ = aip("datasets", "ls")
    assert code == 0
    header, _rule, *rows = out.splitlines()
    assert header.split() == ["ID", "ROWS", "SIZE", "VERSION", "UPDATED"]
    row = next(r for r in rows if r.startswith("cli_rows "))
    assert row.split()[1] == "7"

    listed = aip.json("datasets", "ls")
    assert isinstance(listed, list) and any(d["id"] == "cli_rows" for d in listed)
    shown = aip.json("datasets", "show", "cli_rows")
    assert shown["num_rows"] == 7 and shown["schema"] == {"x": "int64", "tag": "string"}
    assert f" {size(shown['size_bytes'])} " in row  # decimal units: "1.2 kB"
    assert row.split()[3] in ("B", "kB", "MB")
    code, out, _ = aip("datasets", "show", "cli_rows")
    assert "schema" in out and "tag" in out and "string" in out
    assert aip.json("datasets", "versions", "cli_rows")[-1]["version"] == shown["version"]

    tasks = aip.json("tasks", "ls", "--kind", "ingestion", "--status", "completed")
    task = next(t for t in tasks if t["name"] == "cli_rows")
    assert task["params"] == {"tag": "cli", "rows": 7} and task["stats"] == {"rows": 7}
    code, out, _ = aip("tasks", "ls")
    assert task["id"] in out and "completed" in out
    code, out, _ = aip("tasks", "show", task["id"])
    assert code == 0 and "fixtures/write_rows.py" in out and "rows" in out

    code, out, _ = aip("datasets", "rm", "cli_rows")
    assert code == 0 and "deleted dataset cli_rows" in out
    assert aip("datasets", "show", "cli_rows")[0] == 3


def test_failed_task_with_wait_exits_1(aip: Run):
    code, out, err = aip(*ingest("--wait", name="cli_fail", script="fixtures/raise_error.py"))
    assert code == 1
    assert "bad pixels in row 42" in err and "TASK_FAILED" in err and "aip tasks logs" in err

    code, out, err = aip(
        "--json", *ingest("--follow", name="cli_fail", script="fixtures/raise_error.py")
    )
    assert code == 1
    record = json.loads(out)  # stdout is the final record, the log went to stderr
    assert record["status"] == "failed" and record["error"]["reason"] == "exception"
    assert "Traceback" in err and json.loads(err.splitlines()[-1])["error"]["code"] == "TASK_FAILED"


def test_follow_streams_the_log_while_waiting(aip: Run):
    code, out, err = aip(*ingest("--follow", name="cli_follow", script="fixtures/exit_ok.py"))
    assert code == 0, err
    assert "hello from exit_ok" in out and "completed ingest-" in out
    assert out.index("hello from exit_ok") < out.index("completed ingest-")


def test_timeout_conflict_logs_and_cancel(aip: Run, platform: PlatformServers, tmp_path: Path):
    pid_file = tmp_path / "sleep.pid"
    sleep = ingest(
        "--param", f"pid_file={pid_file}", name="cli_sleep", script="fixtures/sleep_forever.py"
    )

    code, _, err = aip(*sleep, "--wait", "--timeout", "0.5")
    assert code == 6 and "TASK_TIMEOUT" in err and "aip tasks cancel" in err
    task_id = aip.json("tasks", "ls", "--status", "running")[0]["id"]
    try:
        code, _, err = aip(*sleep)
        assert code == 4 and "TASK_ALREADY_RUNNING" in err

        wait_until(pid_file.exists, timeout=30)

        # Follow the log until the task ends: cancelled from another thread once it slept.
        def cancel_when_sleeping() -> None:
            with Client(platform.url) as client:
                handle = client.task(task_id)
                wait_until(lambda: "sleeping" in handle.logs(), timeout=30)
                handle.cancel()

        canceller = threading.Thread(target=cancel_when_sleeping)
        canceller.start()
        code, out, _ = aip("tasks", "logs", task_id, "--follow")
        canceller.join(10)
        assert code == 0 and "sleeping" in out
    finally:
        Client(platform.url).task(task_id).cancel()

    # Again: the task had ended, a conflict (exit 4) as REST's 409; its state is still shown.
    code, out, err = aip("tasks", "cancel", task_id)
    assert code == 4 and "failed (cancelled)" in out
    assert "TASK_ALREADY_FINISHED" in err and "already ended" in err
    code, out, err = aip("--json", "tasks", "cancel", task_id)
    assert code == 4 and json.loads(out)["error"]["reason"] == "cancelled"
    assert json.loads(err)["error"]["code"] == "TASK_ALREADY_FINISHED"
    code, out, _ = aip("tasks", "show", task_id)
    assert code == 0 and "cancelled" in out
    assert aip.json("tasks", "logs", task_id, "--tail", "1")["logs"].strip() == "sleeping"
    code, out, err = aip("tasks", "wait", task_id)
    assert code == 1 and "TASK_CANCELLED" in err


def test_installed_command_exits_with_the_code(platform: PlatformServers):
    exe = shutil.which("aip", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the aip entry point is not installed (pip install -e .)")
    # One process only (each costs an interpreter start): the real exit status and stderr.
    missing = subprocess.run(
        [exe, "--url", platform.url, "models", "rm", "ghost"], capture_output=True, text=True
    )
    assert missing.returncode == 3 and "MODEL_NOT_FOUND" in missing.stderr


# -- serving -------------------------------------------------------------------------------


@pytest.mark.slow
def test_services_and_predict(aip: Run, served: tuple[str, str], tmp_path: Path):
    model, name = served
    code, out, _ = aip("models", "ls")
    assert code == 0 and model in out and "mnist_mlp" in out
    code, out, _ = aip("models", "show", model)
    assert code == 0 and "test_accuracy" in out and "history" in out
    assert aip.json("models", "show", model)["id"] == model

    code, out, _ = aip("services", "ls")
    assert code == 0 and name in out and "running" in out
    service = aip.json("services", "show", name)
    assert service["status"] == "running" and service["model"] == model

    digits, _ = shared.mnist_digits(3)
    paths = []
    for i, digit in enumerate(digits):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(255 - digit).resize((84, 84)).save(path)  # dark on light, 3x
        paths.append(str(path))
    code, out, err = aip("predict", name, *paths)
    assert code == 0, err
    header, _, *rows = out.splitlines()
    assert header.split() == ["IMAGE", "DIGIT", "CONFIDENCE"] and len(rows) == 3
    answers = aip.json("predict", service["id"], *paths)
    assert [a["image"] for a in answers] == paths
    assert all(0 <= a["prediction"] <= 9 and len(a["probabilities"]) == 10 for a in answers)
    assert [r.split()[1] for r in rows] == [str(a["prediction"]) for a in answers]

    code, _, err = aip("predict", name, str(tmp_path / "missing.png"))
    assert code == 2 and "cannot read image" in err
    (tmp_path / "bad.png").write_bytes(b"not an image")
    code, _, err = aip("predict", name, str(tmp_path / "bad.png"))
    assert code == 2 and "INVALID_REQUEST" in err
    assert aip("predict", "ghost", paths[0])[0] == 3

    code, _, err = aip("serve", "--name", name, "--model", model)
    assert code == 4 and "SERVICE_ALREADY_EXISTS" in err
    code, _, err = aip(
        "serve", "--name", "cli_other", "--model", model, "--port", str(service["port"])
    )
    assert code == 4 and "PORT_IN_USE" in err
    code, out, _ = aip("services", "logs", name, "--tail-bytes", "500")
    assert code == 0
