"""Wall time and peak resident memory of a process tree, measured the same way for the
platform's task processes and for the bare baselines.

Peak memory is each process's high-water mark (``VmHWM`` in ``/proc/PID/status``), so a short
spike between two samples is not missed; processes are found by an environment marker (the
platform marks a task's processes ``LAKEKIT_TASK_ID=<id>``; baselines get ``BENCH_RUN_ID``),
which catches children too. The tree's peak is the largest sum of the live processes' marks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serverkit.procs import marked_processes

BARE_MARKER = "BENCH_RUN_ID"
REPO = Path(__file__).resolve().parents[1]


def vm_hwm_bytes(pid: int) -> int | None:
    """Peak resident set of one live process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakSampler:
    """Follows the processes marked ``var=value`` in a thread and keeps their peak.

    Re-reading every environment in /proc is the costly part, so that happens every
    ``rescan`` seconds; the known processes' marks are read every ``interval``.
    """

    def __init__(self, var: str, value: str, interval: float = 0.01, rescan: float = 0.1) -> None:
        self.var, self.value = var, value
        self.interval, self.rescan = interval, rescan
        self.peak_bytes = 0
        self._hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def _run(self) -> None:
        last_scan = 0.0
        while True:
            now = time.monotonic()
            if now - last_scan >= self.rescan:
                for pid in marked_processes(self.var, self.value):
                    self._hwm.setdefault(pid, 0)
                last_scan = now
            for pid in list(self._hwm):
                hwm = vm_hwm_bytes(pid)
                if hwm is None:
                    self._hwm.pop(pid)  # exited; its last mark was already counted
                else:
                    self._hwm[pid] = hwm
            self.peak_bytes = max(self.peak_bytes, sum(self._hwm.values()))
            if self._stop.wait(self.interval):
                return

    def start(self) -> PeakSampler:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_bytes


@dataclass
class ProcessRun:
    wall_s: float
    peak_rss_bytes: int
    stdout: str

    def json(self) -> Any:
        """The last stdout line, parsed: how the baselines report what they measured."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else None


def run_bare(
    module: str,
    args: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    sample_rss: bool = True,
) -> ProcessRun:
    """``python -m module args`` in a fresh process, as the platform runs a task's script:
    wall time from start to exit and peak RSS, sampled the same way as a task's (or not at
    all with ``sample_rss=False``, where the platform side is not sampled either: the
    sampler's own CPU must not land on one side only).

    Raises:
        RuntimeError: the process failed or ran past ``timeout``.
    """
    marker = uuid.uuid4().hex
    full_env = {**os.environ, **(env or {}), BARE_MARKER: marker, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        sampler = PeakSampler(BARE_MARKER, marker)
        if sample_rss:
            sampler.start()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=REPO,
            env=full_env,
            stdout=out,
            stderr=err,
            # Its own session, as the platform starts a task's process: with the kernel's
            # autogroup scheduling a session is the unit of CPU fairness on a busy machine.
            start_new_session=True,
        )
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            returncode = proc.wait()
        finally:
            timer.cancel()
            if sample_rss:
                sampler.stop()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if expired.is_set():
        raise RuntimeError(f"{module} ran past {timeout:g} s")
    if returncode != 0:
        raise RuntimeError(f"{module} exited with {returncode}: {stderr[-2000:]}")
    return ProcessRun(wall, sampler.peak_bytes, stdout)
