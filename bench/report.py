"""Rows of measurements, their targets, and the report: a console table, JSON and Markdown."""

from __future__ import annotations

import json
import math
import operator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

PASS, MISS, INFO, SKIP = "PASS", "MISS", "INFO", "SKIP"
_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    """What a row must reach: its ``ratio`` (platform / baseline) or its ``value`` against
    ``threshold``."""

    on: Literal["ratio", "value"]
    op: Literal["<=", ">="]
    threshold: float
    text: str  # how the table shows it, e.g. "<= 1.3x bare"

    def met(self, row: Row) -> bool | None:
        measured = row.ratio if self.on == "ratio" else row.value
        if measured is None or not math.isfinite(measured):
            return None
        return _OPS[self.op](measured, self.threshold)


@dataclass
class Row:
    """One line of the table. ``value`` is the platform's figure; ``baseline`` the bare one."""

    area: str
    name: str
    unit: str
    value: float | None
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    target: Target | None = None
    note: str = ""
    status: str = field(default="", init=True)

    def __post_init__(self) -> None:
        if self.status:
            return  # given explicitly (SKIP)
        if self.target is None:
            self.status = INFO
            return
        met = self.target.met(self)
        self.status = SKIP if met is None else (PASS if met else MISS)


def skipped(area: str, name: str, why: str, target: Target | None = None) -> Row:
    """A row that could not be measured in this run, with the reason."""
    return Row(area, name, "", None, target=target, note=why, status=SKIP)


def fmt(value: float | None, unit: str = "") -> str:
    """A number for humans: 3 significant digits, the unit after it."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if unit == "%":
        return f"{value * 100:.2f} %"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None or not math.isfinite(ratio) else f"{ratio:.2f}x"


HEADER = ["Area", "Measure", "Platform", "Baseline", "Ratio", "Target", "Result"]


def table_cells(row: Row) -> list[str]:
    baseline = fmt(row.baseline, row.unit)
    if row.baseline is not None and row.baseline_label:
        baseline += f" ({row.baseline_label})"
    return [
        row.area,
        row.name,
        fmt(row.value, row.unit),
        baseline if row.baseline is not None else "-",
        fmt_ratio(row.ratio),
        row.target.text if row.target else "-",
        row.status,
    ]


def console_table(rows: list[Row]) -> str:
    cells = [HEADER, *(table_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        cells = [c.replace("|", "\\|") for c in table_cells(row)]
        cells[-1] = f"**{cells[-1]}**" if row.status == MISS else cells[-1]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line(m: dict[str, Any]) -> str:
    versions = ", ".join(
        f"{k} {m[k]}"
        for k in ("python", "torch", "pylance", "daft", "pyarrow", "fastapi", "uvicorn", "ray")
        if m.get(k)
    )
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('ram_gib', '?')} GiB RAM, "
        f"{m.get('os', '?')}; {versions}; git {m.get('git', '?')}"
    )


def load_line(load: dict[str, float] | None) -> str:
    if not load:
        return "?"
    return f"min {load['min']}, mean {load['mean']}, max {load['max']}"


def miss_text(row: Row) -> str:
    """A miss, said plainly: what was measured against what was wanted, and the row's note."""
    if row.target is None:
        return row.note or "not measured"
    measured = row.ratio if row.target.on == "ratio" else row.value
    shown = fmt_ratio(measured) if row.target.on == "ratio" else fmt(measured, row.unit)
    text = f"measured {shown}, target {row.target.text}"
    return f"{text}; {row.note}" if row.note else text


def area_times(report: Report) -> str:
    parts = []
    for area, details in report.details.items():
        if isinstance(details, dict) and "seconds" in details:
            load = details.get("load_average") or {}
            parts.append(
                f"{area} {details['seconds']:.0f} s ({load.get('start', '?')} -> "
                f"{load.get('end', '?')})"
            )
    return ", ".join(parts) + "."


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class Report:
    """Everything one run produced: machine, command, rows, raw samples per area, notes."""

    machine: dict[str, Any]
    command: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    methodology: dict[str, str] = field(default_factory=dict)

    def add(self, area: str, rows: list[Row], details: dict[str, Any], method: str) -> None:
        self.rows.extend(rows)
        self.details[area] = details
        self.methodology[area] = method

    def misses(self) -> list[Row]:
        return [r for r in self.rows if r.status == MISS]

    def to_json(self) -> dict[str, Any]:
        rows = []
        for row in self.rows:
            data = asdict(row)
            data["target"] = asdict(row.target) if row.target else None
            rows.append(data)
        return _json_safe(
            {
                "machine": self.machine,
                "command": self.command,
                "rows": rows,
                "misses": [f"{r.area}: {r.name}" for r in self.misses()],
                "notes": self.notes,
                "methodology": self.methodology,
                "details": self.details,
            }
        )

    def to_markdown(self) -> str:
        m = self.machine
        out = [
            "# Benchmark: the platform against the bare libraries",
            "",
            f"Command: `{self.command}`, {m.get('date', '?')}, {m.get('duration_s', '?')} s.",
            "",
            f"Machine: {machine_line(m)}.",
            "",
            f"Load average (1 min) during the run: {load_line(m.get('load_average'))} on "
            f"{m.get('cores', '?')} cores (a shared machine: each comparison alternates platform "
            "and baseline runs within this run; ratios are medians of per-pair ratios).",
            "",
            markdown_table(self.rows),
            "",
        ]
        misses = self.misses()
        if misses:
            out += ["## Misses", ""]
            out += [f"- **{r.area}: {r.name}**: {miss_text(r)}" for r in misses]
            out.append("")
        noted = [r for r in self.rows if r.note and r.status != MISS]
        if noted or self.notes:
            out += ["## Notes", ""]
            out += [f"- {n}" for n in self.notes]
            out += [f"- {r.area}: {r.name}: {r.note}" for r in noted]
            out.append("")
        if self.methodology:
            out += ["## Method", ""]
            out += [f"- **{area}**: {text}" for area, text in self.methodology.items()]
            out += ["", "Time per area (load average at its start and end): " + area_times(self)]
            out.append("")
        return "\n".join(out)

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / f"{name}.json", directory / f"{name}.md"
        json_path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return json_path, md_path
