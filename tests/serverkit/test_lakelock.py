"""The lake lease: one holder; a second is refused with who and since when; a dead or
expired holder is taken over; of two racing takers exactly one wins; release frees it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from serverkit.lakelock import LakeLock, LakeLocked
from tests.support import REPO

HOLD = """
import sys, time
from serverkit.lakelock import LakeLock
lock = LakeLock(sys.argv[1], "svc", port=4321, ttl_seconds=float(sys.argv[2])).acquire()
print("held", flush=True)
time.sleep(600)
"""


def holder(root: Path, ttl: float = 30) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_saying_who_and_since_when(tmp_path: Path):
    proc = holder(tmp_path)
    try:
        with pytest.raises(LakeLocked) as refused:
            LakeLock(str(tmp_path), "svc").acquire()
        message = str(refused.value)
        assert f"pid {proc.pid}" in message and "port 4321" in message and "since 20" in message
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_holder_is_taken_over_at_once(tmp_path: Path):
    proc = holder(tmp_path)
    proc.kill()
    proc.wait()
    started = time.monotonic()
    with LakeLock(str(tmp_path), "svc", port=1) as lock:
        assert time.monotonic() - started < 5
        assert lock.holder()["port"] == 1


def test_an_expired_lease_of_another_host_is_taken_over(tmp_path: Path):
    other = LakeLock(str(tmp_path), "svc", port=2, ttl_seconds=0.6)
    other.me["host"] = "elsewhere"  # a holder on another machine: only expiry frees it
    other.acquire()
    other._stop.set()  # frozen: it stops renewing
    with pytest.raises(LakeLocked):
        LakeLock(str(tmp_path), "svc").acquire()
    time.sleep(0.7)
    with LakeLock(str(tmp_path), "svc", port=3) as lock:
        assert lock.holder()["port"] == 3


def test_of_two_racing_takers_exactly_one_wins(tmp_path: Path):
    proc = holder(tmp_path)
    proc.kill()
    proc.wait()
    locks = [LakeLock(str(tmp_path), "svc", port=p) for p in (10, 11, 12)]
    results: list[object] = []
    barrier = threading.Barrier(len(locks))

    def take(lock: LakeLock) -> None:
        barrier.wait()
        try:
            results.append(lock.acquire())
        except LakeLocked as exc:
            results.append(exc)

    threads = [threading.Thread(target=take, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, LakeLock)]
    assert len(winners) == 1, results
    assert winners[0].holder()["port"] == winners[0].me["port"]
    winners[0].release()


def test_release_frees_it_for_the_next_one(tmp_path: Path):
    first = LakeLock(str(tmp_path), "svc", port=1).acquire()
    first.release()
    with LakeLock(str(tmp_path), "svc", port=2) as second:
        assert second.holder()["port"] == 2
