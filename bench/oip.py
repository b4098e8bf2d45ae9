"""OIP: Open Inference Protocol v2 infer against ``/predict`` on the same model and against the
bare FastAPI app.

One MNIST model, one service. Targets under load, each in turn (order rotated every round):
the model server's ``/v2/models/{name}/infer`` with the binary tensor data extension (input
and output as raw float32 bytes after a JSON header, ``Inference-Header-Content-Length``), the
same route with JSON tensors, its ``/predict`` (``{"image": b64}``, the platform's own codec),
the platform route's OIP binary infer and ``/predict``, and ``bench.bare_server``. One image a
request; OIP inputs are the normalised [1, 1, 28, 28] float32 tensor the codec computes.
The client is ``bench.loadgen``'s closed loop, with each body's own headers.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import numpy as np

from bench.context import AreaResult, Context
from bench.loadgen import CLIENT, LoadResult, _drive
from bench.report import Row, Target
from bench.serving import BareServer, b64, ensure_model, max_seconds, test_digits
from bench.stats import median, paired_ratio, percentile, rotate

BINARY_VS_PREDICT = Target("ratio", ">=", 0.9, ">= 0.9x /predict")
CONCURRENCY = (1, 8, 32)
FULL_REQUESTS = {1: 300, 8: 800, 32: 1600}
QUICK_REQUESTS = {1: 40, 8: 80, 32: 160}
SERVICE = "bench-oip"
Body = tuple[bytes, dict[str, str]]
LABELS = {
    "binary": "OIP binary",
    "json": "OIP JSON",
    "predict": "/predict",
    "route_binary": "platform route, OIP binary",
    "route_predict": "platform route, /predict",
    "bare": "bare FastAPI /predict",
}


def run_load(url: str, bodies: list[Body], concurrency: int, total: int, limit: float) -> Any:
    """``bench.loadgen.run_load`` with a header set per body (the binary extension's)."""
    import aiohttp

    async def load() -> tuple[list[float], int, float]:
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def send(i: int) -> tuple[float, bool]:
                body, headers = bodies[i % len(bodies)]
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    return time.perf_counter() - started, r.status == 200

            return await _drive(send, concurrency, total, max(2 * concurrency, 20), limit)

    latencies, errors, seconds = asyncio.run(load())
    return LoadResult(
        requests=len(latencies) + errors,
        concurrency=concurrency,
        seconds=seconds,
        rps=len(latencies) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors,
    ).json()


Runs = dict[str, dict[int, list[dict[str, Any]]]]  # target -> concurrency -> runs


def measure(
    ctx: Context, urls: dict[str, str], bodies: dict[str, list[Body]], budget_s: float
) -> tuple[Runs, int]:
    """Each round, each concurrency, every target in turn (rotated); the runs, and how many
    rounds ran (fewer on a busy machine, see ``Settings.rounds``)."""
    quick = ctx.settings.quick
    requests = QUICK_REQUESTS if quick else FULL_REQUESTS
    data: Runs = {name: {c: [] for c in requests} for name in urls}

    def round_(i: int) -> None:
        for c, total in requests.items():
            for name in rotate(list(urls), i + c):
                limit = max_seconds(quick)
                data[name][c].append(run_load(urls[name], bodies[name], c, total, limit))

    return data, ctx.settings.rounds(round_, full=3, least=2, budget_s=budget_s)


def oip_bodies(x: np.ndarray) -> tuple[list[Body], list[Body]]:
    """Binary and JSON infer requests for each image of ``x`` (n, 1, 28, 28) float32."""
    binary, plain = [], []
    for image in x:
        tensor = {"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32"}
        header = json.dumps(
            {
                "inputs": [tensor | {"parameters": {"binary_data_size": image.nbytes}}],
                "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
            }
        ).encode()
        binary.append(
            (
                header + image.tobytes(),
                {
                    "content-type": "application/octet-stream",
                    "inference-header-content-length": str(len(header)),
                },
            )
        )
        body = json.dumps({"inputs": [tensor | {"data": image.ravel().tolist()}]}).encode()
        plain.append((body, {"content-type": "application/json"}))
    return binary, plain


def check_same_answers(urls: dict[str, str], bodies: dict[str, Body]) -> dict[str, int]:
    """Every target answers the same digit for the first image (same model, same input)."""
    answers = {}
    for name, url in urls.items():
        body, headers = bodies[name]
        r = httpx.post(url, content=body, headers=headers, timeout=60)
        r.raise_for_status()
        if "inference-header-content-length" in r.headers:
            size = int(r.headers["inference-header-content-length"])
            answers[name] = int(np.frombuffer(r.content[size:], np.float32).argmax())
        elif "outputs" in r.json():
            answers[name] = int(np.argmax(r.json()["outputs"][0]["data"]))
        else:
            answers[name] = r.json()["prediction"]
    if len(set(answers.values())) != 1:
        raise AssertionError(f"targets disagree on the same image: {answers}")
    return answers


def rows_of(data: Runs) -> list[Row]:
    pairs = [
        ("binary", "predict", BINARY_VS_PREDICT),
        ("binary", "bare", None),
        ("json", "predict", None),
        ("route_binary", "route_predict", None),
    ]
    rows = []
    for c in CONCURRENCY:
        for name, base, target in pairs:
            rps, base_rps = [r["rps"] for r in data[name][c]], [r["rps"] for r in data[base][c]]
            p50 = median([r["p50_ms"] for r in data[name][c]])
            p99 = median([r["p99_ms"] for r in data[name][c]])
            errors = sum(r["errors"] for r in data[name][c] + data[base][c])
            note = f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
            rows.append(
                Row(
                    "oip",
                    f"infer c={c}, {LABELS[name]} vs {LABELS[base]}: throughput",
                    "req/s",
                    median(rps),
                    baseline=median(base_rps),
                    baseline_label=LABELS[base],
                    ratio=paired_ratio(rps, base_rps),
                    target=target,
                    note=note + (f"; {errors} failed requests" if errors else ""),
                )
            )
    return rows


def run(ctx: Context) -> AreaResult:
    from bench.serving import normalised_batch

    platform = ctx.require_platform()
    quick = ctx.settings.quick
    model = ensure_model(ctx)
    model_path = ctx.lab.model_path(model)
    digits = test_digits(100)
    _, x = normalised_batch(model_path, digits)
    binary, plain = oip_bodies(x.numpy())
    predict = [(json.dumps({"image": b64(p)}).encode(), {"content-type": "application/json"})
               for p in digits]  # fmt: skip
    service = platform.create_service(SERVICE, model)
    bare = BareServer(model_path, ctx.lab.logs / "bare_server_oip.log")
    try:
        bare.wait_ready()
        infer = f"/v2/models/{SERVICE}/infer"
        route = f"{platform.url}/api/v1/inference-services/{service['id']}"
        urls = {
            "binary": f"{service['endpoint']}{infer}",
            "json": f"{service['endpoint']}{infer}",
            "predict": f"{service['endpoint']}/predict",
            "route_binary": f"{route}{infer}",
            "route_predict": f"{route}/predict",
            "bare": f"{bare.url}/predict",
        }
        bodies = {
            "binary": binary,
            "json": plain,
            "predict": predict,
            "route_binary": binary,
            "route_predict": predict,
            "bare": predict,
        }
        answers = check_same_answers(urls, {k: v[0] for k, v in bodies.items()})
        data, rounds = measure(ctx, urls, bodies, budget_s=150)
    finally:
        bare.stop()
        platform.delete_service(service["id"])
    requests = QUICK_REQUESTS if quick else FULL_REQUESTS
    details = {"model": model, "client": CLIENT, "rounds": rounds, "answers": answers,
               "runs": data}  # fmt: skip
    method = (
        f"load generator {CLIENT} (bench.loadgen's closed loop, per-body headers), C workers on "
        f"keep-alive connections, fixed request counts {requests} (or "
        f"{max_seconds(quick):g} s) after a warm-up of max(2C, 20); targets rotated every "
        f"round, {rounds} rounds. One image a request: OIP binary = JSON header + 3136 bytes of "
        "float32 in, logits as 40 bytes out; OIP JSON = 784 floats in JSON; /predict = base64 "
        "of 784 raw bytes. Bare app = bench.bare_server (1 worker, torch threads 1)."
    )
    return AreaResult(rows_of(data), details, method)
