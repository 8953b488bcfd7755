"""``vitrina eval --sweep``: every compact code method × size on a bundle's held-out sketches.

Starts from a float bundle (its catalog codes are the int8 photo encoder's
full embeddings) and its catalog folder (for train-split sketches, which the
hash heads and the distilled reducer learn from). Rows:

* ``float``: the full embedding, as shipped (reference);
* ``pca``: PCA to 4–64 dims;
* ``umap-exact``: umap-learn's own ``transform`` of each query (reference; needs numba);
* ``umap-landmark``: the device's numpy landmark interpolation;
* ``umap-distilled``: the MLP head distilled onto the fitted coordinates, run
  through LiteRT as a float TFLite model;
* ``umap-sup-*``: the same three with UMAP fitted using the catalog's category
  labels (umap-learn's supervised mode), 8 dims;
* ``itq`` / ``cbs`` / ``dsh``: binary codes, Hamming-ranked;
* ``two-stage``: shortlist with a compact code, re-rank with int8 full embeddings.

Catalog codes are always the real fit (PCA, umap-learn's fitted coordinates,
the hash head on photo embeddings); only the query side differs between the
UMAP rows. Per-query times are measured on the whole catalog (reduction of one
query, then a search over every catalog row), single-threaded, warm; cold
times come from fresh processes. Outputs: sweep.json, sweep.md, map_vs_dims.png
and pr_curves.png in the output folder.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitrina.export.training.hash_heads import HashTrainOptions, train_hash_head
from vitrina.export.training.umap_distill import (
    DistillOptions,
    distill_pairs,
    train_distilled_reducer,
)
from vitrina.runtime.bundle import Bundle, Rerank
from vitrina.runtime.codes import (
    LandmarkReducer,
    LinearReducer,
    SignHasher,
    pairwise_scores,
)
from vitrina.runtime.encoders import SketchEncoder, SketchEncoderOptions
from vitrina.runtime.evaluate import encode_eval_set, two_stage_scores
from vitrina.runtime.litert import make_interpreter
from vitrina.runtime.metrics import scored_metrics, scored_pr_curve
from vitrina.runtime.search import RerankSearcher, Searcher, SearchOptions

from .binary import ITQHasher
from .fit import quantize_rerank
from .pca import PCAReducer
from .umap import UMAPReducer

Reduce = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class SweepOptions:
    """Attributes:
    pca_dims, umap_dims, bits: sizes to sweep.
    umap_fit_sample: fit UMAP on this many catalog photos (None: all).
    landmarks: landmarks of the device's UMAP reducer.
    train_sketches: train-split sketches rendered for the heads and the distillation.
    shortlist: rows the two-stage search keeps.
    hash_steps: training steps per hash head.
    timing_queries: single queries timed per row.
    cold_runs: fresh processes per cold-start figure (0 skips).
    workers: processes for sketch rendering.
    progress: show progress bars.
    """

    pca_dims: tuple[int, ...] = (4, 8, 16, 32, 64)
    umap_dims: tuple[int, ...] = (4, 8, 16)
    bits: tuple[int, ...] = (64, 128, 256)
    umap_fit_sample: int | None = None
    landmarks: int = 5000
    train_sketches: int = 20000
    shortlist: int = 200
    hash_steps: int = 2000
    distill: DistillOptions = DistillOptions()
    timing_queries: int = 200
    cold_runs: int = 3
    workers: int = 2
    progress: bool = True


@dataclass(frozen=True, kw_only=True)
class SweepRow:
    """One method × size. Times in ms per query; bytes for the whole catalog.

    Attributes:
        method: float, pca, umap-exact, umap-landmark, umap-distilled, itq, cbs, dsh, two-stage.
        code: code type name (e.g. umap8, bits64); for two-stage, the first stage's.
        metrics: mAP, MRR, P@k, acc@k on the held-out sketches.
        pr: 11-point interpolated precision at recall 0, 0.1, ..., 1.
        reduce_ms: warm p50 of reducing one query embedding (None: no reduction).
        search_ms: warm p50 of one query's search over every catalog row.
        cold_ms: median first-query reduction in a fresh process, load included (None: not measured).
        code_bytes: catalog codes (+ re-rank embeddings for two-stage).
        reducer_bytes: what the device holds to reduce queries.
    """

    method: str
    code: str
    dims: int
    metrics: dict[str, float]
    pr: list[float]
    reduce_ms: float | None
    search_ms: float
    cold_ms: float | None
    code_bytes: int
    reducer_bytes: int
    note: str = ""


@dataclass(frozen=True)
class SweepReport:
    """Attributes: rows; facts (catalog size, query count, umap-learn model bytes and cold time)."""

    rows: list[SweepRow]
    facts: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """``{"facts": {...}, "rows": [row as a dict, ...]}``, JSON-serialisable."""
        return {"facts": self.facts, "rows": [asdict(r) for r in self.rows]}


@dataclass(frozen=True, kw_only=True)
class _Eval:
    queries: np.ndarray  # (Q, D) int8-encoder sketch embeddings
    query_labels: np.ndarray
    gallery_rows: np.ndarray  # (M,) catalog rows of the gallery
    gallery_labels: np.ndarray
    targets: np.ndarray


def _p50_ms(fn: Callable[[], object], n: int) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t) / 1e6)
    return round(float(np.median(times)), 4)


class _Sweep:
    """One sweep: the bundle's eval set, the train-split sketch embeddings, the rows scored so far."""

    def __init__(
        self, bundle: Bundle, catalog_dir: Path, options: SweepOptions, on_row: Callable[[SweepRow], None] | None = None
    ):
        if bundle.code_spec.family != "float":
            raise ValueError(
                f"the sweep starts from a float bundle's full embeddings; {bundle.path} has {bundle.code_spec.name} codes"
            )
        self.bundle, self.options, self.on_row = bundle, options, on_row
        self.photos = np.asarray(bundle.codes, dtype=np.float32)
        self.photo_labels = bundle.item_categories[bundle.code_items]
        e = encode_eval_set(bundle, "int8", num_threads=2)
        rows = bundle.first_code_rows[bundle.eval_set().gallery_items]
        self.eval = _Eval(
            queries=e.queries,
            query_labels=e.query_labels,
            gallery_rows=rows,
            gallery_labels=e.gallery_labels,
            targets=e.targets,
        )
        self.sketches, self.sketch_rows, self.sketch_labels = _train_sketch_embeddings(bundle, catalog_dir, options)
        self.rows: list[SweepRow] = []
        rng = np.random.default_rng(3)
        self.timing_rows = rng.choice(
            len(self.eval.queries), size=min(options.timing_queries, len(self.eval.queries)), replace=False
        )
        self.timing = self.eval.queries[self.timing_rows]
        self.facts: dict = {
            "catalog_rows": int(len(self.photos)),
            "embedding_dims": int(self.photos.shape[1]),
            "queries": int(len(self.eval.queries)),
            "gallery": int(len(self.eval.gallery_rows)),
            "train_sketches": int(len(self.sketches)),
        }

    # --- scoring -----------------------------------------------------------
    def add(
        self,
        method: str,
        code: str,
        dims: int,
        *,
        q_codes: np.ndarray,
        catalog: np.ndarray,
        metric: str,
        reduce: Reduce | None,
        reducer_bytes: int,
        cold_ms: float | None = None,
        note: str = "",
    ) -> None:
        """Score one method × size: q_codes (Q, d) are the held-out queries' codes,
        catalog (N, d) every catalog row's, compared with ``metric``."""
        g = catalog[self.eval.gallery_rows]
        scorer = lambda a, b: pairwise_scores(q_codes[a:b], g, metric)  # noqa: E731
        self._add_scored(
            method,
            code,
            dims,
            scorer=scorer,
            q_codes=q_codes,
            catalog=catalog,
            metric=metric,
            reduce=reduce,
            reducer_bytes=reducer_bytes,
            cold_ms=cold_ms,
            note=note,
        )

    def _add_scored(
        self,
        method: str,
        code: str,
        dims: int,
        *,
        scorer: Callable[[int, int], np.ndarray],
        q_codes: np.ndarray,
        catalog: np.ndarray,
        metric: str,
        reduce: Reduce | None,
        reducer_bytes: int,
        cold_ms: float | None,
        note: str,
        rerank: Rerank | None = None,
    ) -> None:
        e = self.eval
        metrics = scored_metrics(scorer, len(e.queries), e.query_labels, e.gallery_labels, e.targets)
        _, pr = scored_pr_curve(scorer, len(e.queries), e.query_labels, e.gallery_labels)
        searcher = Searcher(catalog, np.arange(len(catalog)), len(catalog), metric)
        probes = q_codes[self.timing_rows]
        i = iter(range(10**9))
        if rerank is None:
            search_ms = _p50_ms(
                lambda: searcher.search(probes[next(i) % len(probes)], SearchOptions(k=20)), len(probes)
            )
            code_bytes = int(catalog.nbytes)
        else:
            two = RerankSearcher(searcher, rerank.codes, rerank.scale, rerank.shortlist)

            def one():
                j = next(i) % len(probes)
                return two.search(probes[j : j + 1], self.timing[j : j + 1], SearchOptions(k=20))

            search_ms = _p50_ms(one, len(probes))
            code_bytes = int(catalog.nbytes + rerank.codes.nbytes)
        reduce_ms = None
        if reduce is not None:
            reduce_ms = _p50_ms(lambda: reduce(self.timing[next(i) % len(self.timing)][None]), len(self.timing))
        row = SweepRow(
            method=method,
            code=code,
            dims=dims,
            metrics=metrics.to_json(),
            pr=[round(float(v), 4) for v in pr],
            reduce_ms=reduce_ms,
            search_ms=search_ms,
            cold_ms=cold_ms,
            code_bytes=code_bytes,
            reducer_bytes=int(reducer_bytes),
            note=note,
        )
        self.rows.append(row)
        if self.on_row is not None:
            self.on_row(row)

    def add_two_stage(
        self,
        first: SweepRow,
        q_codes: np.ndarray,
        catalog: np.ndarray,
        metric: str,
        reduce: Reduce | None,
        reducer_bytes: int,
    ) -> None:
        rerank = quantize_rerank(self.photos, self.options.shortlist)
        g = catalog[self.eval.gallery_rows]
        g_full = rerank.codes[self.eval.gallery_rows].astype(np.float32) * rerank.scale
        q = self.eval.queries
        scorer = lambda a, b: two_stage_scores(
            pairwise_scores(q_codes[a:b], g, metric), q[a:b], g_full, self.options.shortlist
        )  # noqa: E731
        note = f"shortlist {self.options.shortlist} by {first.code}, re-rank int8 {self.photos.shape[1]}-d (memory-mapped; counted in full)"
        self._add_scored(
            f"two-stage ({first.method})",
            first.code,
            first.dims,
            scorer=scorer,
            q_codes=q_codes,
            catalog=catalog,
            metric=metric,
            reduce=reduce,
            reducer_bytes=reducer_bytes,
            cold_ms=first.cold_ms,
            note=note,
            rerank=rerank,
        )

    # --- methods -----------------------------------------------------------
    def run(self) -> SweepReport:
        o = self.options
        q = self.eval.queries
        self.add(
            "float",
            "float",
            self.photos.shape[1],
            q_codes=q,
            catalog=self.photos,
            metric="cosine",
            reduce=None,
            reducer_bytes=0,
            note="full int8-encoder embedding",
        )
        best_first: dict[str, tuple] = {}
        for d in o.pca_dims:
            pca = PCAReducer(d).fit(self.photos)
            red = LinearReducer(**pca.device_arrays())
            cat = pca.transform(self.photos).astype(np.float16)
            self.add(
                "pca",
                f"pca{d}",
                d,
                q_codes=red(q),
                catalog=cat,
                metric="l2",
                reduce=red,
                reducer_bytes=_nbytes(pca.device_arrays()),
                cold_ms=self._cold("linear", pca.device_arrays(), {}),
            )
            if d == 8:
                best_first["pca"] = (self.rows[-1], red(q), cat, "l2", red, _nbytes(pca.device_arrays()))
        for d in o.umap_dims:
            self._umap(d, best_first, supervised=False)
        if 8 in o.umap_dims:
            self._umap(8, best_first, supervised=True)
        for bits in o.bits:
            self._bits(bits, best_first)
        for first, q_codes, cat, metric, red, nbytes in best_first.values():
            self.add_two_stage(first, q_codes, cat, metric, red, nbytes)
        return SweepReport(self.rows, self.facts)

    def _umap(self, d: int, best_first: dict, supervised: bool) -> None:
        o = self.options
        q = self.eval.queries
        name = "umap-sup" if supervised else "umap"
        fit = UMAPReducer(d, fit_sample=o.umap_fit_sample, supervised=supervised).fit(self.photos, self.photo_labels)
        cat = np.empty((len(self.photos), d), dtype=np.float32)
        cat[fit.fit_rows_] = fit.embedding_
        rest = np.setdiff1d(np.arange(len(self.photos)), fit.fit_rows_)
        if len(rest):
            cat[rest] = fit.transform(self.photos[rest])
        cat16 = cat.astype(np.float16)
        pickled = fit.model_bytes()
        self.facts[f"{name}{d}_pickled_bytes"] = pickled
        exact_cold = self._umap_exact_cold(fit) if d == 8 and not supervised else None
        t = time.perf_counter()
        exact = fit.transform(q)
        self.facts[f"{name}{d}_exact_transform_ms_per_query_batched"] = round(
            (time.perf_counter() - t) * 1000 / len(q), 3
        )
        self.add(
            f"{name}-exact",
            f"umap{d}",
            d,
            q_codes=exact,
            catalog=cat16,
            metric="l2",
            reduce=fit.transform,
            reducer_bytes=pickled,
            cold_ms=exact_cold,
            note="umap-learn transform (needs fit data, pynndescent, numba)"
            + ("; fitted with category labels" if supervised else ""),
        )
        arrays = fit.landmarks(o.landmarks)
        lm = LandmarkReducer(arrays["landmarks"], arrays["positions"], fit.n_neighbors)
        self.add(
            f"{name}-landmark",
            f"umap{d}",
            d,
            q_codes=lm(q),
            catalog=cat16,
            metric="l2",
            reduce=lm,
            reducer_bytes=_nbytes(arrays),
            cold_ms=self._cold("landmark", arrays, {"n_neighbors": fit.n_neighbors}),
            note=f"{len(arrays['landmarks'])} landmarks",
        )
        landmark_row = self.rows[-1]
        inputs, targets = distill_pairs(
            self.photos, fit.fit_rows_, fit.embedding_, sketch_embeddings=self.sketches, sketch_rows=self.sketch_rows
        )
        model, result = train_distilled_reducer(inputs, targets, options=o.distill, progress=o.progress)
        head = _TFLiteHead(_head_tflite(model))
        self.add(
            f"{name}-distilled",
            f"umap{d}",
            d,
            q_codes=head(q),
            catalog=cat16,
            metric="l2",
            reduce=head,
            reducer_bytes=head.nbytes,
            cold_ms=self._cold_tflite(head.blob),
            note=f"MLP {o.distill.hidden}x2 → {d}, distilled from {result.pairs} pairs (mse {result.final_loss}), float TFLite",
        )
        distilled_row = self.rows[-1]
        if d == 8:
            if distilled_row.metrics["map"] >= landmark_row.metrics["map"]:
                best_first[name] = (distilled_row, head(q), cat16, "l2", head, head.nbytes)
            else:
                best_first[name] = (landmark_row, lm(q), cat16, "l2", lm, _nbytes(arrays))

    def _bits(self, bits: int, best_first: dict) -> None:
        o = self.options
        q = self.eval.queries
        candidates = []
        if bits <= self.photos.shape[1]:
            itq = ITQHasher(bits).fit(self.photos)
            candidates.append(("itq", itq.device_arrays(), "unsupervised, fitted on catalog photos"))
        for head_name in ("cbs", "dsh"):
            head = train_hash_head(
                self.sketches,
                self.photos[self.sketch_rows],
                self.sketch_labels,
                options=HashTrainOptions(head=head_name, bits=bits, steps=o.hash_steps),
                progress=o.progress,
            )
            candidates.append(
                (
                    head_name,
                    head.device_arrays(),
                    f"trained on {len(self.sketches)} sketch/photo pairs, loss {head.final_loss}",
                )
            )
        best = None
        for name, arrays, note in candidates:
            hasher = SignHasher(**arrays)
            cat = hasher(self.photos)
            self.add(
                name,
                f"bits{bits}",
                bits,
                q_codes=hasher(q),
                catalog=cat,
                metric="hamming",
                reduce=hasher,
                reducer_bytes=_nbytes(arrays),
                cold_ms=self._cold("sign", arrays, {}),
                note=note,
            )
            if bits == 64 and (best is None or self.rows[-1].metrics["map"] > best[0].metrics["map"]):
                best = (self.rows[-1], hasher(q), cat, "hamming", hasher, _nbytes(arrays))
        if best is not None:
            best_first["bits"] = best

    # --- cold starts ---------------------------------------------------------
    def _cold(self, kind: str, arrays: dict[str, np.ndarray], params: dict) -> float | None:
        if not self.options.cold_runs:
            return None
        with tempfile.TemporaryDirectory(prefix="vitrina-cold-") as tmp:
            for name, a in arrays.items():
                np.save(Path(tmp) / f"{name}.npy", a)
            probe = Path(tmp) / "probe.npy"
            np.save(probe, self.eval.queries[:1])
            return _median_child(_COLD_NUMPY, [tmp, kind, json.dumps(params), str(probe)], self.options.cold_runs)

    def _cold_tflite(self, blob: bytes) -> float | None:
        if not self.options.cold_runs:
            return None
        with tempfile.TemporaryDirectory(prefix="vitrina-cold-") as tmp:
            (Path(tmp) / "head.tflite").write_bytes(blob)
            probe = Path(tmp) / "probe.npy"
            np.save(probe, self.eval.queries[:1])
            return _median_child(_COLD_TFLITE, [str(Path(tmp) / "head.tflite"), str(probe)], self.options.cold_runs)

    def _umap_exact_cold(self, fit: UMAPReducer) -> float | None:
        if not self.options.cold_runs:
            return None
        with tempfile.TemporaryDirectory(prefix="vitrina-cold-") as tmp:
            (Path(tmp) / "umap.pkl").write_bytes(pickle.dumps(fit.model_, protocol=pickle.HIGHEST_PROTOCOL))
            probe = Path(tmp) / "probe.npy"
            np.save(probe, self.eval.queries[:1])
            out = [
                _child_json(_COLD_UMAP, [str(Path(tmp) / "umap.pkl"), str(probe)])
                for _ in range(self.options.cold_runs)
            ]
        self.facts["umap_exact_import_s"] = round(float(np.median([o["import_s"] for o in out])), 3)
        return round(float(np.median([o["ms"] for o in out])), 2)


def _nbytes(arrays: dict[str, np.ndarray]) -> int:
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


_COLD_NUMPY = """
import json, sys, time
import numpy as np
from vitrina.runtime.codes import reducer_from_arrays
t = time.perf_counter()
folder, kind, params, probe = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
names = {"linear": ("mean", "components"), "sign": ("mean", "projection", "bias"), "landmark": ("landmarks", "positions")}[kind]
reducer = reducer_from_arrays(kind, {n: np.load(f"{folder}/{n}.npy") for n in names}, params)
reducer(np.load(probe))
print(json.dumps({"ms": (time.perf_counter() - t) * 1000}))
"""

_COLD_TFLITE = """
import json, sys, time
import numpy as np
from vitrina.runtime.litert import make_interpreter
t = time.perf_counter()
it = make_interpreter(sys.argv[1], 1)
it.allocate_tensors()
it.set_tensor(it.get_input_details()[0]["index"], np.load(sys.argv[2]))
it.invoke()
it.get_tensor(it.get_output_details()[0]["index"])
print(json.dumps({"ms": (time.perf_counter() - t) * 1000}))
"""

_COLD_UMAP = """
import json, pickle, sys, time
import numpy as np
t0 = time.perf_counter()
import umap
t = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    model = pickle.load(f)
model.transform(np.load(sys.argv[2]))
print(json.dumps({"ms": (time.perf_counter() - t) * 1000, "import_s": t - t0}))
"""


def _child_json(code: str, args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start process failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median_child(code: str, args: list[str], runs: int) -> float:
    return round(float(np.median([_child_json(code, args)["ms"] for _ in range(runs)])), 2)


def _head_tflite(model) -> bytes:
    from vitrina.export.quantize import to_tflite

    return to_tflite(model, "float")


class _TFLiteHead:
    """The distilled head through LiteRT, one query per invoke as on a device."""

    def __init__(self, blob: bytes):
        self.blob = blob
        self.nbytes = len(blob)
        with tempfile.TemporaryDirectory(prefix="vitrina-head-") as tmp:
            path = Path(tmp) / "head.tflite"
            path.write_bytes(blob)
            self._it = make_interpreter(str(path), 1)  # the interpreter holds the model once created
            self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]["index"]
        self._out = self._it.get_output_details()[0]["index"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        out = []
        for row in x:
            self._it.set_tensor(self._in, row[None])
            self._it.invoke()
            out.append(self._it.get_tensor(self._out)[0].copy())
        return np.stack(out)


def _train_sketch_embeddings(
    bundle: Bundle, catalog_dir: Path, options: SweepOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render sketches of up to ``train_sketches`` train-split products and encode them (int8)."""
    from vitrina.export.build import TRAIN_SKETCH_SEED
    from vitrina.export.data.catalog import load_catalog
    from vitrina.export.data.sketch_synthesis import render_sketches

    raster = bundle.raster_options
    catalog = load_catalog(catalog_dir, image_size=raster.size, progress=options.progress)
    if [i.id for i in catalog.items] != [i.id for i in bundle.items]:
        raise ValueError(
            f"catalog {catalog_dir} is not the catalog bundle {bundle.path} was built from (product ids differ)"
        )
    train = np.flatnonzero([i.split == "train" for i in catalog.items])
    rng = np.random.default_rng(TRAIN_SKETCH_SEED)
    items = np.sort(rng.choice(train, size=min(options.train_sketches, len(train)), replace=False))
    rows = catalog.first_images()[items]
    sketches = render_sketches(
        catalog.images[rows],
        1,
        raster,
        seed=TRAIN_SKETCH_SEED,
        workers=options.workers,
        progress=options.progress,
        desc="train sketches",
    )[:, 0]
    with SketchEncoder.create_from_bundle(
        bundle, SketchEncoderOptions(precision="int8", num_threads=2, batch_size=64)
    ) as encoder:
        embeddings = encoder.embed(sketches).embeddings
    return embeddings, rows.astype(np.int64), bundle.item_categories[items]


def row_line(row: SweepRow) -> str:
    """One scored row as a progress line: method, code, mAP, P@10, acc@10 and the warm times in ms."""
    m = row.metrics
    return (
        f"  {row.method:15s} {row.code:8s} mAP {m['map']:.4f}  P@10 {m['p_at_10']:.4f}  acc@10 {m['acc_at_10']:.4f}  "
        f"reduce {row.reduce_ms} ms  search {row.search_ms} ms"
    )


def _write_row(row: SweepRow) -> None:
    tqdm.write(row_line(row))  # between the progress bars, not through them
    sys.stdout.flush()


def run_sweep(
    bundle_path: str | Path,
    catalog_dir: str | Path,
    out: str | Path,
    options: SweepOptions = SweepOptions(),
    on_row: Callable[[SweepRow], None] | None = None,
) -> SweepReport:
    """Run the sweep and write sweep.json, sweep.md and the plots into ``out``.

    ``on_row`` is called with each row as soon as it is scored; by default, when
    ``options.progress`` is on, the row is written as a line (:func:`row_line`)
    between the progress bars.
    """
    if on_row is None and options.progress:
        on_row = _write_row
    bundle = Bundle.open(bundle_path)
    report = _Sweep(bundle, Path(catalog_dir), options, on_row).run()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(report.to_json(), indent=2))
    (out / "sweep.md").write_text(markdown_table(report))
    plot_sweep(report, out)
    return report


def markdown_table(report: SweepReport) -> str:
    """The sweep as a Markdown table (one line per row), with the facts under it."""
    lines = [
        "| method | code | dims/bits | mAP | MRR | P@10 | acc@10 | reduce ms | search ms | cold ms | codes KiB | reducer KiB | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        m = r.metrics
        fmt = lambda v: "–" if v is None else f"{v:g}"  # noqa: E731
        lines.append(
            f"| {r.method} | {r.code} | {r.dims} | {m['map']:.4f} | {m['mrr']:.4f} | {m['p_at_10']:.4f} | {m['acc_at_10']:.4f} | "
            f"{fmt(r.reduce_ms)} | {r.search_ms:g} | {fmt(r.cold_ms)} | {r.code_bytes / 1024:.0f} | {r.reducer_bytes / 1024:.0f} | {r.note} |"
        )
    lines.append("")
    lines += [f"- {k}: {v}" for k, v in report.facts.items()]
    return "\n".join(lines) + "\n"


def plot_sweep(report: SweepReport, out: Path) -> None:
    """map_vs_dims.png (mAP by size per method) and pr_curves.png (8-dim/64-bit rows and the reference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    base = next((r for r in report.rows if r.method == "float"), None)
    if base:
        ax.axhline(base.metrics["map"], color="k", ls="--", label=f"float {base.dims}-d")
    for method in dict.fromkeys(
        r.method for r in report.rows if r.method != "float" and not r.method.startswith("two-stage")
    ):
        rows = sorted((r for r in report.rows if r.method == method), key=lambda r: r.dims)
        ax.plot([r.dims for r in rows], [r.metrics["map"] for r in rows], marker="o", label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("dims (float codes) or bits (binary codes)")
    ax.set_ylabel("mAP (held-out sketches)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "map_vs_dims.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    recall = np.linspace(0, 1, 11)
    for r in report.rows:
        if r.method == "float" or r.dims in (8, 64) or r.method.startswith("two-stage"):
            ax.plot(recall, r.pr, marker=".", label=f"{r.method} {r.code}")
    ax.set_xlabel("recall")
    ax.set_ylabel("interpolated precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=120)
    plt.close(fig)
