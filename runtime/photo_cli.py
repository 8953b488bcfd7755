"""The photo side of the device CLI: ``vitrina detect``, ``vitrina search --photo`` and
``vitrina eval --task detect|photo`` (registered by ``cli.py``).

Photos are read with :func:`~vitrina.runtime.photo.load_image_bounded`: a huge
photo is decoded reduced (never rejected for its size alone), a decompression
bomb or an unreadable or empty file is refused with a message (exit 2). Boxes
are printed in the file's own pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .bundle import Bundle
from .commands import Commands, positive_int
from .detector import DetectionResult, DetectorOptions
from .filters import SearchFilter
from .photo import IMAGE_FORMATS, ImageBudgetError, load_image_bounded
from .photo_search import PHOTO_MIN_SIDE


def register(commands: Commands) -> None:
    """Add ``vitrina detect``."""
    p = commands.add("detect", help="find the products in a photo (boxes, scores, categories)")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--photo", required=True, type=Path, help="photo file (JPEG, PNG, WebP, GIF, BMP, TIFF)")
    p.add_argument("--precision", choices=("int8", "float"), default="int8")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=detect_command)


def load_photo(path: Path) -> tuple[Image.Image, tuple[int, int]]:
    """The photo at ``path`` decoded within the pixel budget, and its size in the file (w, h).

    Raises:
        ValueError: a missing, empty, unreadable or over-budget file (ImageBudgetError), naming it.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ImageBudgetError(f"{path} is empty (0 bytes): expected a photo ({', '.join(IMAGE_FORMATS)})")
    image = load_image_bounded(path, min_side=PHOTO_MIN_SIDE, formats=IMAGE_FORMATS)
    with Image.open(path) as header:  # the size in the file: boxes are reported in its pixels
        size = header.size
    return image, size


def to_file_pixels(detections: DetectionResult, file_size: tuple[int, int]) -> DetectionResult:
    """``detections`` of a reduced decode mapped to the file's own pixel grid."""
    w, h = detections.image_size
    if (w, h) == tuple(file_size) or w == 0 or h == 0:
        return detections
    factor = np.array([file_size[0] / w, file_size[1] / h] * 2, np.float32)
    return DetectionResult(
        boxes=detections.boxes * factor,
        scores=detections.scores,
        categories=detections.categories,
        category_names=detections.category_names,
        image_size=(int(file_size[0]), int(file_size[1])),
    )


def detect_command(args: argparse.Namespace) -> int:
    """``vitrina detect``: print the boxes of the products in the photo."""
    from .detector import Detector

    bundle = Bundle.open(args.bundle)
    if not bundle.has_detector:
        raise ValueError(f"bundle {args.bundle} has no detector: rebuild it with a profile that trains one")
    image, file_size = load_photo(args.photo)
    with Detector.create_from_bundle(bundle, DetectorOptions(num_threads=args.threads, precision=args.precision)) as d:
        result = to_file_pixels(d.detect(image), file_size)
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
        return 0
    print(f"{len(result)} product(s) in {args.photo} ({file_size[0]}×{file_size[1]})")
    for i, (box, score) in enumerate(zip(result.boxes, result.scores)):
        x0, y0, x1, y1 = (float(v) for v in box)
        print(f"{i:3d}. {score:5.3f}  {result.category(i):<14} [{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}]")
    return 0


def photo_search_command(args: argparse.Namespace, *, filters: SearchFilter | None = None) -> int:
    """``vitrina search --photo F [--box N]``: detect, crop the chosen (or largest) product, search it
    (only products ``filters`` keeps)."""
    from .product_search import ProductSearch, ProductSearchOptions

    bundle = Bundle.open(args.bundle, verify=False)  # the device's open: see Bundle.open
    image, file_size = load_photo(args.photo)
    with ProductSearch(bundle, ProductSearchOptions(args.precision, args.threads)) as engine:
        result = engine.by_photo(image, args.k, args.box, filters=filters)
    detections = result.detections
    if detections is not None:
        detections = to_file_pixels(detections, file_size)
    if args.json:
        out = result.to_json()
        out["boxes"] = detections.to_json()["boxes"] if detections is not None else []
        out["image_size"] = list(file_size)
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if result.note is not None:
        print(f"vitrina search: {result.note}; no results", file=sys.stderr)
    if result.fallback is not None:
        print(f"vitrina search: note: searched the {result.fallback}: {result.fallback_reason}", file=sys.stderr)
    elif detections is not None and result.searched_box is not None:
        x0, y0, x1, y1 = (float(v) for v in detections.boxes[result.searched_box])
        print(
            f"searched box {result.searched_box} of {len(detections)} "
            f"({detections.category(result.searched_box)}, [{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}])"
        )
    for rank, m in enumerate(result.matches, start=1):
        print(f"{rank:3d}. {m.score:6.3f}  {m.id:<14} {m.title}  [{m.category}, {m.color}]  ${m.price:,.0f}")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """``vitrina eval --task detect|photo``: print the tables (or JSON)."""
    from .evaluate_detect import CROPS, evaluate_detector, evaluate_photo

    bundle = Bundle.open(args.bundle)
    if not bundle.has_detector:
        raise ValueError(f"bundle {args.bundle} has no detector: --task {args.task} needs one")
    if args.task == "detect":
        report = evaluate_detector(bundle, num_threads=args.threads)
        if args.json:
            print(json.dumps(report))
            return 0
        t = report["thresholds"]
        print(
            f"{report['scenes']} held-out scenes, {report['products']} products, detector input {report['input_size']} px; "
            f"shipped thresholds: score {t['score']}, IoU {t['iou']}, max {t['max_boxes']} boxes"
        )
        keys = ("ap50", "ap", "ap50_by_category", "ap_by_category", "recall50", "category_accuracy", "boxes_per_scene")
        print(f"{'':8}" + "".join(f"{k:>18}" for k in keys))
        for p in ("float", "int8"):
            print(f"{p:8}" + "".join(f"{_fmt(report[p][k]):>18}" for k in keys))
        for part, title in (("recall50_by_products", "products per scene"), ("recall50_by_category", "category")):
            print(f"\nrecall at IoU >= 0.5 by {title}")
            for name in report["float"][part]:
                print(f"  {name:<14}" + "".join(f"{p} {report[p][part][name]:.4f}   " for p in ("float", "int8")))
        return 0
    report = evaluate_photo(bundle, num_threads=args.threads)
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{report['scenes']} held-out scenes ({report['single_product_scenes']} with one product), "
        f"each a query for one product; gallery of {report['gallery']} test products"
    )
    for group in ("multi_product", "single_product"):
        if group not in report:
            continue
        print(f"\n{group.replace('_', '-')} scenes")
        print(f"{'crop':14}{'precision':>10}{'p_at_10':>10}{'map':>10}{'acc_at_10':>11}")
        for crop in CROPS:
            for p, m in report[group][crop].items():
                print(f"{crop:14}{p:>10}{m['p_at_10']:>10.4f}{m['map']:>10.4f}{m['acc_at_10']:>11.4f}")
    return 0


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
