"""Write machine_health.csv: the tabular example's raw data (run once; the CSV is committed).

``python data/raw/tabular/generate.py`` rewrites the same bytes every time (seed below). See
README.md in this directory for what the columns mean and which rows are messy on purpose.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED = 20261201
ROWS = 3000
CLASSES = ("ok", "worn", "faulty")
SHARES = (0.6, 0.25, 0.15)
# column, decimals, mean and spread per class (ok, worn, faulty)
FEATURES = (
    ("temperature_c", 1, (62.0, 68.0, 77.0), (5.0, 5.5, 7.0)),
    ("vibration_mm_s", 2, (2.2, 3.4, 5.1), (0.6, 0.8, 1.3)),
    ("pressure_kpa", 1, (310.0, 302.0, 288.0), (12.0, 14.0, 20.0)),
    ("rpm", 0, (1480.0, 1465.0, 1430.0), (25.0, 30.0, 45.0)),
    ("current_a", 2, (11.5, 12.4, 13.8), (0.8, 0.9, 1.4)),
    ("voltage_v", 1, (400.0, 398.0, 394.0), (3.0, 3.5, 5.0)),
    ("humidity_pct", 1, (45.0, 47.0, 50.0), (10.0, 10.0, 11.0)),
    ("age_days", 0, (420.0, 980.0, 1150.0), (260.0, 300.0, 380.0)),
)
OUT = Path(__file__).resolve().with_name("machine_health.csv")


def main() -> None:
    rng = np.random.default_rng(SEED)
    cls = rng.choice(len(CLASSES), size=ROWS, p=SHARES)
    columns = {}
    for name, decimals, means, spreads in FEATURES:
        mean, spread = np.take(means, cls), np.take(spreads, cls)
        columns[name] = (rng.normal(mean, spread), decimals)
    # A non-linear tell: worn machines draw more current when they run fast.
    worn = cls == 1
    columns["current_a"][0][worn] += 0.004 * (columns["rpm"][0][worn] - 1465.0)
    columns["age_days"] = (np.abs(columns["age_days"][0]), 0)
    # What a user's export looks like: a few empty cells, labels typed by hand.
    blank_cells = rng.random((ROWS, len(FEATURES))) < 0.004
    label_text = [CLASSES[c] for c in cls]
    for i in np.flatnonzero(rng.random(ROWS) < 0.02):
        label_text[i] = rng.choice(
            [label_text[i].upper(), f" {label_text[i]}", label_text[i].title()]
        )
    for i in np.flatnonzero(rng.random(ROWS) < 0.005):
        label_text[i] = ""
    with OUT.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", *columns, "status"])
        for row in range(ROWS):
            cells = []
            for j, (values, decimals) in enumerate(columns.values()):
                value = round(float(values[row]), decimals)
                text = str(int(value)) if decimals == 0 else f"{value:.{decimals}f}"
                cells.append("" if blank_cells[row, j] else text)
            writer.writerow([1000 + row, *cells, label_text[row]])


if __name__ == "__main__":
    main()
