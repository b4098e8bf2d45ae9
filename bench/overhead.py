"""Platform overhead: what running a task that does nothing costs, end to end.

The trivial task is ``bench/noop.py`` (``run`` returns at once), submitted as an ingestion
task through the AI Platform's REST API and polled every 10 ms until it reads completed. The
bare baseline runs the same file in a fresh interpreter (``python -m bench.noop``): the floor
any process-per-task design pays. Runs alternate, the median of each is reported.
"""

from __future__ import annotations

from typing import Any

from bench.context import AreaResult, Context
from bench.lab import NOOP_SCRIPT, RunningPlatform
from bench.measure import run_bare
from bench.report import Row, Target
from bench.stats import median, paired_ratio, rotate

TRIVIAL_E2E = Target("value", "<=", 1.5, "<= 1.5 s")
POLL_S = 0.01


def noop_body(i: int) -> dict[str, Any]:
    return {
        "name": f"bench-noop-{i}",
        "input": "",
        "script": NOOP_SCRIPT,
        "params": {},
        "output": "bench_noop",
    }


def measure(ctx: Context, platform: RunningPlatform, full: int) -> dict[str, Any]:
    """Alternate platform and bare trivial runs; one of each first as a warm-up."""
    platform.run_task("ingestion", noop_body(-1), poll=POLL_S, timeout=120)
    run_bare("bench.noop", [], timeout=60, sample_rss=False)
    e2e: list[float] = []
    to_running: list[float] = []
    server: list[dict[str, float]] = []
    bare: list[float] = []

    def pair(i: int) -> None:
        for which in rotate(["platform", "bare"], i):
            if which == "platform":
                run = platform.run_task("ingestion", noop_body(i), poll=POLL_S, timeout=120)
                e2e.append(run.wall_s)
                to_running.append(run.to_running_s if run.to_running_s is not None else run.wall_s)
                server.append(run.server)
            else:
                bare.append(run_bare("bench.noop", [], timeout=60, sample_rss=False).wall_s)

    pairs = ctx.settings.rounds(pair, full=full, least=5, budget_s=20)
    return {
        "pairs": pairs,
        "platform_e2e_s": e2e,
        "to_running_s": to_running,
        "server": server,
        "bare_s": bare,
    }


def rows(area: str, data: dict[str, Any], target: Target | None) -> list[Row]:
    e2e, bare = data["platform_e2e_s"], data["bare_s"]
    server_started = median([s.get("created_to_started_s", 0.0) for s in data["server"]])
    return [
        Row(
            area,
            "trivial task, submit -> completed",
            "s",
            median(e2e),
            baseline=median(bare),
            baseline_label="python noop.py",
            ratio=paired_ratio(e2e, bare),
            target=target,
            note=f"server stamps: created -> started {server_started:.3f} s (median)",
        ),
        Row(area, "trivial task, submit -> running", "s", median(data["to_running_s"])),
    ]


def run(ctx: Context) -> AreaResult:
    data = measure(ctx, ctx.require_platform(), full=7)
    method = (
        "trivial task (bench/noop.py) submitted through POST /api/v1/ingestion-tasks, polled "
        f"every {POLL_S * 1000:.0f} ms until completed; baseline: the same file run by a fresh "
        f"`python -m bench.noop`; {data['pairs']} alternating pairs after one warm-up each, "
        "medians."
    )
    return AreaResult(rows("overhead", data, TRIVIAL_E2E), data, method)
