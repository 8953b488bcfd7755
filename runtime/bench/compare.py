"""``vitrina bench compare OLD.json NEW.json``: what got slower or less accurate.

A stage (or the total) of a query type regresses when its median latency grew
by more than ``max_latency_regression`` (relative) and by more than a 0.05 ms
noise floor; accuracy regresses when mAP dropped by more than ``max_map_drop``.
Device labs put this in their pipeline: the command exits 1 on a regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NOISE_FLOOR_MS = 0.05


@dataclass(frozen=True)
class CompareRow:
    """One compared figure; ``old``/``new`` in ms for latency, in [0, 1] for mAP."""

    what: str
    old: float
    new: float
    change: float
    regression: bool


@dataclass(frozen=True)
class CompareResult:
    """Every compared figure (old, new, change) and the ones that regressed beyond the allowance."""

    rows: tuple[CompareRow, ...]

    @property
    def regressions(self) -> tuple[CompareRow, ...]:
        return tuple(r for r in self.rows if r.regression)

    def table(self) -> str:
        lines = [f"{'figure':<44}{'old':>10}{'new':>10}{'change':>10}  verdict"]
        for r in self.rows:
            change = f"{r.change:+.1%}" if r.what.endswith("p50 ms") else f"{r.change:+.4f}"
            lines.append(
                f"{r.what:<44}{r.old:>10.4f}{r.new:>10.4f}{change:>10}  {'REGRESSION' if r.regression else 'ok'}"
            )
        return "\n".join(lines)


def parse_fraction(text: str) -> float:
    """``"10%"`` or ``"0.1"`` → 0.1."""
    try:
        value = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"expected a fraction such as 10% or 0.1, got {text!r}") from None
    if value < 0:
        raise ValueError(f"expected a fraction >= 0, got {text!r}")
    return value


def compare_reports(
    old: dict[str, Any], new: dict[str, Any], max_latency_regression: float = 0.10, max_map_drop: float = 0.01
) -> CompareResult:
    """Compare two ``report.json`` dicts figure by figure (only figures both have)."""
    for name, report in (("old", old), ("new", new)):
        if report.get("report_version") != 1:
            raise ValueError(
                f"{name} report has report_version {report.get('report_version')!r}; this vitrina compares version 1"
            )
    rows: list[CompareRow] = []
    for threads, qtypes in (old.get("latency") or {}).items():
        for qtype, stages in qtypes.items():
            new_stages = (new.get("latency") or {}).get(threads, {}).get(qtype)
            if not new_stages:
                continue
            for stage, stats in stages.items():
                if not isinstance(stats, dict) or stage not in new_stages:
                    continue
                a, b = stats["p50"], new_stages[stage]["p50"]
                change = b / a - 1.0 if a > 0 else 0.0
                bad = change > max_latency_regression and (b - a) > NOISE_FLOOR_MS
                rows.append(CompareRow(f"{qtype}/{stage} ({threads} thr) p50 ms", a, b, change, bad))
    # `vitrina bench search` reports: each case's median per query
    new_cases = new.get("cases") or {}
    for key, row in (old.get("cases") or {}).items():
        if key in new_cases:
            a, b = row["median_ms"], new_cases[key]["median_ms"]
            change = b / a - 1.0 if a > 0 else 0.0
            bad = change > max_latency_regression and (b - a) > NOISE_FLOOR_MS
            rows.append(CompareRow(f"search/{key} p50 ms", a, b, change, bad))
    old_acc, new_acc = old.get("accuracy") or {}, new.get("accuracy") or {}
    for precision in ("float", "int8"):
        if precision in old_acc and precision in new_acc:
            a, b = old_acc[precision]["map"], new_acc[precision]["map"]
            rows.append(CompareRow(f"accuracy/{precision} mAP", a, b, b - a, (a - b) > max_map_drop))
    return CompareResult(tuple(rows))
