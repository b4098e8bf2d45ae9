"""What every area gets: the run's settings, the lab, the running platform, shared artifacts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.report import Row

if TYPE_CHECKING:
    from bench.lab import Lab, RunningPlatform


@dataclass
class Settings:
    quick: bool = False
    train_threads: int = 1
    default_train_timeout: float = 400.0

    def rounds(
        self, run_round: Callable[[int], None], full: int, least: int, budget_s: float
    ) -> int:
        """Run up to ``full`` rounds (1 with --quick), stopping after ``least`` once
        ``budget_s`` seconds have gone: a busy machine gets fewer rounds, not a longer bench.
        Returns how many ran."""
        started = time.monotonic()
        total = 1 if self.quick else full
        for i in range(total):
            run_round(i)
            if i + 1 >= least and time.monotonic() - started > budget_s:
                return i + 1
        return total


@dataclass
class Context:
    settings: Settings
    lab: Lab
    platform: RunningPlatform | None = None
    # Artifacts an area leaves for later ones: "dataset" (ingested through the platform),
    # "model" (trained through the platform).
    artifacts: dict[str, str] = field(default_factory=dict)

    def require_platform(self) -> RunningPlatform:
        if self.platform is None:
            raise RuntimeError("this area needs the platform running")
        return self.platform


@dataclass
class AreaResult:
    rows: list[Row]
    details: dict[str, Any]
    method: str
    notes: list[str] = field(default_factory=list)


def load_now() -> float:
    return round(os.getloadavg()[0], 2)
