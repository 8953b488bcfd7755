"""``vitrina detector-sweep``: how the detector's input size, grid and training change its accuracy.

Each variant composes the demo profile's scenes at its input size (the same seeds,
so the same 4,000 training and 500 held-out scenes as ``vitrina build``), trains the
detector from scratch in its own process (``training/background.py``; ``--jobs``
at a time), exports float and int8 TFLite and measures both through LiteRT on the
held-out scenes: AP50 and AP@[.5:.95] (pycocotools), recall at IoU >= 0.5 at score
0.05 (all scenes and 5-product scenes) and boxes per scene. NMS runs at
``--iou``. Outputs ``detector_sweep.json`` and ``detector_sweep.md`` in ``--out``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vitrina.runtime.bundle import SceneSet

from .build_detector import EVAL_SCENE_SEED, TRAIN_SCENE_SEED, DetectorProfile, product_pool
from .data.catalog import Catalog, load_catalog
from .data.scenes import compose_scenes
from .identify_products import packshot_mask
from .profiles import get_profile
from .quantize import to_tflite
from .training.detector import DetectorTraining, start_detector_training

#: Recall is reported at this score threshold (the lowest the build's tuning tries).
SCORE = 0.05


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One detector setting: input side (pixels), grid stride, gradient clip norm (None: none), steps."""

    name: str
    size: int
    stride: int = 8
    clip_norm: float | None = None
    steps: int = 1400


#: The variants README "Detector and photo search" reports, the shipped one last.
VARIANTS = {
    v.name: v
    for v in (
        Variant(name="128", size=128),
        Variant(name="128-s4", size=128, stride=4),
        Variant(name="160", size=160),
        Variant(name="192", size=192),
        Variant(name="192-clip", size=192, clip_norm=10.0),
        Variant(name="192-clip-s4", size=192, stride=4, clip_norm=10.0),
        Variant(name="192-clip-2400", size=192, clip_norm=10.0, steps=2400),
    )
}


def parse_variants(names: str | None) -> list[Variant]:
    """The variants named in a comma-separated list (None: all of them, in :data:`VARIANTS` order).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if names is None:
        return list(VARIANTS.values())
    picked = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in picked if n not in VARIANTS]
    if unknown or not picked:
        raise ValueError(f"unknown detector variant(s) {unknown or names!r}; choose from {', '.join(VARIANTS)}")
    return [VARIANTS[n] for n in picked]


def _scenes(
    catalog: Catalog, categories: list[str], labels: np.ndarray, profile: DetectorProfile, size: int
) -> tuple[SceneSet, SceneSet]:
    opts = replace(profile.scenes, size=size)
    usable = packshot_mask(catalog.images)[catalog.first_images()]  # as the build: packshots only
    train = compose_scenes(
        *product_pool(catalog, labels, "train", usable),
        categories,
        count=profile.train_scenes,
        seed=TRAIN_SCENE_SEED,
        options=opts,
    )
    held_out = compose_scenes(
        *product_pool(catalog, labels, "test", usable),
        categories,
        count=profile.eval_scenes,
        seed=EVAL_SCENE_SEED,
        options=opts,
    )
    return train, held_out


def measure(model_path: Path, scenes: SceneSet, *, iou: float) -> dict[str, float]:
    """AP50, AP, recall@0.5 (all and 5-product scenes) and boxes per scene of one TFLite detector."""
    from vitrina.runtime.detector import Detector, DetectorOptions
    from vitrina.runtime.evaluate_detect import coco_ap, covered, detect_scenes

    options = DetectorOptions(model_path=str(model_path), num_threads=1, iou_threshold=iou)
    with Detector.create_from_options(options) as detector:
        dets = detect_scenes(detector, scenes)
    shipped = dets.shipped(replace(options, score_threshold=SCORE))
    ap = coco_ap(scenes, dets, by_category=False) or {"ap50": float("nan"), "ap": float("nan")}
    hit = covered(scenes, shipped)
    five = scenes.products_per_scene()[scenes.box_scene] == 5
    return {
        "ap50": ap["ap50"],
        "ap": ap["ap"],
        "recall50": round(float(hit.mean()), 4),
        "recall50_5_products": round(float(hit[five].mean()), 4) if five.any() else float("nan"),
        "boxes_per_scene": round(float(np.mean([len(b) for b in shipped.boxes])), 2),
    }


def run_sweep(
    catalog_dir: Path, out: Path, *, variants: list[Variant], jobs: int = 2, iou: float = 0.5
) -> list[dict[str, Any]]:
    """Train, export and measure every variant (``jobs`` trainings at a time); write the report.

    Returns:
        one row per variant: its settings, training seconds and ``{"float": figures, "int8": figures}``.
    """
    demo = get_profile("demo")
    profile = demo.detector
    if profile is None:
        raise ValueError("the demo profile has no detector to sweep")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    catalog = load_catalog(catalog_dir, image_size=max(demo.input_size, demo.thumbnail_size))
    categories = list(dict.fromkeys(item.category for item in catalog.items))
    labels = np.array([categories.index(item.category) for item in catalog.items], np.int32)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    scenes: dict[int, tuple[SceneSet, SceneSet]] = {}
    for start in range(0, len(variants), jobs):
        running: list[tuple[Variant, DetectorTraining]] = []
        for v in variants[start : start + jobs]:
            if v.size not in scenes:
                scenes[v.size] = _scenes(catalog, categories, labels, profile, v.size)
            train = scenes[v.size][0]
            spec = replace(profile.spec(len(categories)), input_size=v.size, stride=v.stride)
            options = replace(profile.train, steps=v.steps, clip_norm=v.clip_norm)
            running.append(
                (
                    v,
                    start_detector_training(
                        train, spec=spec, options=options, checkpoint_dir=out / v.name, progress=False
                    ),
                )
            )
        for v, training in running:
            model, result = training.result(progress=True)
            train, held_out = scenes[v.size]
            row: dict[str, Any] = asdict(v) | {"train_seconds": result.seconds, "final_loss": result.final_loss}
            with tempfile.TemporaryDirectory(prefix="vitrina-sweep-") as tmp:
                for precision in ("float", "int8"):
                    path = Path(tmp) / f"{precision}.tflite"
                    calib = train.images[: profile.calibration_samples] if precision == "int8" else None
                    path.write_bytes(to_tflite(model, precision, calib))
                    row[precision] = measure(path, held_out, iou=iou)
            rows.append(row)
            tqdm.write(table([row]).splitlines()[-1])
    (out / "detector_sweep.json").write_text(json.dumps({"iou": iou, "score": SCORE, "rows": rows}, indent=1))
    (out / "detector_sweep.md").write_text(table(rows) + "\n")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of sweep rows (float figures, int8 AP50 and recall beside them)."""
    lines = [
        "| variant | input | stride | clip | steps | AP50 | AP | recall@0.5 | 5 products | boxes | int8 AP50 | int8 recall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        f, q = r["float"], r["int8"]
        lines.append(
            f"| {r['name']} | {r['size']} | {r['stride']} | {r['clip_norm'] or 'none'} | {r['steps']} "
            f"| {f['ap50']:.3f} | {f['ap']:.3f} | {f['recall50']:.3f} | {f['recall50_5_products']:.3f} "
            f"| {f['boxes_per_scene']:.1f} | {q['ap50']:.3f} | {q['recall50']:.3f} |"
        )
    return "\n".join(lines)
