"""``make bench`` / ``python -m bench.run``: every area, one report.

Options: ``--quick`` (a smoke run: one round, small counts, no 10x or default training),
``--only storage,serving`` (a subset; needed inputs are made on the way), ``--no-level2``,
``--train-threads N``, ``--out DIR`` and ``--name NAME`` (report files ``NAME.json`` and
``NAME.md``; default ``latest`` for a full run, ``quick`` or ``partial`` otherwise),
``--keep`` (leave the temp dir). The platform runs in a temp dir with its own lake and free
ports; everything started is stopped and the temp dir removed at the end.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench.context import AreaResult, Context, Settings, load_now
from bench.lab import Lab
from bench.machine import LoadMonitor, command_line, machine_info
from bench.report import Report, console_table, skipped

RESULTS = Path(__file__).resolve().parent / "results"
# Run order: overhead first (a quiet platform), ingestion makes the dataset the next areas
# use, training makes the model serving (and OIP) uses; Levels 2 and 3 last, after Level 1 has
# stopped (each starts a platform of its own).
AREAS = [
    "overhead",
    "ingestion",
    "storage",
    "training",
    "serving",
    "oip",
    "tabular",
    "lakeops",
    "level2",
    "level3",
]
OWN_PLATFORM = ("level2", "level3")  # each starts its own, after Level 1's has stopped
NEEDS_PLATFORM = {"overhead", "ingestion", "training", "serving", "oip", "tabular"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The platform against the bare libraries.")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument(
        "--only", default="", help=f"comma-separated areas among {','.join(AREAS)} (default: all)"
    )
    parser.add_argument("--no-level2", action="store_true", help="skip the Ray (Level 2) rows")
    parser.add_argument(
        "--train-threads",
        type=int,
        default=1,
        help="torch threads of both sides of the s/epoch comparison (default 1)",
    )
    parser.add_argument(
        "--default-train-timeout",
        type=float,
        default=400.0,
        help="seconds before the default training run is cancelled (its target is 180 s)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="report directory")
    parser.add_argument("--name", default=None, help="report file name (no extension)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    chosen = [a.strip() for a in args.only.split(",") if a.strip()] or list(AREAS)
    unknown = sorted(set(chosen) - set(AREAS))
    if unknown:
        parser.error(f"unknown areas {unknown}; choose among {list(AREAS)}")
    args.areas = [a for a in AREAS if a in chosen]
    if args.name is None:
        args.name = "quick" if args.quick else ("latest" if not args.only else "partial")
    return args


def area_runner(area: str) -> Callable[[Context], AreaResult]:
    """``bench.<area>.run``, imported on use: a run of one area skips the others' imports."""
    return importlib.import_module(f"bench.{area}").run


def _sigterm(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop the services, remove the temp dir


def run_areas(args: argparse.Namespace, report: Report, root: Path) -> bool:
    """Run the chosen areas in order; returns False if any of them broke."""
    ctx = Context(
        Settings(
            quick=args.quick,
            train_threads=args.train_threads,
            default_train_timeout=args.default_train_timeout,
        ),
        Lab(root).prepare(),
    )
    areas = list(args.areas)
    if "level2" in areas and args.no_level2:
        areas.remove("level2")
        report.notes.append("Level 2 (Ray) skipped: --no-level2.")
    for area, what in (("level2", "Ray runtime"), ("level3", "S3 endpoint")):
        if area in areas and (why := importlib.import_module(f"bench.{area}").unavailable()):
            areas.remove(area)
            report.rows.append(skipped(area, what, f"not measured: {why}"))
    ok = True
    level1 = [a for a in areas if a not in OWN_PLATFORM]
    if NEEDS_PLATFORM & set(level1):
        print("starting the platform (Level 1) ...", flush=True)
        try:
            ctx.platform = ctx.lab.platform("local").__enter__()
        except Exception as exc:
            traceback.print_exc()
            why = f"the platform did not start: {exc}"[:300]
            for area in NEEDS_PLATFORM & set(level1):
                report.rows.append(skipped(area, "(area not run)", why))
            level1 = [a for a in level1 if a not in NEEDS_PLATFORM]
            ok = False
    try:
        for area in level1:
            ok &= _run_area(area, ctx, report)
    finally:
        if ctx.platform is not None:
            ctx.platform.close()
            ctx.platform = None
    if "level2" in areas:
        print("starting the platform on Ray (Level 2) ...", flush=True)
        ok &= _run_area("level2", ctx, report)
    if "level3" in areas:
        print("starting an S3 endpoint and the platform on it (Level 3) ...", flush=True)
        ok &= _run_area("level3", ctx, report)
    return ok


def _run_area(area: str, ctx: Context, report: Report) -> bool:
    started, load = time.monotonic(), load_now()
    print(f"[{area}] running (load average {load}) ...", flush=True)
    try:
        result = area_runner(area)(ctx)
    except Exception as exc:
        traceback.print_exc()
        report.rows.append(skipped(area, "(area failed)", f"{type(exc).__name__}: {exc}"[:300]))
        report.details[area] = {"error": traceback.format_exc()}
        return False
    seconds = time.monotonic() - started
    result.details["seconds"] = round(seconds, 1)
    result.details["load_average"] = {"start": load, "end": load_now()}
    report.add(area, result.rows, result.details, result.method)
    report.notes.extend(result.notes)
    print(console_table(result.rows), flush=True)
    print(f"[{area}] done in {seconds:.0f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Lance warns on every fork once imported; ours are fork+exec of fresh interpreters.
    warnings.filterwarnings("ignore", message="lance is not fork-safe")
    signal.signal(signal.SIGTERM, _sigterm)
    report = Report(machine=machine_info(), command=command_line())
    root = Path(tempfile.mkdtemp(prefix="aip-bench-"))
    started = time.monotonic()
    ok = False
    try:
        with LoadMonitor() as load:
            ok = run_areas(args, report, root)
    except KeyboardInterrupt:
        print("interrupted: the report has what was measured so far", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    report.machine["duration_s"] = round(time.monotonic() - started)
    report.machine["load_average"] = load.summary()
    json_path, md_path = report.write(args.out, args.name)
    print()
    print(console_table(report.rows))
    misses = report.misses()
    print(f"\n{len(misses)} target(s) missed. Report: {json_path} and {md_path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
