"""Tabular: a model trained on a user's CSV, its predict throughput through the service's own
endpoint and the platform route, against a bare FastAPI app serving the same model.

The model is made the way users make it, through the platform: ``pipelines/csv_clean.py`` on
``raw/tabular/machine_health.csv``, then ``training/tabular_mlp.py``. Requests are the JSON
convenience, one row of 8 features each: ``{"inputs": [[...8 floats]]}``, answered with the
logits and the labelled prediction. The bare app is this module run as a server
(``python -m bench.tabular --model-path P --port N``): the record's network rebuilt by
``lakekit.modelrec.load_model``, one uvicorn worker, torch threads 1, a plain ``def`` route,
minimal checks; it answers the same fields.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from typing import Any

from pydantic import BaseModel

from bench.context import AreaResult, Context
from bench.lab import REPO
from bench.loadgen import CLIENT
from bench.oip import FULL_REQUESTS, QUICK_REQUESTS, measure
from bench.report import Row, Target
from bench.serving import BareServer, max_seconds
from bench.stats import median, paired_ratio

CSV_DIR = REPO / "data" / "raw" / "tabular"
MODEL = "bench_tabular_mlp"
SERVICE_RPS = Target("ratio", ">=", 0.9, ">= 0.9x bare")
ROUTE_RPS = Target("ratio", ">=", 0.7, ">= 0.7x bare")
LABELS = {"service": "service endpoint", "platform": "platform route"}
JSON = {"content-type": "application/json"}


class BareTabular(BareServer):
    """This module as a server on a free port (``BareServer``'s life cycle)."""

    def __init__(self, model_path: Any, log_path: Any) -> None:
        from serverkit.net import free_port

        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "bench.tabular", "--model-path", str(model_path)]
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--port", str(self.port)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def ensure_model(ctx: Context) -> str:
    """Ingest the CSV and train the MLP through the platform (once per run)."""
    if "tabular_model" not in ctx.artifacts:
        platform = ctx.require_platform()
        shutil.copytree(CSV_DIR, ctx.lab.data_root / "raw" / "tabular", dirs_exist_ok=True)
        platform.run_task(
            "ingestion",
            {
                "name": "bench_tabular_ingestion",
                "input": "raw/tabular/machine_health.csv",
                "script": "pipelines/csv_clean.py",
                "output": "bench_machine_health",
            },
        )
        platform.run_task(
            "training",
            {
                "name": "bench_tabular_training",
                "input": "bench_machine_health",
                "script": "training/tabular_mlp.py",
                "params": {"epochs": 5, "threads": 1},
                "output": MODEL,
            },
        )
        ctx.artifacts["tabular_model"] = MODEL
    return ctx.artifacts["tabular_model"]


def feature_rows(count: int) -> list[list[float]]:
    rows = []
    with (CSV_DIR / "machine_health.csv").open() as fh:
        for row in csv.DictReader(fh):
            values = [v for k, v in row.items() if k not in ("id", "status")]
            if all(values):
                rows.append([float(v) for v in values])
            if len(rows) == count:
                break
    return rows


def run(ctx: Context) -> AreaResult:
    import httpx

    platform = ctx.require_platform()
    quick = ctx.settings.quick
    model = ensure_model(ctx)
    model_path = ctx.lab.model_path(model)
    bodies = [(json.dumps({"inputs": [r]}).encode(), JSON) for r in feature_rows(200)]
    service = platform.create_service("bench-tabular", model)
    bare = BareTabular(model_path, ctx.lab.logs / "bare_tabular.log")
    try:
        bare.wait_ready()
        urls = {
            "service": f"{service['endpoint']}/predict",
            "platform": platform.predict_url(service["id"]),
            "bare": f"{bare.url}/predict",
        }
        answers = {}
        for name, url in urls.items():
            r = httpx.post(url, content=bodies[0][0], headers=JSON, timeout=60)
            r.raise_for_status()
            answers[name] = r.json()["predictions"][0]["prediction"]
        if len(set(answers.values())) != 1:
            raise AssertionError(f"targets disagree on the same row: {answers}")
        data, rounds = measure(ctx, urls, {name: bodies for name in urls}, budget_s=100)
    finally:
        bare.stop()
        platform.delete_service(service["id"])
    requests = QUICK_REQUESTS if quick else FULL_REQUESTS
    rows = []
    for c in requests:
        b_rps = [r["rps"] for r in data["bare"][c]]
        for name, target in (("service", SERVICE_RPS), ("platform", ROUTE_RPS)):
            rps = [r["rps"] for r in data[name][c]]
            p99 = median([r["p99_ms"] for r in data[name][c]])
            errors = sum(r["errors"] for r in data[name][c] + data["bare"][c])
            rows.append(
                Row(
                    "tabular",
                    f"tabular predict c={c}, {LABELS[name]}: throughput",
                    "req/s",
                    median(rps),
                    baseline=median(b_rps),
                    baseline_label="bare",
                    ratio=paired_ratio(rps, b_rps),
                    target=target,
                    note=f"p99 {p99:.2f} ms" + (f"; {errors} failed requests" if errors else ""),
                )
            )
    method = (
        f"model: csv_clean + tabular_mlp (5 epochs) through the platform; load generator "
        f"{CLIENT}, closed loop, fixed request counts {requests} (or {max_seconds(quick):g} s) "
        f"after a warm-up of max(2C, 20); targets rotated every round, {rounds} rounds; one "
        "row of 8 features a request (JSON convenience); bare app = python -m bench.tabular "
        "(FastAPI+uvicorn, 1 worker, torch threads 1)."
    )
    details = {"model": model, "rounds": rounds, "answers": answers, "runs": data}
    return AreaResult(rows, details, method)


class Body(BaseModel):
    inputs: list[list[float]]


def create_app(model_path: str) -> Any:
    """The bare app: the same network, ``{"inputs": [[...]]}`` in, logits and labels out."""
    import numpy as np
    import torch
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse

    from lakekit.modelrec import load_model, read_model_info

    module = load_model(model_path).module
    labels = read_model_info(model_path).get("labels") or []
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: Body) -> JSONResponse:
        x = np.asarray(body.inputs, np.float32)
        if x.ndim != 2 or x.shape[1] != 8:
            raise HTTPException(400, "inputs must be rows of 8 features")
        with torch.inference_mode():
            logits = module(torch.from_numpy(x))
        probs = torch.softmax(logits, dim=1).numpy()
        best = probs.argmax(axis=1)
        predictions = [
            {"prediction": labels[b] if labels else int(b), "probabilities": p.tolist()}
            for p, b in zip(probs, best, strict=True)
        ]
        return JSONResponse({"outputs": {"logits": logits.tolist()}, "predictions": predictions})

    return app


def main() -> None:
    import torch
    import uvicorn

    parser = argparse.ArgumentParser(description="Bare FastAPI app serving a tabular model.")
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    app = create_app(args.model_path)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
