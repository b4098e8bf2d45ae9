"""Level 3: the lake on an S3 endpoint (SeaweedFS ``weed mini`` on loopback), and Ray Serve
replicas with the model read from it.

Lake rows, each against bare lance on the same endpoint (target <= 1.2x) and, for what the
object store itself costs, the same against local disk (INFO):

- ingestion: ``mnist_clean.py`` through the platform (lake root ``s3://``) against
  ``bench.bare_ingest`` writing to the endpoint; local disk: ``bench.bare_ingest`` to disk;
- train-split read: ``lakekit.training.load_split`` (what the training script runs) against
  ``bench.bare_train.load_split`` (plain ``to_table`` + numpy), each opening the dataset;
- task-record commit: ``Lake.save_tasks`` (the Data Platform's record of a new task) against
  one ``merge_insert`` of the same row shape on the endpoint.

Serving rows: the AI Platform's ``RayServeBackend`` in this process (a private local Ray),
the model trained through the platform onto the endpoint, against the bare FastAPI app reading
the same model, at the replica's own port (Serve's direct ingress, what the AI Platform gives
as a service's endpoint); then 2 replicas against 1 at c = 32 through Serve's proxy, which
spreads requests over them. The cluster is this machine's one node: the note says so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import serving
from bench.context import AreaResult, Context
from bench.ingestion import ingest
from bench.measure import run_bare
from bench.report import Row, Target, skipped
from bench.s3_endpoint import Endpoint
from bench.s3_endpoint import unavailable as no_endpoint
from bench.stats import median, pair_ratios_text, paired_ratio, rotate

AREA = "level3"
VS_BARE = Target("ratio", "<=", 1.2, "<= 1.2x bare")
SERVE_VS_BARE = Target("ratio", ">=", 0.5, ">= 0.5x bare")
MORE_THAN_ONE = Target("ratio", ">=", 1.0, "> 1 replica")
COMMITS = 20


def unavailable() -> str | None:
    """Why Level 3 cannot run here, or None if it can."""
    return no_endpoint()


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """``env`` in this process (and the processes it starts) for the block: bare lance and
    the bare app open ``s3://`` URIs with the endpoint's settings, as Lance reads them."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _lake_env(lake: str, local: Path) -> dict[str, str]:
    """The Data Platform's lake on the endpoint. Its settings reach it as the ``AWS_*``
    variables (``_environ``), its fallback: the launcher validates ``*_STORAGE_OPTIONS`` as
    keyword arguments, where a JSON string is not a dict. The AI Platform, not measured
    through the launcher here, keeps its records on local disk (its state store does not
    fall back to ``AWS_*``)."""
    return {
        "DP_LAKE_ROOT": lake,
        "DP_WORK_DIR": str(local / "dp-work"),  # task scratch and logs (else ./.dp-work)
        "AIP_STATE_DIR": str(local / "_ai_platform"),
        "AIP_LOG_DIR": str(local / "logs"),
    }


def _ingestion(ctx: Context, s3: Endpoint) -> tuple[dict[str, list[float]], int]:
    platform = ctx.require_platform()
    source = str(ctx.lab.data_root / ctx.lab.mnist_input)
    local = ctx.lab.root / "level3-local"
    ingest(platform, ctx.lab.mnist_input, "mnist", timeout=600)  # warm-up; kept as "mnist"
    run_bare("bench.bare_ingest", [source, s3.uri("bare/warmup.lance")], 600, sample_rss=False)
    out: dict[str, list[float]] = {"platform": [], "bare": [], "local": []}

    def round_(i: int) -> None:
        for which in rotate(list(out), i):
            if which == "platform":
                out[which].append(ingest(platform, ctx.lab.mnist_input, f"mnist_r{i}", 600).wall_s)
                continue
            target = s3.uri(f"bare/mnist_{i}.lance") if which == "bare" else local / f"{i}.lance"
            run = run_bare("bench.bare_ingest", [source, str(target)], 600, sample_rss=False)
            out[which].append(run.wall_s)

    rounds = ctx.settings.rounds(round_, full=3, least=2, budget_s=90)
    return {**out, "s3": out["bare"]}, rounds


def _timed(calls: dict[str, Callable[[], object]], count: int) -> dict[str, list[float]]:
    """Seconds per call of each, ``count`` times each, rotated; one untimed call first."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()
    for i in range(count):
        for name in rotate(list(calls), i):
            started = time.perf_counter()
            calls[name]()
            out[name].append(time.perf_counter() - started)
    return out


def _reads(ctx: Context, s3: Endpoint, lake: str) -> dict[str, list[float]]:
    import lance

    from bench.bare_train import load_split as bare_split
    from lakekit.training import load_split

    uri = f"{lake}/datasets/mnist.lance"  # the platform's (mnist_clean.py) dataset
    # What the object store costs the same reader: the bare script's dataset on either side.
    on_s3 = s3.uri("bare/mnist_0.lance")
    local = str(ctx.lab.root / "level3-local" / "0.lance")
    opts = s3.storage_options
    return _timed(
        {
            "platform": lambda: load_split(lance.dataset(uri, storage_options=opts), "train"),
            "bare": lambda: bare_split(uri, "train"),
            "s3": lambda: load_split(lance.dataset(on_s3, storage_options=opts), "train"),
            "local": lambda: load_split(lance.dataset(local), "train"),
        },
        count=2 if ctx.settings.quick else 5,
    )


def _commits(ctx: Context, s3: Endpoint) -> dict[str, list[float]]:
    import lance
    import pyarrow as pa

    from data_platform.store import Lake
    from lakeapi.schemas import Task

    ours = Lake(s3.uri("commits/lake"), s3.storage_options)
    on_disk = Lake(ctx.lab.root / "level3-commits")

    def task() -> Task:
        return Task(
            id=f"task-{uuid.uuid4().hex[:12]}",
            script="bench/noop.py",
            input="",
            output="datasets/noop",
            input_path="",
            output_path=f"{ours.root}/datasets/noop.lance",
        )

    def row() -> pa.Table:
        record = task().model_dump(mode="json")
        return pa.table({"id": [record["id"]], "data": [json.dumps(record)]})

    bare = lance.write_dataset(
        row(), s3.uri("commits/bare.lance"), storage_options=s3.storage_options
    )

    def bare_commit() -> None:
        bare.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
            row()
        )

    return _timed(
        {
            "platform": lambda: ours.save_tasks(task()),
            "bare": bare_commit,
            "local": lambda: on_disk.save_tasks(task()),
        },
        count=COMMITS // 2 if ctx.settings.quick else COMMITS,
    )


def _lake_rows(
    ing: dict[str, list[float]], reads: dict[str, list[float]], commits: dict[str, list[float]]
) -> list[Row]:
    rows = []
    for name, unit, data, scale in (
        ("MNIST 70k ingestion", "s", ing, 1.0),
        ("train split read (60k images)", "s", reads, 1.0),
        ("task-record commit (one new task)", "ms", commits, 1000.0),
    ):
        ours = [v * scale for v in data["platform"]]
        bare = [v * scale for v in data["bare"]]
        local = [v * scale for v in data["local"]]
        rows.append(
            Row(
                AREA,
                f"S3: {name}",
                unit,
                median(ours),
                baseline=median(bare),
                baseline_label="bare lance, same endpoint",
                ratio=paired_ratio(ours, bare),
                target=VS_BARE,
                note=pair_ratios_text(ours, bare),
            )
        )
        # The same code on both sides: ingestion and reads on the bare script's datasets
        # (the platform's own is Level 1's row), commits through Lake.
        on_s3 = [v * scale for v in data.get("s3", data["platform"])]
        rows.append(
            Row(
                AREA,
                f"S3 vs local disk: {name}",
                unit,
                median(on_s3),
                baseline=median(local),
                baseline_label="the same on local disk",
                ratio=paired_ratio(on_s3, local),
            )
        )
    return rows


def wait_health(url: str, timeout: float = 300.0) -> None:
    """Wait until ``url/health`` answers 200."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer /health in {timeout:g} s")


def _serve(ctx: Context, s3: Endpoint, lake: str, model: str) -> dict[str, Any]:
    """The Ray Serve endpoint (1 replica, then 2) and the bare app, on the S3 model."""
    from serverkit.ray_runtime import use_loopback

    use_loopback()  # as the AI Platform does, before ray is imported
    from ai_platform.serving.ray_backend import RayServeBackend, Replicas
    from ai_platform.settings import AIPlatformSettings
    from lakeapi.schemas import Service

    model_uri = f"{lake}/models/{model}.lance"
    settings = AIPlatformSettings(
        _env_file=None,  # not the cwd .env file
        runtime="ray",
        state_dir=f"{lake}/_ai_platform",
        state_storage_options=s3.storage_options,
    )
    backend = RayServeBackend(settings)
    bare = serving.BareServer(model_uri, ctx.lab.logs / "bare_l3.log")  # type: ignore[arg-type]
    urls: dict[str, str] = {}
    services: dict[str, Service] = {}
    try:
        for count in (1, 2):
            backend.replicas = Replicas(**{**backend.replicas.__dict__, "count": count})
            sid = f"l3-{count}r"
            _, endpoint = backend.place(sid, None, set())
            service = Service(
                id=sid,
                name=model,
                model=model,
                model_path=model_uri,
                port=backend.port,
                endpoint=endpoint,
            )
            backend.start(service, ctx.lab.logs / f"{sid}.log")
            urls[f"{count}r"] = endpoint
            services[f"{count}r"] = service
        bare.wait_ready()
        for url in urls.values():
            wait_health(url)
        # The endpoint a user calls is the replica's own port (Serve's direct ingress, as the
        # AI Platform serves); Serve's proxy, which spreads over replicas, for 2 against 1.
        direct = _replica_url(backend, services["1r"]) or urls["1r"]
        digits = serving.test_digits(200)
        serving.check_same_answers(
            {"bare": f"{bare.url}/predict", **{k: f"{u}/predict" for k, u in urls.items()}},
            serving.b64(digits[0]),
        )
        bodies = [json.dumps({"image": serving.b64(p)}).encode() for p in digits]
        single, rounds = serving.measure_single(
            ctx,
            {
                "service": f"{direct}/predict",
                "proxy1": f"{urls['1r']}/predict",
                "replicas2": f"{urls['2r']}/predict",
                "bare": f"{bare.url}/predict",
            },
            bodies,
            full=2,
            budget_s=60,
        )
    finally:
        bare.stop()
        backend.close()
    return {"single": single, "rounds": rounds, "direct_ingress": direct != urls["1r"]}


def _replica_url(backend: Any, service: Any, timeout: float = 60.0) -> str | None:
    """The replica's own URL once the backend knows it (None: no direct ingress)."""
    proxy = f"{backend.base_url}/{service.id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backend.refresh()
        found = [u for u in backend.urls(service) if u != proxy]
        if found:
            wait_health(found[0])
            return str(found[0])
        time.sleep(0.5)
    return None


def _serve_rows(data: dict[str, Any]) -> list[Row]:
    single = data["single"]
    rows = serving.single_rows(
        AREA, {k: single[k] for k in ("service", "bare")}, {"service": SERVE_VS_BARE}
    )
    for row in rows:
        row.name = row.name.replace(serving.LABELS["service"], "Ray Serve endpoint (S3 model)")
        if "latency" in row.name:
            row.target, row.status = None, "INFO"
    rows.append(
        replicas_row(
            AREA,
            single["replicas2"],
            single.get("proxy1", single["service"]),
            "both replicas on this machine's one Ray node (2 cores), through Serve's proxy: "
            "a multi-node cluster did not fit the bench",
        )
    )
    return rows


def replicas_row(area: str, two: Any, one: Any, note: str) -> Row:
    """2 replicas against 1 at the highest concurrency both ran (runs by concurrency)."""
    top = max(one)
    two_rps, one_rps = [r["rps"] for r in two[top]], [r["rps"] for r in one[top]]
    return Row(
        area,
        f"predict c={top}, Ray Serve 2 replicas vs 1: throughput",
        "req/s",
        median(two_rps),
        baseline=median(one_rps),
        baseline_label="1 replica",
        ratio=paired_ratio(two_rps, one_rps),
        target=MORE_THAN_ONE,
        note=note,
    )


def run(ctx: Context) -> AreaResult:
    details: dict[str, Any] = {}
    rows: list[Row] = []
    with Endpoint(ctx.lab.root / "s3") as s3, _environ(s3.env):
        lake = s3.uri("lake")
        with ctx.lab.platform("local", _lake_env(lake, ctx.lab.root / "level3-aip")) as platform:
            ctx.platform = platform
            try:
                ing, pairs = _ingestion(ctx, s3)
                details["ingestion"] = {**ing, "rounds": pairs}
                model = None
                if importlib.util.find_spec("ray") is not None:
                    from bench.training import train_body

                    params = {"epochs": 1, "limit": 2000, "threads": 1}
                    platform.run_task(
                        "training", train_body("mnist", "l3_cnn", params), timeout=900
                    )
                    model = "l3_cnn"
            finally:
                ctx.platform = None
        details["reads"] = _reads(ctx, s3, lake)
        details["commits"] = _commits(ctx, s3)
        rows += _lake_rows(ing, details["reads"], details["commits"])
        if model is None:
            rows.append(skipped(AREA, "Ray Serve endpoint (S3 model)", "ray is not installed"))
        else:
            details["serve"] = _serve(ctx, s3, lake, model)
            rows += _serve_rows(details["serve"])
    method = (
        "a SeaweedFS `weed mini` S3 endpoint on loopback (plain http); the platform (Level 1 "
        "runtime) with its lake root on it. Ingestion: mnist_clean.py POST -> completed "
        "against `python -m bench.bare_ingest` writing to the endpoint (and to local disk), "
        "alternated after a warm-up; train split: lakekit.training.load_split against "
        "bench.bare_train.load_split, each opening the dataset; task record: Lake.save_tasks "
        f"of a new task against one lance merge_insert of the same row ({COMMITS} each, "
        "rotated; half with --quick). Serving: RayServeBackend in the bench process (a "
        "private local Ray), the model trained through the platform onto the endpoint, "
        "against the bare FastAPI app reading it from there; the endpoint is the replica's "
        "own port (Serve's direct ingress, as the AI Platform serves); 2 replicas against 1 "
        "both through Serve's proxy."
    )
    return AreaResult(rows, details, method)
