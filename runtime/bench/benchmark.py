"""QA device benchmark: the whole query path, memory and retrieval quality in one report.

``vitrina bench run`` times every stage of every query type the bundle
supports, after warm-up, for each thread count:

* ``sketch``: stroke list → rasterise → sketch encoder → search (top-k);
* ``photo``: PNG bytes → decode + prepare → photo encoder → search;
* ``photo_scene`` (bundles with a detector): a held-out scene photo as JPEG bytes →
  decode → detect → crop the largest product (padded square) → photo encoder → search;
* ``similar``: a product → its catalog code → search;
* ``sketch_color`` (bundles with colour families): a held-out stroke list with a
  colour fill → ``ProductSearch.by_strokes`` whole (shape stage over
  ``COLOR_SHORTLIST`` products, then colour and category), one stage.

It also measures cold start in fresh processes (process start → bundle open →
first result), peak resident memory, bundle size by part, accuracy on the
bundle's eval set (float and int8, PR curves), the environment, and
cross-checks against the anchors when present (raw LiteRT invoke loop, LiteRT's
``benchmark_model`` binary, faiss). Everything lands in a versioned
``report.json``; :mod:`vitrina.runtime.bench.report_html` renders ``report.html``.

Numpy + LiteRT only, so it runs on the device being qualified.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.color_search import ColorFamilies
from vitrina.runtime.detector import Detector, DetectorOptions, crop_box
from vitrina.runtime.encoders import PhotoEncoder, PhotoEncoderOptions, SketchEncoder, SketchEncoderOptions
from vitrina.runtime.evaluate import encode_eval_set
from vitrina.runtime.litert import make_interpreter
from vitrina.runtime.metrics import scored_pr_curve
from vitrina.runtime.photo import prepare_photo
from vitrina.runtime.product_search import ProductSearch, ProductSearchOptions
from vitrina.runtime.rasterize import PenStroke, rasterize_strokes
from vitrina.runtime.search import CatalogIndex, SearchOptions
from vitrina.runtime.timeutil import utc_stamp

from .stats import latency_stats

REPORT_VERSION = 1
TARGETS = {"sketch_p95_ms": 15.0, "cold_start_s": 1.5, "overhead_ratio": 0.10, "photo_scene_p95_ms": 25.0}

Stage = tuple[str, Callable[[Any], Any]]


@dataclass(frozen=True)
class BenchOptions:
    """Attributes:
    threads: interpreter thread counts to measure.
    queries: timed queries per query type (after warm-up).
    warmup: untimed queries first.
    k: products returned per query.
    cold_runs: fresh processes for the cold-start figure (0 skips it).
    precision: encoders to time (``int8`` as shipped, or ``float``).
    accuracy: run the eval set (float and int8) and PR curves.
    """

    threads: tuple[int, ...] = (1,)
    queries: int = 200
    warmup: int = 10
    k: int = 20
    cold_runs: int = 3
    precision: str = "int8"
    accuracy: bool = True

    def __post_init__(self) -> None:
        if not self.threads or any(t < 1 for t in self.threads):
            raise ValueError(f"threads must be one or more counts >= 1, got {self.threads}")
        if self.queries < 1 or self.warmup < 0 or self.k < 1 or self.cold_runs < 0:
            raise ValueError("queries and k must be >= 1; warmup and cold_runs >= 0")


def time_pipeline(stages: Sequence[Stage], inputs: Sequence[Any], warmup: int) -> dict[str, list[float]]:
    """Run every input through the stages; return per-stage and total latencies (ms).

    The total is timed around the whole chain, independently of the stage
    timers, so comparing it with the sum of stage medians shows the overhead.
    """
    samples: dict[str, list[float]] = {name: [] for name, _ in stages}
    samples["total"] = []
    clock = time.perf_counter_ns
    for n, x in enumerate([*inputs[:warmup], *inputs]):
        start = clock()
        for name, fn in stages:
            t = clock()
            x = fn(x)
            if n >= warmup:
                samples[name].append((clock() - t) / 1e6)
        if n >= warmup:
            samples["total"].append((clock() - start) / 1e6)
    return samples


def _cycle(items: Sequence[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)]


def query_inputs(bundle: Bundle, n: int, rng: np.random.Generator) -> dict[str, list[Any]]:
    """Inputs per query type: held-out stroke lists, product photos as PNG bytes, product indices."""
    inputs: dict[str, list[Any]] = {}
    strokes = [s for _, s in bundle.eval_strokes()]
    if strokes:
        inputs["sketch"] = _cycle(strokes, n)
    if strokes and bundle.manifest.get("colors"):
        rgb = ColorFamilies.from_mapping(bundle.manifest["colors"]).rgb
        coloured = [
            [
                *s,
                PenStroke(
                    np.asarray(max(s, key=len), dtype=np.float64),
                    color=tuple(int(v) for v in rgb[i % len(rgb)]),
                    fill=True,
                ),
            ]
            for i, s in enumerate(strokes)
        ]
        inputs["sketch_color"] = _cycle(coloured, n)
    picks = rng.choice(len(bundle.items), size=min(n, len(bundle.items)), replace=False)
    pngs = []
    for i in picks[: min(len(picks), 50)]:
        buf = io.BytesIO()
        Image.fromarray(bundle.thumbnail(int(i))).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    inputs["photo"] = _cycle(pngs, n)
    inputs["similar"] = _cycle([int(i) for i in picks], n)
    if bundle.has_detector and bundle.manifest.get("eval_scenes"):
        jpegs = []
        for scene in bundle.eval_scenes().images[:50]:
            buf = io.BytesIO()
            Image.fromarray(scene).save(buf, format="JPEG", quality=90)
            jpegs.append(buf.getvalue())
        inputs["photo_scene"] = _cycle(jpegs, n)
    return inputs


def pipelines(bundle: Bundle, threads: int, precision: str, k: int) -> tuple[dict[str, list[Stage]], list[Any]]:
    """Each query type as its stages (name, callable) on one set of encoders; returns them and the objects to close."""
    sketch = SketchEncoder.create_from_bundle(bundle, SketchEncoderOptions(num_threads=threads, precision=precision))
    photo = PhotoEncoder.create_from_bundle(bundle, PhotoEncoderOptions(num_threads=threads, precision=precision))
    index = CatalogIndex.create_from_bundle(bundle)
    options = SearchOptions(k=k)
    first_row = bundle.first_code_rows
    raster = bundle.raster_options
    size = photo.input_shape[0]

    def decode(png: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(png)) as im:
            return prepare_photo(im, size)[None]

    search: Stage = ("search", lambda q: index.search(q, options))  # reduction to the bundle's code type included
    closers: list[Any] = [sketch, photo]
    colour_stages: dict[str, list[Stage]] = {}
    if bundle.manifest.get("colors"):
        engine = ProductSearch(bundle, ProductSearchOptions(precision, threads))
        closers.append(engine)
        colour_stages["sketch_color"] = [("search", lambda s: engine.by_strokes(s, k))]
    scene_stages: dict[str, list[Stage]] = {}
    if bundle.has_detector:
        detector = Detector.create_from_bundle(bundle, DetectorOptions(num_threads=threads, precision=precision))
        closers.append(detector)

        def decode_scene(jpeg: bytes) -> Image.Image:
            with Image.open(io.BytesIO(jpeg)) as im:
                return im.convert("RGB")

        def crop(found: tuple[Image.Image, Any]) -> np.ndarray:
            image, detections = found
            largest = detections.largest()
            part = image if largest is None else crop_box(image, detections.boxes[largest])
            return prepare_photo(part, size)[None]

        scene_stages["photo_scene"] = [
            ("decode", decode_scene),
            ("detect", lambda im: (im, detector.detect(im))),
            ("crop", crop),
            ("photo_encoder", lambda x: photo.embed(x).embeddings),
            search,
        ]
    return (
        {
            "sketch": [
                ("rasterise", lambda s: rasterize_strokes(s, raster)[None]),
                ("sketch_encoder", lambda x: sketch.embed(x).embeddings),
                search,
            ],
            "photo": [("decode", decode), ("photo_encoder", lambda x: photo.embed(x).embeddings), search],
            "similar": [
                ("lookup", lambda i: np.array([first_row[i]])),
                ("search", lambda rows: index.search_rows(rows, options)),
            ],
            **scene_stages,
            **colour_stages,
        },
        closers,
    )


def measure_latency(
    bundle: Bundle, options: BenchOptions, progress: Callable[[str], None] = lambda _: None
) -> tuple[dict, dict]:
    """Per-stage latency for each thread count and query type.

    Returns:
        summary ``{threads: {query_type: {stage: stats, ..., "overhead": ratio}}}``
        and the raw samples (ms) with the same keys, for histograms.
    """
    rng = np.random.default_rng(0)
    inputs = query_inputs(bundle, options.queries, rng)
    summary: dict[str, dict] = {}
    raw: dict[str, dict] = {}
    for threads in options.threads:
        by_type, encoders = pipelines(bundle, threads, options.precision, options.k)
        summary[str(threads)], raw[str(threads)] = {}, {}
        for qtype, stages in by_type.items():
            if qtype not in inputs:
                continue
            progress(f"latency: {qtype}, {threads} thread(s)")
            samples = time_pipeline(stages, inputs[qtype], options.warmup)
            stats: dict[str, Any] = {name: latency_stats(v) for name, v in samples.items()}
            stage_sum = float(sum(stats[name]["p50"] for name, _ in stages))
            stats["stage_sum_p50"] = round(stage_sum, 4)
            stats["overhead"] = round(stats["total"]["p50"] / stage_sum - 1.0, 4) if stage_sum > 0 else 0.0
            summary[str(threads)][qtype] = stats
            raw[str(threads)][qtype] = {name: [round(x, 4) for x in v] for name, v in samples.items()}
        for encoder in encoders:
            encoder.close()
    return summary, raw


_COLD_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.encoders import SketchEncoder, SketchEncoderOptions
from vitrina.runtime.rasterize import rasterize_strokes
from vitrina.runtime.search import CatalogIndex, SearchOptions
t_import = time.perf_counter()
bundle = Bundle.open(sys.argv[1])
encoder = SketchEncoder.create_from_bundle(bundle, SketchEncoderOptions(precision=sys.argv[3]))
searcher = CatalogIndex.create_from_bundle(bundle)
t_open = time.perf_counter()
strokes = json.loads(sys.argv[2])
import numpy as np
query = encoder.embed(rasterize_strokes([np.asarray(s, float) for s in strokes], bundle.raster_options)[None]).embeddings
scores, ids = searcher.search(query, SearchOptions(k=20))
t_first = time.perf_counter()
print(json.dumps({"import_s": t_import - t0, "open_s": t_open - t_import, "first_query_s": t_first - t_open, "top": int(ids[0, 0])}), flush=True)
"""


def measure_cold_start(bundle: Bundle, runs: int, precision: str = "int8") -> dict[str, Any]:
    """Fresh ``python`` processes: wall time from spawn to the first result line."""
    strokes = bundle.eval_strokes()
    drawing = [s.tolist() for s in strokes[0][1]] if strokes else [[[0, 0], [10, 0], [10, 30], [0, 30], [0, 0]]]
    results = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _COLD_CHILD, str(bundle.path), json.dumps(drawing), precision],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start process failed: {proc.stderr.strip()[-500:]}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(
            {"wall_s": round(wall, 4), **{k: round(v, 4) if isinstance(v, float) else v for k, v in child.items()}}
        )
    if not results:
        return {"runs": []}
    walls = [r["wall_s"] for r in results]
    return {"runs": results, "median_s": round(float(np.median(walls)), 4), "max_s": round(max(walls), 4)}


_MEMORY_CHILD = """
import json, resource, sys
import numpy as np
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.encoders import PhotoEncoder, PhotoEncoderOptions, SketchEncoder, SketchEncoderOptions
from vitrina.runtime.rasterize import rasterize_strokes
from vitrina.runtime.search import CatalogIndex, SearchOptions
bundle = Bundle.open(sys.argv[1])
sketch = SketchEncoder.create_from_bundle(bundle, SketchEncoderOptions(precision=sys.argv[2]))
photo = PhotoEncoder.create_from_bundle(bundle, PhotoEncoderOptions(precision=sys.argv[2]))
searcher = CatalogIndex.create_from_bundle(bundle)
strokes = [s for _, s in bundle.eval_strokes()] or [[np.array([[0, 0], [10, 0], [10, 30]], float)]]
for i in range(100):
    searcher.search(sketch.embed(rasterize_strokes(strokes[i % len(strokes)], bundle.raster_options)[None]).embeddings, SearchOptions(k=20))
from PIL import Image
from vitrina.runtime.photo import prepare_photo
for i in range(min(20, len(bundle.items))):
    photo_query = prepare_photo(Image.fromarray(bundle.thumbnail(i)), photo.input_shape[0])[None]
    searcher.search(photo.embed(photo_query).embeddings, SearchOptions(k=20))
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
"""


def measure_memory(bundle: Bundle, precision: str = "int8") -> dict[str, Any]:
    """Peak resident memory of a fresh process serving 120 queries, and bundle bytes by part."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(bundle.path), precision], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory process failed: {proc.stderr.strip()[-500:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"peak_rss_mb": round(child["peak_rss_mb"], 1), "bundle_bytes": bundle.size_by_part()}


def measure_accuracy(bundle: Bundle, threads: int = 2) -> dict[str, Any] | None:
    """Eval-set metrics (float and int8 side by side) and PR curves; None without an eval set."""
    if not bundle.manifest.get("eval"):
        return None
    out: dict[str, Any] = {"pr_curve": {}, "identification": None}
    eval_set = bundle.eval_set()
    for precision in ("float", "int8"):
        e = encode_eval_set(bundle, precision, threads, eval_set)
        out[precision] = e.metrics().to_json()
        recall, curve = scored_pr_curve(e.scorer(), len(e.queries), e.query_labels, e.gallery_labels)
        out["pr_curve"]["recall"] = [round(float(r), 3) for r in recall]
        out["pr_curve"][precision] = [round(float(p), 4) for p in curve]
        out["queries"], out["gallery"] = len(e.queries), len(e.gallery)
    return out


def environment(bundle: Bundle) -> dict[str, Any]:
    """CPU, cores, OS, library versions and the bundle's manifest hash."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ai_edge_litert": version("ai-edge-litert"),
        "tflite_runtime": version("tflite-runtime"),
        "vitrina": version("vitrina"),
        "manifest_sha256": hashlib.sha256((bundle.path / "manifest.json").read_bytes()).hexdigest(),
    }


def _raw_invoke_ms(model_path: Path, threads: int, between: Callable[[], Any] | None = None, runs: int = 100) -> float:
    """Median latency (ms) of a bare set_tensor/invoke/get_tensor on zeros.

    ``between`` runs untimed before each invoke: passing a catalog search puts
    the caches in the state the pipeline's encoder stage meets (a search scans
    tens of MB of codes and evicts the model's weights and arena).
    """
    interpreter = make_interpreter(str(model_path), threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = np.zeros(inp["shape"], dtype=inp["dtype"])
    times = []
    for i in range(runs + 10):
        if between is not None:
            between()
        t = time.perf_counter_ns()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        interpreter.get_tensor(out["index"])
        if i >= 10:
            times.append((time.perf_counter_ns() - t) / 1e6)
    return round(float(np.median(times)), 4)


def _benchmark_model_ms(model_path: Path, threads: int) -> float | None:
    """LiteRT's ``benchmark_model`` average inference time (ms), if the binary is installed."""
    binary = shutil.which("benchmark_model")
    if binary is None:
        return None
    proc = subprocess.run(
        [binary, f"--graph={model_path}", f"--num_threads={threads}", "--num_runs=100"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    for line in (proc.stdout + proc.stderr).splitlines():
        if "Inference (avg):" in line:
            return round(float(line.split("Inference (avg):")[1].split()[0]) / 1000.0, 4)
    return None


def cross_checks(bundle: Bundle, latency: dict, options: BenchOptions) -> dict[str, Any]:
    """Our stage timings against the anchors: bare LiteRT invokes, benchmark_model and the registered yardsticks (faiss)."""
    threads = options.threads[0]
    stages = latency[str(threads)]
    checks: dict[str, Any] = {"threads": threads, "models": {}}
    index = CatalogIndex.create_from_bundle(bundle)
    search = lambda: index.search_rows(np.array([0]), SearchOptions(k=options.k))  # noqa: E731
    for role, qtype in (("sketch", "sketch"), ("photo", "photo")):
        if qtype not in stages:
            continue
        path = bundle.model_path(role, options.precision)
        ours = stages[qtype][f"{role}_encoder"]["p50"]
        raw = _raw_invoke_ms(path, threads, between=search)
        checks["models"][role] = {
            "stage_p50_ms": ours,
            "raw_invoke_p50_ms": raw,
            "raw_invoke_hot_p50_ms": _raw_invoke_ms(path, threads),
            "benchmark_model_ms": _benchmark_model_ms(path, threads),
            "ratio_stage_to_raw": round(ours / raw, 3) if raw > 0 else None,
        }
    for name, yardstick in yardsticks().items():
        checks[name] = yardstick(bundle, options)
    return checks


def yardsticks() -> dict[str, Callable[[Bundle, BenchOptions], dict[str, Any] | None]]:
    """Search yardsticks registered in the entry-point group ``vitrina.bench.yardsticks``.

    Each is called with the bundle and the options and returns a dict for the
    report, or None when its library is not installed. faiss is one (in
    ``vitrina.export.yardsticks``): a bench/dev dependency the device never imports.
    """
    found = {}
    for ep in metadata.entry_points(group="vitrina.bench.yardsticks"):
        found[ep.name] = ep.load()
    return found


def check_targets(report: dict[str, Any]) -> dict[str, Any]:
    """The QA targets for 1 thread, where measured."""
    out: dict[str, Any] = {}
    one = report["latency"].get("1", {})
    if "sketch" in one:
        p95 = one["sketch"]["total"]["p95"]
        out["sketch_p95_ms"] = {"value": p95, "target": TARGETS["sketch_p95_ms"], "ok": p95 <= TARGETS["sketch_p95_ms"]}
        overhead = abs(one["sketch"]["overhead"])
        out["overhead_ratio"] = {
            "value": overhead,
            "target": TARGETS["overhead_ratio"],
            "ok": overhead <= TARGETS["overhead_ratio"],
        }
    if "photo_scene" in one:
        p95 = one["photo_scene"]["total"]["p95"]
        target = TARGETS["photo_scene_p95_ms"]
        out["photo_scene_p95_ms"] = {"value": p95, "target": target, "ok": p95 <= target}
    cold = report.get("cold_start") or {}
    if cold.get("runs"):
        out["cold_start_s"] = {
            "value": cold["median_s"],
            "target": TARGETS["cold_start_s"],
            "ok": cold["median_s"] <= TARGETS["cold_start_s"],
        }
    return out


def run_benchmark(
    bundle_path: str | Path, options: BenchOptions = BenchOptions(), progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Run everything and return the report dict (see module docstring)."""
    bundle = Bundle.open(bundle_path)
    latency, raw = measure_latency(bundle, options, progress)
    progress("cold start")
    cold = measure_cold_start(bundle, options.cold_runs, options.precision) if options.cold_runs else {"runs": []}
    progress("memory")
    memory = measure_memory(bundle, options.precision)
    progress("accuracy")
    accuracy = measure_accuracy(bundle) if options.accuracy else None
    progress("cross-checks")
    m = bundle.manifest
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "created": utc_stamp(),
        "bundle": {
            "path": str(bundle.path),
            "catalog": m["catalog"]["name"],
            "items": m["catalog"]["items"],
            "code_type": m["codes"]["type"],
            "dims": m["codes"]["dims"],
            "created": m["created"],
        },
        "options": asdict(options),
        "environment": environment(bundle),
        "latency": latency,
        "cold_start": cold,
        "memory": memory,
        "accuracy": accuracy,
        "cross_checks": cross_checks(bundle, latency, options),
        "raw_ms": raw,
    }
    report["targets"] = check_targets(report)
    return report


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into the folder ``out``."""
    from .report_html import render_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path


def read_rss_mb() -> float:
    """Current resident memory of this process, MB (Linux /proc; ru_maxrss elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
