"""The activation gate: a bundle must open, load and answer before a device switches to it.

A signed bundle proves who published it, not that it works. Before sync (or
``vitrina bundles activate``) points ``current`` at a bundle, :func:`check_bundle`
smoke-tests it:

1. open it with full verification (every listed file hashed, the manifest
   schema-checked, only listed files read);
2. check every ``.npy`` header against its file size (``Bundle.array``) and
   that float arrays are finite (catalog codes, reducer, eval gallery);
3. load every model through LiteRT and embed a probe of its role, checking the
   output is (1, D) and finite;
4. run one query of each kind the bundle supports (strokes, photo, "similar",
   words) at every precision, each returning products with finite scores;
5. decode the first and last thumbnail sheets.

:func:`check_bundle_isolated` runs the same checks in a child process with a
time limit, so a model that crashes or hangs the interpreter fails the gate
instead of taking down the sync (or the kiosk that runs it). Run it by hand as
``python -m vitrina.runtime.sync.gate BUNDLE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vitrina.runtime.bundle import ROLES, Bundle, BundleError, BundleFormatError, BundleIntegrityError, check_finite
from vitrina.runtime.encoders import (
    EmbeddingResult,
    PhotoEncoder,
    PhotoEncoderOptions,
    SketchEncoder,
    SketchEncoderOptions,
)
from vitrina.runtime.product_search import ProductSearch, ProductSearchOptions
from vitrina.runtime.search import SearchResult

#: Seconds the isolated gate may take (model loads and a handful of queries take about a second).
GATE_TIMEOUT_S = 300.0
#: A drawing of a T-shirt, screen pixels: the strokes probe.
_PROBE_STROKES = [
    np.array([[30, 20], [10, 40], [22, 52], [30, 44], [30, 90], [70, 90], [70, 44], [78, 52], [90, 40], [70, 20]]),
    np.array([[30, 20], [50, 30], [70, 20]]),
]


class GateError(BundleError):
    """The bundle failed the activation gate; the message names the check and why.

    ``integrity`` is True when a file is missing or its size or hash differs from the
    manifest: the copy on this disk is damaged, which says nothing about the release.
    """

    def __init__(self, message: str, *, integrity: bool = False):
        super().__init__(message)
        self.integrity = integrity


@dataclass(frozen=True)
class GateReport:
    """A bundle that passed the gate.

    Attributes:
        path: the bundle checked.
        checks: one line per check that passed, e.g. ``"sketch int8: (1, 64) finite embedding"``.
        seconds: wall time of the whole gate.
    """

    path: Path
    checks: tuple[str, ...]
    seconds: float


def check_bundle(path: str | Path) -> GateReport:
    """Smoke-test the bundle at ``path`` in this process (see the module docstring).

    Raises:
        GateError: a check failed; the message names the file or query and what was wrong.
    """
    t0 = time.monotonic()
    checks: list[str] = []
    try:
        bundle = Bundle.open(path, verify=True)
        checks.append(f"opened: {len(bundle.items)} products, {len(bundle.codes)} codes, files verified")
        checks += _check_arrays(bundle)
        checks += _check_models(bundle)
        checks += _check_queries(bundle)
        checks += _check_thumbnails(bundle)
    except GateError:
        raise
    except BundleIntegrityError as exc:
        raise GateError(f"bundle {path} does not verify: {exc}", integrity=True) from None
    except (BundleError, ValueError, RuntimeError, OSError, MemoryError) as exc:
        raise GateError(f"bundle {path} failed the activation gate: {exc}") from None
    return GateReport(path=Path(path), checks=tuple(checks), seconds=round(time.monotonic() - t0, 3))


def check_bundle_isolated(path: str | Path, *, timeout_s: float = GATE_TIMEOUT_S) -> GateReport:
    """:func:`check_bundle` in a child Python process, limited to ``timeout_s`` seconds.

    Raises:
        GateError: a check failed, or the child crashed (a signal), hung past
            ``timeout_s`` or printed no report.
    """
    command = [sys.executable, "-m", "vitrina.runtime.sync.gate", "--json", str(path)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise GateError(f"bundle {path} failed the activation gate: it did not finish in {timeout_s:.0f} s") from None
    if done.returncode < 0:
        raise GateError(
            f"bundle {path} failed the activation gate: testing it crashed the process (signal {-done.returncode}); "
            "a model that crashes LiteRT would crash the kiosk"
        )
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise GateError(
            f"bundle {path} failed the activation gate: the check exited {done.returncode}: {tail[0]}"
        ) from None
    if not report.get("ok"):
        error = str(report.get("error", f"bundle {path} failed the activation gate"))
        raise GateError(error, integrity=report.get("integrity") is True)
    return GateReport(path=Path(path), checks=tuple(report["checks"]), seconds=float(report["seconds"]))


def _check_arrays(bundle: Bundle) -> list[str]:
    """Every listed .npy: header against size (``Bundle.array``), and float arrays finite."""
    checks = []
    for rel in sorted(bundle.manifest["files"]):
        if not rel.endswith(".npy"):
            continue
        array = bundle.array(rel, mmap=True)
        check_finite(array, where=f"{bundle.path}/{rel}")
        checks.append(f"{rel}: {array.dtype} {array.shape}")
    bundle.reducer()
    if bundle.has_rerank:
        bundle.rerank()
    if bundle.manifest.get("eval"):
        bundle.eval_set()
    bundle.eval_strokes()
    return checks


def _probe_photo() -> Image.Image:
    """A dark garment-like shape on white, 120 × 100 pixels."""
    image = Image.new("RGB", (120, 100), (255, 255, 255))
    ImageDraw.Draw(image).polygon([(30, 10), (90, 10), (100, 90), (20, 90)], fill=(40, 40, 90))
    return image


def _check_embedding(what: str, result: EmbeddingResult) -> str:
    e = result.embeddings
    if e.ndim != 2 or len(e) != 1 or not np.isfinite(e).all():
        raise GateError(f"{what}: the probe gave a {e.dtype} {e.shape} embedding that is not (1, D) and finite")
    return f"{what}: (1, {e.shape[1]}) finite embedding"


def _check_detector(bundle: Bundle, precision: str, what: str) -> str:
    """The detector runs on a probe photo and gives finite boxes inside it with scores in [0, 1]."""
    from vitrina.runtime.detector import Detector, DetectorOptions

    photo = _probe_photo()
    with Detector.create_from_bundle(bundle, DetectorOptions(precision=precision)) as detector:
        result = detector.detect(photo)
    boxes, scores = np.asarray(result.boxes, np.float64), np.asarray(result.scores, np.float64)
    w, h = photo.size
    inside = len(boxes) == 0 or (
        np.isfinite(boxes).all()
        and (boxes[:, [0, 1]] >= -1).all()
        and (boxes[:, 2] <= w + 1).all()
        and (boxes[:, 3] <= h + 1).all()
    )
    if not inside or not np.isfinite(scores).all() or ((scores < 0) | (scores > 1)).any():
        raise GateError(f"{what}: the probe photo gave boxes or scores that are not finite or not inside the photo")
    return f"{what}: {len(boxes)} boxes on the probe photo, finite"


def _check_text_visual(bundle: Bundle, precision: str, what: str) -> str:
    """The text-visual model codes a probe word and a probe photo into finite codes, and the
    bundle's text-visual codes load (one finite row per product)."""
    from vitrina.runtime.text_visual import TextVisualEncoder, TextVisualOptions, catalog_codes, square_crop

    with TextVisualEncoder.create_from_bundle(bundle, TextVisualOptions(precision=precision)) as encoder:
        words = encoder.ids(bundle.vocabulary.words[:1])[None]
        crop = square_crop(_probe_photo(), encoder.image_size)[None]
        result = encoder.encode(words=words, images=crop)
    if not np.isfinite(result.codes).all() or not np.isfinite(result.plausibility).all():
        raise GateError(f"{what}: the probe gave non-finite text-visual codes")
    codes = catalog_codes(bundle, precision)
    return f"{what}: (1, {result.codes.shape[1]}) finite code; {len(codes)} catalog codes"


def _check_models(bundle: Bundle) -> list[str]:
    """Load every model of a known role through LiteRT and embed a probe."""
    checks = []
    for role, precisions in sorted(bundle.manifest["models"].items()):
        if role not in ROLES:
            checks.append(f"{role}: not a role this runtime uses, not loaded")
            continue
        for precision in sorted(precisions):
            what = f"{bundle.path}/{precisions[precision]} ({role} {precision})"
            if role == "sketch":
                with SketchEncoder.create_from_bundle(bundle, SketchEncoderOptions(precision=precision)) as sketch:
                    checks.append(_check_embedding(what, sketch.embed_strokes(_PROBE_STROKES)))
            elif role == "textvisual":
                checks.append(_check_text_visual(bundle, precision, what))
            elif role == "detector":
                checks.append(_check_detector(bundle, precision, what))
            else:
                with PhotoEncoder.create_from_bundle(bundle, PhotoEncoderOptions(precision=precision)) as photo:
                    checks.append(_check_embedding(what, photo.embed_photos([_probe_photo()])))
    if "sketch" not in bundle.manifest["models"]:
        raise GateError(f"bundle {bundle.path} has no sketch model: a kiosk could not search it")
    return checks


def _check_queries(bundle: Bundle) -> list[str]:
    """One query of each kind at each precision of the sketch model."""
    checks = []
    for precision in sorted(bundle.manifest["models"]["sketch"]):
        with ProductSearch(bundle, ProductSearchOptions(precision=precision)) as engine:
            queries: dict[str, Callable[[], SearchResult]] = {
                "strokes": lambda: engine.by_strokes(_PROBE_STROKES),
                "similar": lambda: engine.similar(int(bundle.code_items[0])),
            }
            if engine.vocabulary:
                queries["words"] = lambda: engine.by_text(engine.vocabulary[0][0])
            if precision in bundle.manifest["models"].get("photo", {}):
                queries["photo"] = lambda: engine.by_photo(_probe_photo())
            for kind, query in queries.items():
                result = query()
                scores = np.array([m.score for m in result.matches], dtype=np.float64)
                if kind != "similar" and not len(scores):
                    raise GateError(f"bundle {bundle.path}: a {kind} query ({precision}) returned no products")
                if not np.isfinite(scores).all():
                    raise GateError(f"bundle {bundle.path}: a {kind} query ({precision}) returned non-finite scores")
                checks.append(f"{kind} query ({precision}): {len(scores)} products")
    return checks


def _check_thumbnails(bundle: Bundle) -> list[str]:
    n = len(bundle.items)
    for item in sorted({0, n - 1}):
        thumb = bundle.thumbnail(item)
        if thumb.ndim != 3 or thumb.shape[2] != 3 or thumb.shape[0] == 0:
            raise BundleFormatError(f"bundle {bundle.path}: the thumbnail of product {item} is {thumb.shape}")
    return [f"thumbnails: first and last of {n} decode"]


def main(argv: list[str] | None = None) -> int:
    """``python -m vitrina.runtime.sync.gate [--json] BUNDLE``: 0 passed, 2 failed."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    paths = [a for a in args if not a.startswith("--")]
    if len(paths) != 1:
        sys.stderr.write("usage: python -m vitrina.runtime.sync.gate [--json] BUNDLE\n")
        return 2
    try:
        report = check_bundle(paths[0])
    except GateError as exc:
        failed = {"ok": False, "error": str(exc), "integrity": exc.integrity}
        sys.stdout.write((json.dumps(failed) if as_json else f"FAILED: {exc}") + "\n")
        return 2
    if as_json:
        sys.stdout.write(json.dumps({"ok": True, "checks": list(report.checks), "seconds": report.seconds}) + "\n")
    else:
        sys.stdout.write("\n".join(report.checks) + f"\npassed in {report.seconds:.2f} s\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
