"""Latency statistics, one definition for every benchmark (QA harness, soak, kiosk touch replay)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def latency_stats(samples_ms: Sequence[float], *, digits: int = 4) -> dict[str, float]:
    """n, p50 / p95 / p99, max and mean of latency samples in milliseconds.

    An empty sample gives ``{"n": 0}``. Percentiles are numpy's linear interpolation.
    """
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(a, (50, 95, 99))
    return {
        "n": int(a.size),
        "p50": round(float(p50), digits),
        "p95": round(float(p95), digits),
        "p99": round(float(p99), digits),
        "max": round(float(a.max()), digits),
        "mean": round(float(a.mean()), digits),
    }
