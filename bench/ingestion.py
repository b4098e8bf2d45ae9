"""Ingestion: MNIST IDX -> Lance through the platform, against a bare numpy + lance script;
then 1x against 10x MNIST through the platform, for linear time and bounded memory.

Platform: ``pipelines/mnist_clean.py`` submitted through ``POST /api/v1/ingestion-tasks``,
timed from the POST to the first poll (every 50 ms) that reads completed; peak RSS is the
high-water mark of the task's processes (found by ``LAKEKIT_TASK_ID``). Bare:
``python -m bench.bare_ingest`` (whole files read with gzip + numpy, one ``write_dataset``
with the same schema and encoding), timed from spawn to exit, peak RSS sampled the same way.
Every run writes a new dataset. Runs alternate; medians, and the median of per-pair ratios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lance

from bench.context import AreaResult, Context
from bench.lab import RunningPlatform, TaskRun
from bench.measure import run_bare
from bench.mnist10x import write_scaled
from bench.report import Row, Target, skipped
from bench.stats import median, pair_ratios_text, paired_ratio, rotate

VS_BARE = Target("ratio", "<=", 1.3, "<= 1.3x bare")
LINEAR_TIME = Target("ratio", "<=", 10.5, "<= 10.5x of 1x")
BOUNDED_RSS = Target("ratio", "<=", 1.5, "<= 1.5x of 1x")
SCRIPT = "pipelines/mnist_clean.py"
PARAMS = {"normalize": True}
MB = 1e6


def ingest(platform: RunningPlatform, source: str, output: str, timeout: float) -> TaskRun:
    body = {"name": f"bench-{output}", "input": source, "script": SCRIPT, "params": PARAMS}
    return platform.run_task(
        "ingestion", {**body, "output": output}, timeout=timeout, sample_rss=True
    )


def data_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in (path / "data").glob("*") if f.is_file())


def versus_bare(ctx: Context) -> dict[str, Any]:
    platform = ctx.require_platform()
    lab = ctx.lab
    source_dir = lab.data_root / lab.mnist_input
    scratch = lab.root / "bare"
    # Warm-up, not counted: page cache, imports. The platform's output stays as "mnist", the
    # dataset later areas use.
    first = ingest(platform, lab.mnist_input, "mnist", timeout=600)
    ctx.artifacts["dataset"] = "mnist"
    run_bare("bench.bare_ingest", [str(source_dir), str(scratch / "warmup.lance")], 600)
    samples: dict[str, list[float]] = {"wall": [], "rss": [], "bare_wall": [], "bare_rss": []}
    script_seconds: list[float] = []

    def pair(i: int) -> None:
        for which in rotate(["platform", "bare"], i):
            if which == "platform":
                run = ingest(platform, lab.mnist_input, f"mnist_r{i}", timeout=600)
                samples["wall"].append(run.wall_s)
                samples["rss"].append(run.peak_rss_bytes / MB)
                script_seconds.append(run.result.get("seconds", 0.0))
            else:
                out = scratch / f"bare_{i}.lance"
                bare = run_bare("bench.bare_ingest", [str(source_dir), str(out)], 600)
                samples["bare_wall"].append(bare.wall_s)
                samples["bare_rss"].append(bare.peak_rss_bytes / MB)

    pairs = ctx.settings.rounds(pair, full=5, least=3, budget_s=60)
    platform_ds = lance.dataset(str(lab.dataset_path("mnist")))
    bare_ds = lance.dataset(str(scratch / "warmup.lance"))
    return {
        "pairs": pairs,
        **samples,
        "script_seconds": script_seconds,
        "first_run": {"wall_s": first.wall_s, "peak_rss_mb": first.peak_rss_bytes / MB},
        "check": {
            "platform_rows": platform_ds.count_rows(),
            "bare_rows": bare_ds.count_rows(),
            "platform_data_bytes": data_bytes(lab.dataset_path("mnist")),
            "bare_data_bytes": data_bytes(scratch / "warmup.lance"),
            "same_image_metadata": platform_ds.schema.field("image").metadata
            == bare_ds.schema.field("image").metadata,
        },
    }


def linearity(ctx: Context) -> dict[str, Any]:
    """1x and 10x written by the same generator (same gzip level), alternated."""
    platform = ctx.require_platform()
    lab = ctx.lab
    src = lab.data_root / lab.mnist_input
    rows = {
        scale: write_scaled(src, lab.data_root / "bench" / f"mnist{scale}x", scale)
        for scale in (1, 10)
    }
    out: dict[str, Any] = {"rows": rows, "wall": {1: [], 10: []}, "rss": {1: [], 10: []}}
    out["script_seconds"] = {1: [], 10: []}

    def pair(i: int) -> None:
        for scale in rotate([1, 10], i):
            name = f"mnist{scale}x_r{i}"
            run = ingest(platform, f"bench/mnist{scale}x", name, timeout=1200)
            out["wall"][scale].append(run.wall_s)
            out["rss"][scale].append(run.peak_rss_bytes / MB)
            out["script_seconds"][scale].append(run.result.get("seconds", 0.0))
            if scale == 10:
                platform.delete_dataset(name)  # 10x is ~120 MB a copy: keep the temp dir small

    out["pairs"] = ctx.settings.rounds(pair, full=3, least=2, budget_s=60)
    return out


def run(ctx: Context) -> AreaResult:
    quick = ctx.settings.quick
    vs = versus_bare(ctx)
    rows = [
        Row(
            "ingestion",
            "MNIST 70k, submit -> completed",
            "s",
            median(vs["wall"]),
            baseline=median(vs["bare_wall"]),
            baseline_label="numpy+lance script",
            ratio=paired_ratio(vs["wall"], vs["bare_wall"]),
            target=VS_BARE,
            note=f"{pair_ratios_text(vs['wall'], vs['bare_wall'])}; the script's own run() "
            f"time {median(vs['script_seconds']):.2f} s (median)",
        ),
        Row(
            "ingestion",
            "MNIST 70k, peak RSS",
            "MB",
            median(vs["rss"]),
            baseline=median(vs["bare_rss"]),
            baseline_label="numpy+lance script",
            ratio=paired_ratio(vs["rss"], vs["bare_rss"]),
        ),
    ]
    details: dict[str, Any] = {"versus_bare": vs}
    if quick:
        why = "skipped in --quick"
        rows.append(skipped("ingestion", "10x MNIST time / 1x", why, LINEAR_TIME))
        rows.append(skipped("ingestion", "10x MNIST peak RSS / 1x", why, BOUNDED_RSS))
    else:
        lin = linearity(ctx)
        details["linearity"] = lin
        wall, rss = lin["wall"], lin["rss"]
        script = lin["script_seconds"]
        rows += [
            Row(
                "ingestion",
                "10x MNIST (700k) time vs 1x",
                "s",
                median(wall[10]),
                baseline=median(wall[1]),
                baseline_label="1x",
                ratio=paired_ratio(wall[10], wall[1]),
                target=LINEAR_TIME,
                note="run() alone (no process start or imports): "
                f"{paired_ratio(script[10], script[1]):.2f}x",
            ),
            Row(
                "ingestion",
                "10x MNIST (700k) peak RSS vs 1x",
                "MB",
                median(rss[10]),
                baseline=median(rss[1]),
                baseline_label="1x",
                ratio=paired_ratio(rss[10], rss[1]),
                target=BOUNDED_RSS,
            ),
        ]
    method = (
        "platform: mnist_clean.py via POST /api/v1/ingestion-tasks, POST -> completed (50 ms "
        "polls), peak RSS = high-water mark (VmHWM) of the task's processes; bare: "
        "`python -m bench.bare_ingest` (gzip+numpy, one lance.write_dataset, same schema and "
        "encoding), spawn -> exit, VmHWM sampled the same way; "
        f"{vs['pairs']} alternating pairs after a warm-up, every run a new dataset. Linearity: "
        "1x and 10x (real images shifted by 1-2 px in 10 directions) written by the same "
        f"generator (gzip level 1), {details.get('linearity', {}).get('pairs', 0)} alternating "
        "pairs."
    )
    return AreaResult(rows, details, method)
