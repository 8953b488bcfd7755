"""``vitrina bench soak``: mixed queries for minutes; throughput, latency drift, memory growth.

A kiosk runs all day: latency must not creep up and memory must not grow.
Queries cycle through sketch strokes, photos and similar-product lookups.
Resident memory is sampled every second; growth is measured from the end of
the first minute (after caches and allocator pools settle) to the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vitrina.runtime.bundle import Bundle

from .benchmark import pipelines, query_inputs, read_rss_mb

GROWTH_TARGET_MB = 5.0


@dataclass(frozen=True)
class SoakResult:
    """Attributes:
    seconds: wall time soaked; queries: queries answered; qps: queries per second.
    p50_first_ms, p50_last_ms: median latency in the first and last window (a minute, or a tenth of short soaks).
    drift: p50_last / p50_first - 1.
    rss_start_mb, rss_after_warm_mb, rss_end_mb: resident memory at start, after the first window, at the end.
    growth_mb: rss_end - rss_after_warm; ok: growth below the 5 MB target.
    """

    seconds: float
    queries: int
    qps: float
    p50_first_ms: float
    p50_last_ms: float
    drift: float
    rss_start_mb: float
    rss_after_warm_mb: float
    rss_end_mb: float
    growth_mb: float
    ok: bool

    def to_json(self) -> dict[str, object]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def soak(
    bundle_path: str | Path, minutes: float, threads: int = 1, progress: Callable[[float], None] = lambda _: None
) -> SoakResult:
    """Run mixed queries for ``minutes`` (> 0) and report drift and memory growth."""
    if minutes <= 0:
        raise ValueError(f"minutes must be > 0, got {minutes}")
    bundle = Bundle.open(bundle_path)
    inputs = query_inputs(bundle, 200, np.random.default_rng(0))
    by_type, encoders = pipelines(bundle, threads, "int8", 20)
    mixed = [(by_type[q], x) for i in range(200) for q in inputs if (x := inputs[q][i % len(inputs[q])]) is not None]
    duration = minutes * 60.0
    window = min(60.0, duration / 10.0)
    rss_start = read_rss_mb()
    rss_after_warm = None
    # Only the first and the last window's latencies are kept: storing every
    # sample would itself grow memory by ~25 MB over 10 minutes.
    first: list[float] = []
    last: list[float] = []
    t0 = time.monotonic()
    next_sample = t0 + 1.0
    i = 0
    while (now := time.monotonic()) - t0 < duration:
        stages, x = mixed[i % len(mixed)]
        start = time.perf_counter_ns()
        for _, fn in stages:
            x = fn(x)
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        if now - t0 < window:
            first.append(elapsed_ms)
        elif now - t0 >= duration - window:
            last.append(elapsed_ms)
        i += 1
        if now >= next_sample:
            next_sample = now + 1.0
            progress(now - t0)
            if rss_after_warm is None and now - t0 >= window:
                rss_after_warm = read_rss_mb()
    seconds = time.monotonic() - t0
    rss_end = read_rss_mb()
    for encoder in encoders:
        encoder.close()
    p50_first = float(np.median(first)) if first else float("nan")
    p50_last = float(np.median(last)) if last else float("nan")
    warm = rss_after_warm if rss_after_warm is not None else rss_start
    growth = rss_end - warm
    return SoakResult(
        seconds=seconds,
        queries=i,
        qps=i / seconds,
        p50_first_ms=p50_first,
        p50_last_ms=p50_last,
        drift=p50_last / p50_first - 1.0 if p50_first > 0 else float("nan"),
        rss_start_mb=rss_start,
        rss_after_warm_mb=warm,
        rss_end_mb=rss_end,
        growth_mb=growth,
        ok=growth < GROWTH_TARGET_MB,
    )
