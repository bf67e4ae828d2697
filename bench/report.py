"""Benchmark figures, their targets, and the report: a table on stdout, JSON and Markdown files."""

import json
import math
import operator
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

_COMPARE = {"<=": operator.le, ">=": operator.ge}


@dataclass
class Figure:
    """One measured figure. `target` says what `met` checks: `ratio <= 1.3`, `value <= 3 ms`,
    ...; report-only figures have neither (None). An errored benchmark is a figure with
    met=False and the error in `how`."""

    name: str
    value: float | None
    baseline: float | None
    ratio: float | None
    target: str | None
    met: bool | None
    unit: str
    how: str

    @classmethod
    def ratio_target(
        cls, name: str, value: float, baseline: float, op: str, limit: float, unit: str, how: str
    ) -> "Figure":
        ratio = _ratio(value, baseline)
        met = ratio is not None and _COMPARE[op](ratio, limit)
        return cls(name, _round(value), _round(baseline), ratio, f"ratio {op} {limit:g}", met,
                   unit, how)  # fmt: skip

    @classmethod
    def value_target(
        cls,
        name: str,
        value: float,
        baseline: float | None,
        op: str,
        limit: float,
        unit: str,
        how: str,
    ) -> "Figure":
        met = value is not None and _COMPARE[op](value, limit)
        return cls(name, _round(value), _round(baseline), _ratio(value, baseline),
                   f"value {op} {limit:g} {unit}", met, unit, how)  # fmt: skip

    @classmethod
    def report(
        cls, name: str, value: float | None, baseline: float | None, unit: str, how: str
    ) -> "Figure":
        return cls(name, _round(value), _round(baseline), _ratio(value, baseline), None, None,
                   unit, how)  # fmt: skip

    @classmethod
    def error(cls, name: str, error: BaseException) -> "Figure":
        return cls(name, None, None, None, "completes", False, "",
                   f"error: {type(error).__name__}: {error}")  # fmt: skip


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.4g}")


def _ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline in (None, 0):
        return None
    return _round(value / baseline)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _met(figure: Figure) -> str:
    if figure.met is None:
        return "report"
    return "yes" if figure.met else "MISSED"


def table(figures: Sequence[Figure]) -> str:
    header = ("benchmark", "value", "baseline", "ratio", "unit", "target", "met")
    rows = [
        (f.name, _cell(f.value), _cell(f.baseline), _cell(f.ratio), f.unit, f.target or "-",
         _met(f))
        for f in figures
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    widths[0] = min(widths[0], 72)
    lines = []
    for row in [header, *rows]:
        cells = [str(cell)[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if row is header:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _markdown(figures: Sequence[Figure], meta: dict, notes: Sequence[str]) -> str:
    lines = [
        "# sverm benchmark results",
        "",
        f"Run {meta['finished_at']} on commit `{meta['commit']}` ({meta['mode']} sizes, "
        f"{meta['cpus']} CPUs, load average {meta['load_average_start']} at the start and "
        f"{meta['load_average_end']} at the end, {meta['duration_seconds']:.0f} s). Produced by "
        f"`{meta['command']}`; bench/README.md explains each figure.",
        "",
        "| benchmark | value | baseline | ratio | unit | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        name = f.name.replace("|", "\\|")
        lines.append(
            f"| {name} | {_cell(f.value)} | {_cell(f.baseline)} | {_cell(f.ratio)} | {f.unit} "
            f"| {f.target or '-'} | {_met(f)} |"
        )
    lines += ["", "## How each figure was measured", ""]
    for f in figures:
        lines.append(f"- **{f.name}**: {f.how}")
    if notes:
        lines += ["", "## Findings and recommended changes", ""]
        lines += [f"- {note}" for note in notes]
    missed = [f.name for f in figures if f.met is False]
    lines += ["", f"Targets missed: {len(missed)}" + (": " + "; ".join(missed) if missed else ".")]
    return "\n".join(lines) + "\n"


def write(
    figures: Sequence[Figure], meta: dict, notes: Sequence[str], json_path: Path, md_path: Path
) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    body = {**meta, "benchmarks": [asdict(f) for f in figures], "findings": list(notes)}
    json_path.write_text(json.dumps(body, indent=2) + "\n")
    md_path.write_text(_markdown(figures, meta, notes))


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
