"""Serving: single-image predict throughput and latency through the service's own endpoint and
the platform route, against a bare FastAPI app serving the same model; batch predict against
the model's forward pass alone.

Targets under load, each in turn (order rotated every round): (a) the model server the
platform started (``{endpoint}/predict``), (b) the platform route
``POST /api/v1/inference-services/{id}/predict``, (c) ``bench.bare_server`` (uvicorn, one
worker, torch threads 1, the same ``load_model`` module). The client is ``bench.loadgen``: a
closed loop of C workers sending a fixed number of requests after a warm-up; bodies are real
MNIST test digits as base64 of 784 raw bytes. Batch: ``{"images": [256 digits]}`` to (a) one
at a time, against ``module(x)`` on the same normalised batch with 1 torch thread in this
process (the limit a server with 1 torch thread could reach).
"""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.context import AreaResult, Context
from bench.lab import MNIST_DIR, REPO
from bench.loadgen import CLIENT, run_load
from bench.report import Row, Target
from bench.stats import median, paired_ratio, rotate

SERVICE_RPS = Target("ratio", ">=", 0.9, ">= 0.9x bare")
SERVICE_P99 = Target("ratio", "<=", 1.2, "<= 1.2x bare")
ROUTE_RPS = Target("ratio", ">=", 0.7, ">= 0.7x bare")
BATCH = Target("ratio", ">=", 0.8, ">= 0.8x forward")
CONCURRENCY = (1, 8, 32)
FULL_REQUESTS = {1: 300, 8: 800, 32: 1600}
QUICK_REQUESTS = {1: 40, 8: 80, 32: 160}
BATCH_SIZE = 256
MAX_SECONDS = {False: 5.0, True: 2.0}  # per load run: a slow target gets fewer requests
LABELS = {"service": "service endpoint", "platform": "platform route", "bare": "bare FastAPI"}


def max_seconds(quick: bool) -> float:
    return MAX_SECONDS[quick]


def test_digits(count: int) -> np.ndarray:
    with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz", "rb") as fh:
        raw = fh.read(16 + 784 * count)[16:]
    return np.frombuffer(raw, np.uint8).reshape(count, 784)


def b64(pixels: np.ndarray) -> str:
    return base64.b64encode(pixels.tobytes()).decode()


class BareServer:
    """``python -m bench.bare_server`` on a free port, until ``stop``."""

    def __init__(self, model_path: Path, log_path: Path) -> None:
        from serverkit.net import free_port

        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "bench.bare_server", "--model-path", str(model_path)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--port", str(self.port), "--threads", "1"],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # as the platform starts model servers (autogroups)
            )

    def wait_ready(self, timeout: float = 120.0) -> BareServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bare server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("bare server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def check_same_answers(urls: dict[str, str], image: str) -> dict[str, int]:
    """Every target must answer the same digit for the same image (same model)."""
    answers = {}
    for name, url in urls.items():
        r = httpx.post(url, json={"image": image}, timeout=60)
        r.raise_for_status()
        answers[name] = r.json()["prediction"]
    if len(set(answers.values())) != 1:
        raise AssertionError(f"targets disagree on the same image: {answers}")
    return answers


Single = dict[str, dict[int, list[dict[str, Any]]]]  # target -> concurrency -> runs


def measure_single(
    ctx: Context, urls: dict[str, str], bodies: list[bytes], full: int, budget_s: float
) -> tuple[Single, int]:
    """For each round and concurrency, every target in turn (rotated); returns the runs and
    how many rounds ran."""
    quick = ctx.settings.quick
    requests = QUICK_REQUESTS if quick else FULL_REQUESTS
    out: Single = {name: {c: [] for c in requests} for name in urls}

    def round_(i: int) -> None:
        for c, total in requests.items():
            for name in rotate(list(urls), i + c):
                result = run_load(urls[name], bodies, c, total, max_seconds=max_seconds(quick))
                out[name][c].append(result.json())

    rounds = ctx.settings.rounds(round_, full=full, least=min(full, 2), budget_s=budget_s)
    return out, rounds


def single_rows(area: str, data: Single, through: dict[str, Target | None]) -> list[Row]:
    """Rows for each concurrency: rps and p99 of each platform path against the bare app."""
    rows = []
    bare = data["bare"]
    for c in next(iter(data.values())):
        b_rps = [r["rps"] for r in bare[c]]
        b_p99 = [r["p99_ms"] for r in bare[c]]
        for name, rps_target in through.items():
            runs = data[name][c]
            rps, p99 = [r["rps"] for r in runs], [r["p99_ms"] for r in runs]
            p50 = median([r["p50_ms"] for r in runs])
            errors = sum(r["errors"] for r in runs) + sum(r["errors"] for r in bare[c])
            label = LABELS.get(name, name)
            rows.append(
                Row(
                    area,
                    f"predict c={c}, {label}: throughput",
                    "req/s",
                    median(rps),
                    baseline=median(b_rps),
                    baseline_label="bare",
                    ratio=paired_ratio(rps, b_rps),
                    target=rps_target,
                    note=f"{errors} failed requests" if errors else "",
                )
            )
            rows.append(
                Row(
                    area,
                    f"predict c={c}, {label}: p99 latency",
                    "ms",
                    median(p99),
                    baseline=median(b_p99),
                    baseline_label="bare",
                    ratio=paired_ratio(p99, b_p99),
                    target=SERVICE_P99 if name == "service" else None,
                    note=f"p50 {p50:.2f} ms (bare {median([r['p50_ms'] for r in bare[c]]):.2f})",
                )
            )
    return rows


def forward_images_per_s(module: Any, x: Any, batches: int) -> float:
    """``module(x)`` alone, 1 torch thread, on one normalised batch: images per second."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            module(x)  # warm-up
            started = time.perf_counter()
            for _ in range(batches):
                module(x)
            return batches * len(x) / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)


def normalised_batch(model_path: Path, pixels: np.ndarray) -> tuple[Any, Any]:
    """The model rebuilt from its record, and ``pixels`` as its input spec says to feed them."""
    import torch

    from lakekit.modelrec import load_model

    loaded = load_model(model_path)
    spec = loaded.input_spec
    x = torch.from_numpy(pixels.astype(np.float32).reshape(-1, 1, 28, 28))
    x = x.mul_(float(spec["scale"])).sub_(float(spec["mean"])).div_(float(spec["std"]))
    return loaded.module, x


def batch_images_per_s(url: str, body: bytes, size: int, batches: int) -> float:
    with httpx.Client(timeout=120) as client:
        headers = {"content-type": "application/json"}
        client.post(url, content=body, headers=headers).raise_for_status()  # warm-up
        started = time.perf_counter()
        for _ in range(batches):
            client.post(url, content=body, headers=headers).raise_for_status()
        return batches * size / (time.perf_counter() - started)


def measure_batch(
    urls: dict[str, str], model_path: Path, pixels: np.ndarray, batches: int, rounds: int
) -> dict[str, list[float]]:
    body = json.dumps({"images": [b64(p) for p in pixels]}).encode()
    module, x = normalised_batch(model_path, pixels)  # loaded once, not every round
    out: dict[str, list[float]] = {"forward": [], **{name: [] for name in urls}}
    for i in range(rounds):
        for name in rotate(["forward", *urls], i):
            if name == "forward":
                out[name].append(forward_images_per_s(module, x, batches))
            else:
                out[name].append(batch_images_per_s(urls[name], body, len(pixels), batches))
    return out


def ensure_model(ctx: Context) -> str:
    """The model trained in this run, or a small one trained now (``--only serving``)."""
    if "model" not in ctx.artifacts:
        from bench.training import ensure_dataset, train_body

        dataset = ensure_dataset(ctx)
        params = {"epochs": 1, "limit": 2000, "threads": 1}
        ctx.require_platform().run_task(
            "training", train_body(dataset, "bench_cnn_small", params), timeout=900
        )
        ctx.artifacts["model"] = "bench_cnn_small"
    return ctx.artifacts["model"]


def run(ctx: Context) -> AreaResult:
    platform = ctx.require_platform()
    quick = ctx.settings.quick
    model = ensure_model(ctx)
    model_path = ctx.lab.model_path(model)
    digits = test_digits(max(BATCH_SIZE, 200))
    bodies = [json.dumps({"image": b64(p)}).encode() for p in digits[:200]]
    service = platform.create_service("bench-svc", model)
    bare = BareServer(model_path, ctx.lab.logs / "bare_server.log")
    try:
        bare.wait_ready()
        urls = {
            "service": f"{service['endpoint']}/predict",
            "platform": platform.predict_url(service["id"]),
            "bare": f"{bare.url}/predict",
        }
        answers = check_same_answers(urls, b64(digits[0]))
        stats_url = f"{service['endpoint']}/v1/stats"
        before = httpx.get(stats_url, timeout=10).json()
        single, rounds = measure_single(ctx, urls, bodies, full=3, budget_s=100)
        after = httpx.get(stats_url, timeout=10).json()
        batch_urls = {"service": urls["service"], "platform": urls["platform"]}
        batches = 3 if quick else 12
        batch = measure_batch(batch_urls, model_path, digits[:BATCH_SIZE], batches, rounds)
    finally:
        bare.stop()
        platform.delete_service(service["id"])
    rows = single_rows("serving", single, {"service": SERVICE_RPS, "platform": ROUTE_RPS})
    passes = after["forward_passes"] - before["forward_passes"]
    images = after["images"] - before["images"]
    rows.append(
        Row(
            "serving",
            "model server: images per forward pass (single-image runs)",
            "img/pass",
            images / passes if passes else None,
            note=f"{images:,} images in {passes:,} passes over every concurrency and round, "
            "through both paths (dynamic batching; 1.0 would mean none)",
        )
    )
    for name, target in (("service", BATCH), ("platform", None)):
        rows.append(
            Row(
                "serving",
                f"batch predict ({BATCH_SIZE} digits), {LABELS[name]}",
                "img/s",
                median(batch[name]),
                baseline=median(batch["forward"]),
                baseline_label="forward pass alone",
                ratio=paired_ratio(batch[name], batch["forward"]),
                target=target,
            )
        )
    requests = QUICK_REQUESTS if quick else FULL_REQUESTS
    details = {
        "model": model,
        "client": CLIENT,
        "rounds": rounds,
        "requests": requests,
        "answers": answers,
        "single": single,
        "batch_images_per_s": batch,
    }
    method = (
        f"load generator {CLIENT}, closed loop, C workers on keep-alive connections, fixed "
        f"request counts {requests} (or {max_seconds(quick):g} s, whichever ends first) after a "
        "warm-up of max(2C, 20); targets rotated every round, "
        f"{rounds} rounds; bare app = bench.bare_server (FastAPI+uvicorn, "
        "1 worker, torch threads 1, the model rebuilt by lakekit.modelrec.load_model, base64 "
        f"raw bytes only). Batch: {BATCH_SIZE} digits per request, one request at a time, vs "
        "module(x) on the same normalised batch, 1 torch thread, in the bench process."
    )
    return AreaResult(rows, details, method)
