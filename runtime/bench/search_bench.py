"""``vitrina bench search``: the device's search at catalog scale, side by side with faiss.

For each catalog size (synthetic 100k and 1M rows by default) and each case
kind — 64- and 256-bit Hamming (faiss IndexBinaryFlat), 8-d and 64-d float16
L2 (faiss IndexFlatL2 on a float32 copy), 8-d float32 L2 (``l2_8f32``: both
sides scan the same float32 codes, no widening), 8-d int8 L2 with a per-dimension
scale (``l2_8i8``: faiss scans the dequantised rows as float32), and the two-stage search (64-bit
shortlist + int8 re-rank; faiss shortlists, the same numpy re-rank follows) —
it times 1 and 2 threads, single queries and batches of 64, without and with
a 10% category filter (faiss: an IDSelectorBitmap), all in one process, and
reports per query the median and p95 in ms, faiss's median, their ratio, and
the code bytes scanned per second as a fraction of this machine's memory
bandwidth (a large ``np.copyto``, read + write, measured in the same run).
Top-k is checked against faiss allowing for ties (distances equal rank by rank).

It also measures, in fresh processes, the resident memory a searcher over 1M
memory-mapped codes adds to the process (64-bit codes; 8-d float16 and int8), and, on a
1M-product bundle grown from ``--bundle`` (its models and reducer), the open
time and the sketch query end to end (strokes → rasterise → encoder → search →
products) at 1 thread: ``sketch_1m_p95_ms`` with the codes stored as the export
ships them at that size (int8 PCA / UMAP codes, ``runtime/codes/quantize.py``),
and ``sketch_1m_<dtype>_p95_ms`` with the base bundle's own float codes for
comparison; and the same cases over the ``--bundle``'s own codes (the demo catalog).

faiss is a bench/dev dependency: it reaches this module through the entry-point
group ``vitrina.bench.search_references`` (``vitrina.export.yardsticks``); the
device never imports it. Without it the figures come without ratios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.scan import RowFilter
from vitrina.runtime.search import RerankSearcher, Searcher, SearcherOptions
from vitrina.runtime.timeutil import utc_stamp

from .synthetic_catalog import (
    KINDS,
    N_CATEGORIES,
    scale_path,
    scaled_bundle,
    synthetic_codes,
    synthetic_queries,
    synthetic_scale,
)

REPORT_VERSION = 1
#: The issue's targets, checked on the 1M cases (ratios measured in one run).
TARGETS = {
    "hamming64_1000000_t1_q1": ("ratio", 1.5),
    "l2_8_1000000_t1_q1": ("ratio", 1.2),
    "l2_8f32_1000000_t1_q1": ("ratio", 1.2),
    "l2_8i8_1000000_t1_q1": ("ratio", 1.2),
    "rss_hamming64_1000000_mb": ("value", 10.0),
    "rss_l2_8_1000000_mb": ("value", 17.0),
    "rss_l2_8i8_1000000_mb": ("value", 17.0),
    "open_1m_ms": ("value", 100.0),
    "sketch_1m_p95_ms": ("value", 5.0),
}
ALL_KINDS = (*KINDS, "twostage")


@dataclass(frozen=True)
class SearchBenchOptions:
    """Attributes:
    sizes: synthetic catalog sizes (rows = products).
    kinds: case kinds (``hamming64``, ``hamming256``, ``l2_8``, ``l2_64``, ``twostage``).
    threads: thread counts (ours: row spans; faiss: OpenMP; BLAS limited to the same).
    batches: queries per call (1: single queries; 64: a batch, timed per query).
    k: results per query.
    budget_s: about how long each case is timed (at least 5 single queries / 2 batches).
    bundle: a real bundle: its codes are the demo-catalog cases, its models and reducer
        make the 1M bundle for the open and sketch figures; None skips those.
    work: folder for the synthetic catalogs (cached between runs).
    """

    sizes: tuple[int, ...] = (100_000, 1_000_000)
    kinds: tuple[str, ...] = ALL_KINDS
    threads: tuple[int, ...] = (1, 2)
    batches: tuple[int, ...] = (1, 64)
    k: int = 10
    budget_s: float = 1.0
    bundle: Path | None = None
    work: Path = Path("build/bench-search")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(ALL_KINDS))
        if unknown:
            raise ValueError(f"unknown bench search kind(s) {unknown}; expected some of {list(ALL_KINDS)}")
        if not self.sizes or min(self.sizes) < 100:
            raise ValueError(f"sizes must be catalog sizes >= 100, got {self.sizes}")
        if not self.threads or min(self.threads) < 1 or not self.batches or min(self.batches) < 1:
            raise ValueError("threads and batches must be counts >= 1")


def reference() -> Any | None:
    """The registered search reference (faiss), or None."""
    for ep in metadata.entry_points(group="vitrina.bench.search_references"):
        ref = ep.load()()
        if ref is not None:
            return ref
    return None


def _limit_blas(threads: int) -> Any:
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(threads)
    except ImportError:  # the figures are then taken with BLAS's own thread count
        return None


def memory_bandwidth_gbs(mb: int = 256, repeats: int = 5) -> float:
    """Copy bandwidth, GB/s (bytes read + bytes written per second) of a large ``np.copyto``."""
    src = np.ones(mb << 18, dtype=np.float32)
    dst = np.empty_like(src)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return round(2 * src.nbytes / best / 1e9, 2)


def _time(fn: Callable[[], Any], calls: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def _calls(fn: Callable[[], Any], budget_s: float, floor: int) -> int:
    t = time.perf_counter()
    fn()
    one = time.perf_counter() - t
    return int(max(floor, min(200, budget_s / max(one, 1e-6))))


def _agree(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Tie-aware: the k distances equal rank by rank (ids may differ among equals)."""
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    a = np.where(np.isfinite(a), a, np.nan)
    b = np.where((b >= 3.0e38) | (b < -3.0e38) | ~np.isfinite(b), np.nan, b)  # faiss pads with ±FLT_MAX
    return bool(np.allclose(a, b, rtol=1e-3, atol=1e-3, equal_nan=True))


def _case_calls(
    searcher: Searcher,
    two: RerankSearcher | None,
    ref: Any,
    index: Any,
    q: np.ndarray,
    e: np.ndarray | None,
    opts: SearcherOptions,
    within: RowFilter | None,
    mask: np.ndarray | None,
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(ours, faiss's) calls of one case; faiss's two-stage shortlists, then the same numpy re-rank."""
    if two is not None and e is not None:

        def ours() -> Any:
            return two.search(q, e, opts, within=within)

        def theirs() -> Any:
            _, rows = ref.search(index, q, 200, mask)
            full = two.rerank_parts[0][np.sort(np.maximum(rows, 0), axis=1)].astype(np.float32)
            return np.matmul(full, e[:, :, None])

        return ours, theirs
    return (lambda: searcher.search(q, opts, within=within)), (lambda: ref.search(index, q, opts.k, mask))


def _case_key(kind: str, size: int, threads: int, batch: int, filtered: bool) -> str:
    return f"{kind}_{size}_t{threads}_q{batch}" + ("_filter10" if filtered else "")


def _run_cases(
    name: str,
    metric: str,
    codes: np.ndarray,
    categories: np.ndarray,
    options: SearchBenchOptions,
    ref: Any | None,
    bandwidth: float,
    progress: Callable[[str], None],
    rerank: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Every (threads, batch, filter) case of one catalog (``scale``: of int8 codes)."""
    n = len(codes)
    searcher = Searcher(codes, np.arange(n), n, metric, code_scale=scale)
    two = RerankSearcher(searcher, rerank, scale=1 / 127 / 8, shortlist=200) if rerank is not None else None
    mask = categories == 0  # one category of ten: a 10% filter
    within = searcher.row_filter(mask)
    queries = synthetic_queries(codes, max(options.batches) * 2)
    if scale is not None:
        queries *= scale  # near dequantised rows
    if queries.dtype != np.uint8 and metric == "cosine":
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    embed = (
        np.random.default_rng(2).normal(size=(len(queries), rerank.shape[1])).astype(np.float32)
        if rerank is not None
        else None
    )
    index = (
        ref.index(
            "hamming" if metric == "hamming" else ("ip" if metric == "cosine" else "l2"),
            codes if scale is None else np.asarray(codes, np.float32) * scale,  # faiss: the dequantised rows
        )
        if ref is not None
        else None
    )
    out: dict[str, dict[str, Any]] = {}
    k = options.k
    for threads in options.threads:
        limiter = _limit_blas(threads)
        if ref is not None:
            ref.set_threads(threads)
        for batch in options.batches:
            for filtered in (False, True):
                key = _case_key(name, n, threads, batch, filtered)
                progress(key)
                sel = within if filtered else None
                opts = SearcherOptions(k=k, num_threads=threads)
                q = queries[:batch]

                ours, theirs = _case_calls(
                    searcher,
                    two,
                    ref,
                    index,
                    q,
                    embed[:batch] if embed is not None else None,
                    opts,
                    sel,
                    mask if filtered else None,
                )
                floor = 5 if batch == 1 else 2
                ours_ms = _time(ours, _calls(ours, options.budget_s, floor))
                per_query = [t / batch for t in ours_ms]
                row: dict[str, Any] = {
                    "median_ms": round(float(np.median(per_query)), 4),
                    "p95_ms": round(float(np.percentile(per_query, 95)), 4),
                    "calls": len(ours_ms),
                }
                scanned = searcher._scan.bytes_scanned(sel)
                row["scan_gbs"] = round(scanned / (row["median_ms"] / 1e3) / 1e9, 2)
                row["bandwidth_fraction"] = round(row["scan_gbs"] / bandwidth, 3) if bandwidth else None
                if ref is not None:
                    theirs_ms = [t / batch for t in _time(theirs, _calls(theirs, options.budget_s, floor))]
                    row["faiss_median_ms"] = round(float(np.median(theirs_ms)), 4)
                    row["faiss_p95_ms"] = round(float(np.percentile(theirs_ms, 95)), 4)
                    row["ratio"] = (
                        round(row["median_ms"] / row["faiss_median_ms"], 3) if row["faiss_median_ms"] > 0 else None
                    )
                    if two is None:
                        scores, _ = searcher.search(q, SearcherOptions(k=k), within=sel)
                        dist, _ = ref.search(index, q, k, mask if filtered else None)
                        ours_d = -scores if metric != "cosine" else scores
                        row["topk_agrees"] = _agree(ours_d, dist)
                out[key] = row
        if limiter is not None:
            limiter.restore_original_limits()
    return out


_RSS_CHILD = r"""
import json, os, sys
import numpy as np
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from vitrina.runtime.search import Searcher, SearcherOptions
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
path, metric = sys.argv[1], sys.argv[2]
scale = np.load(sys.argv[3]) if len(sys.argv) > 3 else None  # of int8 codes
def hwm_mb():  # peak RSS of this process image (ru_maxrss would include the parent's, inherited at fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
header = np.load(path, mmap_mode="r")
queries = np.asarray(header[:20]).copy()
if queries.dtype != np.uint8:
    queries = queries.astype(np.float32) * (scale if scale is not None else 1.0)
rows = len(header)
del header
code_items = np.arange(rows, dtype=np.int32)  # the caller's (a bundle maps its own code_items.npy)
base = rss_mb()
codes = np.load(path, mmap_mode="r")
searcher = Searcher(codes, code_items, rows, metric, code_scale=scale)
for q in queries:
    searcher.search(q, SearcherOptions(k=10))
steady = rss_mb()
print(json.dumps({"baseline_mb": round(base, 1), "rss_delta_mb": round(steady - base, 2), "peak_delta_mb": round(hwm_mb() - base, 2)}))
"""


def measure_rss(path: Path, metric: str, scale: Path | None = None) -> dict[str, float]:
    """Resident memory a fresh process gains by opening a searcher over the memory-mapped
    codes at ``path`` (int8 codes: with the scale at ``scale``) and answering 20 queries
    (MB beyond its baseline, steady and peak)."""
    extra = [str(scale)] if scale is not None else []
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(path), metric, *extra], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the memory process failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_bundle(
    base: Bundle, n: int, work: Path, progress: Callable[[str], None], *, code_dtype: str = "auto"
) -> dict[str, Any]:
    """Open time (median of 7 opens, page cache warm) and sketch end-to-end latency at 1 thread
    of a bundle of ``n`` products grown from ``base`` (its codes stored as ``code_dtype``, see
    :func:`scaled_bundle`)."""
    from vitrina.runtime.product_search import ProductSearch, ProductSearchOptions

    progress(f"{n}-product bundle, {code_dtype} codes (built once, cached in {work})")
    path = scaled_bundle(base, n, work, code_dtype=code_dtype)
    opens = []
    for _ in range(7):
        t = time.perf_counter()
        bundle = Bundle.open(path, verify=False)
        opens.append((time.perf_counter() - t) * 1e3)
    out: dict[str, Any] = {
        "path": str(path),
        "codes": f"{bundle.code_spec.name} {bundle.codes.dtype}",
        "open_ms": round(float(np.median(opens)), 2),
    }
    strokes = [s for _, s in bundle.eval_strokes()]
    if not strokes:
        return out
    progress("sketch end to end on the large bundle")
    limiter = _limit_blas(1)
    engine = ProductSearch(bundle, ProductSearchOptions(num_threads=1))
    try:
        t = time.perf_counter()
        engine.by_strokes(strokes[0], k=10)  # the first query also parses items.json
        out["first_query_ms"] = round((time.perf_counter() - t) * 1e3, 1)
        samples: list[float] = []
        for i in range(200):
            t0 = time.perf_counter_ns()
            engine.by_strokes(strokes[i % len(strokes)], k=10)
            samples.append((time.perf_counter_ns() - t0) / 1e6)
        out["sketch_median_ms"] = round(float(np.median(samples)), 3)
        out["sketch_p95_ms"] = round(float(np.percentile(samples, 95)), 3)
        out["sketch_stages_median_ms"] = _sketch_stages(engine, strokes)
    finally:
        engine.close()
        if limiter is not None:
            limiter.restore_original_limits()
    return out


def _sketch_stages(engine: Any, strokes: list, queries: int = 100) -> dict[str, float]:
    """Median ms of each stage of a sketch query: rasterise, encode (encoder + reducer), and
    search (scan, re-rank, products). Reaches into ProductSearch's parts, as a profile would."""
    from vitrina.runtime.rasterize import rasterize_strokes

    times: dict[str, list[float]] = {"rasterize": [], "encode": [], "search": []}
    for i in range(queries):
        t0 = time.perf_counter_ns()
        pixels = rasterize_strokes(strokes[i % len(strokes)], engine.raster)
        t1 = time.perf_counter_ns()
        embedding = engine._sketch.embed(pixels[None])
        t2 = time.perf_counter_ns()
        engine._search(embedding, 10)
        t3 = time.perf_counter_ns()
        for name, ns in (("rasterize", t1 - t0), ("encode", t2 - t1), ("search", t3 - t2)):
            times[name].append(ns / 1e6)
    return {name: round(float(np.median(v)), 3) for name, v in times.items()}


def run_search_bench(options: SearchBenchOptions, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run every case; returns the report (see the module docstring)."""
    work = Path(options.work)
    work.mkdir(parents=True, exist_ok=True)
    ref = reference()
    progress("memory bandwidth")
    bandwidth = memory_bandwidth_gbs()
    cases: dict[str, dict[str, Any]] = {}
    for size in options.sizes:
        for kind in options.kinds:
            progress(f"{kind} catalog of {size} rows")
            if kind == "twostage":
                codes, cats = synthetic_codes("hamming64", size, work)
                rng = np.random.default_rng(5)
                rerank = rng.integers(-127, 128, size=(size, 64), dtype=np.int8)
                cases.update(_run_cases("twostage", "hamming", codes, cats, options, ref, bandwidth, progress, rerank))
            else:
                metric = KINDS[kind][0]
                codes, cats = synthetic_codes(kind, size, work)
                scale = synthetic_scale(kind, size, work)
                cases.update(_run_cases(kind, metric, codes, cats, options, ref, bandwidth, progress, scale=scale))
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "kind": "search",
        "created": utc_stamp(),
        "options": {**asdict(options), "bundle": str(options.bundle) if options.bundle else None, "work": str(work)},
        "reference": None if ref is None else f"{ref.name} {getattr(ref, 'version', '')}".strip(),
        "memory_bandwidth_gbs": bandwidth,
        "cpu_count": os.cpu_count(),
        "cases": cases,
        "latency": {},  # the layout `vitrina bench compare` reads (search figures: "cases")
    }
    if max(options.sizes) >= 1_000_000:
        size = 1_000_000
        rss_kinds = (("hamming64", "hamming"), ("l2_8", "l2")) + (
            (("l2_8i8", "l2"),) if "l2_8i8" in options.kinds else ()
        )
        for kind, metric in rss_kinds:
            progress(f"resident memory: {kind}, {size} rows")
            synthetic_codes(kind, size, work)
            path = work / f"codes-{kind}-{size}-0.npy"
            rss = measure_rss(path, metric, scale_path(path) if KINDS[kind][1] == np.int8 else None)
            report[f"rss_{kind}_{size}_mb"] = rss["rss_delta_mb"]
            report[f"rss_{kind}_{size}_peak_mb"] = rss["peak_delta_mb"]
    if options.bundle is not None:
        base = Bundle.open(options.bundle, verify=False)
        metric = base.code_spec.metric
        cats = np.asarray(base.item_categories)[np.asarray(base.code_items)]
        demo = f"demo_{base.code_spec.name}"
        if len(base.codes) == len(base.items):
            cases.update(_run_cases(demo, metric, base.codes, cats % N_CATEGORIES, options, ref, bandwidth, progress))
        large = measure_bundle(base, 1_000_000, work, progress)
        report["bundle_1m"] = large
        report["open_1m_ms"] = large["open_ms"]
        if "sketch_p95_ms" in large:
            report["sketch_1m_p95_ms"] = large["sketch_p95_ms"]
        if large["codes"].endswith("int8") and base.codes.dtype != np.int8:
            # the same 1M bundle with the base's float codes, for comparison with what ships
            same = measure_bundle(base, 1_000_000, work, progress, code_dtype="base")
            report["bundle_1m_base_codes"] = same
            if "sketch_p95_ms" in same:
                report[f"sketch_1m_{base.codes.dtype}_p95_ms"] = same["sketch_p95_ms"]
    report["targets"] = check_targets(report)
    return report


def check_targets(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, where measured, plus "filtered no slower than unfiltered"."""
    out: dict[str, Any] = {}
    cases = report["cases"]
    for name, (what, target) in TARGETS.items():
        value = cases.get(name, {}).get("ratio") if what == "ratio" else report.get(name)
        if value is not None:
            out[name if what == "value" else f"{name} ratio"] = {
                "value": value,
                "target": target,
                "ok": value <= target,
            }
    slower = [
        key
        for key, row in cases.items()
        if key.endswith("_filter10") and row["median_ms"] > 1.05 * cases[key[: -len("_filter10")]]["median_ms"]
    ]
    filtered = [key for key in cases if key.endswith("_filter10")]
    if filtered:
        out["filtered_no_slower"] = {
            "value": f"{len(filtered) - len(slower)}/{len(filtered)}",
            "slower": slower,
            "ok": not slower,
        }
    agree = [row.get("topk_agrees") for row in cases.values() if "topk_agrees" in row]
    if agree:
        out["topk_agrees_with_reference"] = {"value": f"{sum(agree)}/{len(agree)}", "ok": all(agree)}
    return out


def table(report: dict[str, Any]) -> str:
    """The cases as a text table, then the whole-catalog figures and the targets."""
    head = f"{'case':<34}{'median ms':>10}{'p95 ms':>9}{'faiss ms':>10}{'ratio':>7}{'GB/s':>7}{'of bw':>7}  top-k"
    lines = [head, "-" * len(head)]
    for key, row in report["cases"].items():
        faiss_ms = row.get("faiss_median_ms")
        lines.append(
            f"{key:<34}{row['median_ms']:>10.3f}{row['p95_ms']:>9.3f}"
            f"{faiss_ms if faiss_ms is not None else float('nan'):>10.3f}{row.get('ratio') or float('nan'):>7.2f}"
            f"{row['scan_gbs']:>7.1f}{row['bandwidth_fraction'] or 0:>7.2f}  "
            + {True: "same", False: "DIFFERS", None: "-"}[row.get("topk_agrees")]
        )
    lines.append(f"memory bandwidth (np.copyto, read + write): {report['memory_bandwidth_gbs']} GB/s")
    for key in sorted(k for k in report if k.startswith(("rss_", "sketch_1m_")) or k == "open_1m_ms"):
        lines.append(f"{key}: {report[key]}")
    for name in ("bundle_1m", "bundle_1m_base_codes"):
        if name in report:
            lines.append(f"{name}: {json.dumps({k: v for k, v in report[name].items() if k != 'path'})}")
    for name, t in report["targets"].items():
        target = f" (<= {t['target']})" if "target" in t else ""
        lines.append(f"target {name}: {t['value']}{target} {'PASS' if t['ok'] else 'FAIL'}")
    return "\n".join(lines)


def write_search_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``report.json`` and a self-contained ``report.html`` (the table) in the folder ``out``."""
    import html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    html_path.write_text(
        "<!doctype html><meta charset='utf-8'><title>vitrina bench search</title>"
        "<style>body{font-family:sans-serif}pre{font-size:13px}</style>"
        f"<h1>vitrina bench search</h1><p>{html.escape(report['created'])}, reference "
        f"{html.escape(str(report['reference']))}</p><pre>{html.escape(table(report))}</pre>",
        encoding="utf-8",
    )
    return json_path, html_path


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"100000,1000000"`` → (100000, 1000000)."""
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(
            f"--sizes must be comma-separated whole numbers such as 100000,1000000; got {text!r}"
        ) from None
    if not sizes or min(sizes) < 100:
        raise ValueError(f"--sizes must list catalog sizes >= 100, got {text!r}")
    return sizes


def parse_list(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """Comma-separated names, each one of ``allowed``."""
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ValueError(f"--{what} must be some of {list(allowed)}, got {text!r}")
    return names
