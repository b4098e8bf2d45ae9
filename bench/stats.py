"""Small statistics helpers: medians, percentiles and paired ratios of alternating runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values (a skipped measurement stays visible as such)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def paired_ratio(platform: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of the per-pair ratios platform[i] / baseline[i].

    Pairs were measured back to back, so each ratio sees (nearly) the same machine load; the
    median of those is steadier on a shared machine than the ratio of two medians.
    """
    ratios = [p / b for p, b in zip(platform, baseline, strict=True) if b > 0]
    return median(ratios)


def pair_ratios_text(platform: Sequence[float], baseline: Sequence[float]) -> str:
    """The per-pair ratios, for the reader to judge the spread behind a median."""
    ratios = [p / b for p, b in zip(platform, baseline, strict=True) if b > 0]
    return "per-pair ratios " + ", ".join(f"{r:.2f}x" for r in ratios)


def rotate(items: Sequence[T], turn: int) -> list[T]:
    """``items`` rotated by ``turn``: alternating runs do not always go first."""
    if not items:
        return []
    k = turn % len(items)
    return [*items[k:], *items[:k]]
