"""The product detector: a TFLite model run through LiteRT, with NMS in numpy.

Shaped like the encoders (``encoders.py``): a frozen :class:`DetectorOptions`
whose docstring states the tensor contract, a frozen :class:`DetectionResult`,
``create_from_bundle`` / ``create_from_options``, ``close()`` and ``with``.

Boxes travel as one (n, 4) float32 array in ``xyxy`` order, in pixels of the
image given to :meth:`Detector.detect` (x1, y1 exclusive), with scores and
category indices in parallel arrays. The image is letterboxed to the model's
square input (:func:`letterbox`, the same function the training scenes go
through) and the boxes are mapped back (:func:`unletterbox`).

The model is CenterNet/FCOS-style on one stride-8 grid: per cell an
objectness logit, four log-distances to the box sides (in units of the
stride) and category logits. :func:`decode` turns them into boxes and
:func:`nms` (greedy, class-agnostic) removes duplicates. The shipped
thresholds are tuned for recall: a redundant box costs a shopper nothing, a
missed product means the wrong search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .bundle import PRECISIONS, Bundle, BundleFormatError
from .encoders import dequantize, quantize_table
from .photo import on_white

#: Output names of the detector model (its TFLite signature).
OUTPUTS = ("objectness", "boxes", "classes")
#: Colour of the letterbox padding (RGB), the same in training and on the device.
PAD_RGB = (114, 114, 114)
#: Default thresholds, tuned for recall (see README "Detector"). A bundle may carry its own
#: score threshold, tuned for its model (manifest ``detector.score_threshold``).
SCORE_THRESHOLD = 0.2
#: 0.6, not 0.5: products overlap (a bag over a coat, up to ~30 % hidden), and on the demo
#: detector's tuning scenes (train-split products, their own seed) NMS at 0.6 kept more of
#: them at score 0.05 (recall@0.5 0.963 against 0.957) with a higher AP50 (0.938 against 0.936).
IOU_THRESHOLD = 0.6
MAX_BOXES = 20
#: ``DetectionResult.largest`` considers boxes scoring at least this share of the best score.
LARGEST_RELATIVE_SCORE = 0.5
# candidates kept before NMS
_PRE_NMS = 200


@dataclass(frozen=True)
class DetectorOptions:
    """How to run the detector.

    Tensor contract: :meth:`Detector.detect` takes one RGB image of any size
    (PIL, or (h, w, 3) uint8), letterboxed to the model's (1, S, S, 3) input,
    fed as float32 pixels 0-255 (float model) or quantised to int8 (int8
    model). The model returns, on a (G, G) grid with G = S / 8, float32 or
    int8 ``objectness`` (1, G, G, 1) logits, ``boxes`` (1, G, G, 4) log
    distances to the left, top, right and bottom sides in units of the stride,
    and ``classes`` (1, G, G, C) category logits.

    Attributes:
        model_path: the ``.tflite`` file; None with ``create_from_bundle``.
        num_threads: CPU threads of the interpreter.
        precision: which of the bundle's models ``create_from_bundle`` opens (``"int8"`` or ``"float"``).
        score_threshold: lowest objectness probability kept, in (0, 1); None: the
            bundle's own (``create_from_bundle``), else :data:`SCORE_THRESHOLD`.
        iou_threshold: NMS drops a box overlapping a better one by more than this IoU, in (0, 1].
        max_boxes: most boxes returned (best first), >= 1.
    """

    model_path: str | None = None
    num_threads: int = 1
    precision: str = "int8"
    score_threshold: float | None = None
    iou_threshold: float = IOU_THRESHOLD
    max_boxes: int = MAX_BOXES

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.num_threads, (int, np.integer)) or self.num_threads < 1:
            raise ValueError(f"num_threads must be an integer >= 1, got {self.num_threads!r}")
        if self.score_threshold is not None and not 0.0 < self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {self.score_threshold!r}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold!r}")
        if not isinstance(self.max_boxes, (int, np.integer)) or self.max_boxes < 1:
            raise ValueError(f"max_boxes must be an integer >= 1, got {self.max_boxes!r}")


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """Detected products, best score first.

    Attributes:
        boxes: (n, 4) float32 (x0, y0, x1, y1) in pixels of the input image.
        scores: (n,) float32 objectness probabilities in (0, 1).
        categories: (n,) int32 index into ``category_names`` of each box's most likely category.
        category_names: the detector's category names.
        image_size: (width, height) of the input image, pixels.
        category_probs: (n, C) float32 softmax of each box's category logits (rows sum to 1),
            or None when not known (boxes from elsewhere).
    """

    boxes: np.ndarray
    scores: np.ndarray
    categories: np.ndarray
    category_names: tuple[str, ...] = ()
    image_size: tuple[int, int] = (0, 0)
    category_probs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    def category(self, i: int) -> str:
        """Name of box ``i``'s category (its index as text when the names are unknown)."""
        c = int(self.categories[i])
        return self.category_names[c] if c < len(self.category_names) else str(c)

    def largest(self, relative_score: float = LARGEST_RELATIVE_SCORE) -> int | None:
        """Index of the largest box (the first on ties) among those scoring at least
        ``relative_score`` × the best score, None without boxes. Thresholds tuned for
        recall keep faint redundant boxes, often loose ones; "the largest product" is
        the largest of the confident boxes (``relative_score=0``: of all)."""
        if len(self.boxes) == 0:
            return None
        areas = np.where(self.scores >= relative_score * float(self.scores.max()), box_areas(self.boxes), -1.0)
        return int(np.argmax(areas))

    def to_json(self) -> dict[str, Any]:
        """``{"boxes": [{"box": [x0, y0, x1, y1], "score": s, "category": name}, ...], "image_size": [w, h]}``."""
        return {
            "boxes": [
                {"box": [round(float(v), 1) for v in b], "score": round(float(s), 4), "category": self.category(i)}
                for i, (b, s) in enumerate(zip(self.boxes, self.scores))
            ],
            "image_size": list(self.image_size),
        }


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(n,) float32 areas of (n, 4) xyxy boxes (0 for empty ones)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) float32 IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4), xyxy."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_boxes: int) -> np.ndarray:
    """Greedy class-agnostic non-maximum suppression.

    Repeatedly keeps the best remaining box and drops every box whose IoU with
    it is above ``iou_threshold``. Ties keep the lower index first.

    Args:
        boxes: (n, 4) xyxy; scores: (n,) higher is better.

    Returns:
        (k,) int64 indices of the kept boxes, best first, k <= ``max_boxes``.
    """
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    keep: list[int] = []
    while len(order) and len(keep) < max_boxes:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        if len(rest) == 0:
            break
        order = rest[iou_matrix(boxes[best][None], boxes[rest])[0] <= iou_threshold]
    return np.array(keep, np.int64)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Fit an (h, w, 3) uint8 image into a (size, size, 3) square without stretching.

    The image is resized by one factor (area averaging when shrinking,
    bilinear when enlarging) so its longer side is ``size``, centred, and the
    rest filled with :data:`PAD_RGB`.

    Returns:
        the square, the scale factor (square pixels per image pixel) and the
        (x, y) offset of the image in the square: square = image * scale + offset.
    """
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"cannot letterbox an empty image ({w}×{h})")
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    pil = Image.fromarray(np.ascontiguousarray(image))
    if (nw, nh) != (w, h):
        pil = pil.resize((nw, nh), Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR)
    out = np.empty((size, size, 3), np.uint8)
    out[:] = PAD_RGB
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py : py + nh, px : px + nw] = np.asarray(pil)
    return out, scale, (px, py)


def unletterbox(boxes: np.ndarray, scale: float, offset: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """Boxes in letterboxed-square pixels → (n, 4) float32 boxes in image pixels, clipped to (w, h)."""
    b = (np.asarray(boxes, np.float32).reshape(-1, 4) - np.array([*offset, *offset], np.float32)) / scale
    w, h = image_size
    return np.clip(b, 0, np.array([w, h, w, h], np.float32))


def crop_box(image: Image.Image, box: Sequence[float] | np.ndarray) -> Image.Image:
    """The part of ``image`` inside ``box`` (x0, y0, x1, y1 pixels), rounded outwards and
    clipped to the image, at least 1×1. Its aspect ratio is kept: the photo encoder pads
    it to a square (``photo.prepare_photo``), never stretches it."""
    w, h = image.size
    x0, y0 = int(np.clip(np.floor(box[0]), 0, max(w - 1, 0))), int(np.clip(np.floor(box[1]), 0, max(h - 1, 0)))
    x1, y1 = int(np.clip(np.ceil(box[2]), x0 + 1, w)), int(np.clip(np.ceil(box[3]), y0 + 1, h))
    return image.crop((x0, y0, x1, y1))


def decode(
    objectness: np.ndarray, boxes: np.ndarray, classes: np.ndarray, *, stride: float, score_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model's grids → candidate boxes above ``score_threshold`` (before NMS).

    Args:
        objectness: (G, G) float32 logits; boxes: (G, G, 4) float32 log distances
            (left, top, right, bottom) in units of ``stride``; classes: (G, G, C) float32 logits.
        stride: input pixels per grid cell.

    Returns:
        (n, 4) float32 xyxy boxes in model-input pixels, (n,) float32 scores, (n,) int32 categories
        and (n, C) float32 category probabilities (softmax of the logits), the best
        :data:`_PRE_NMS` by score.
    """
    scores = 1.0 / (1.0 + np.exp(-objectness.astype(np.float32)))
    ys, xs = np.nonzero(scores > score_threshold)
    if len(ys) > _PRE_NMS:
        best = np.argsort(-scores[ys, xs], kind="stable")[:_PRE_NMS]
        ys, xs = ys[best], xs[best]
    dist = np.exp(np.clip(boxes[ys, xs].astype(np.float32), -4.0, 6.0)) * stride
    cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
    out = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1).astype(np.float32)
    logits = classes[ys, xs].astype(np.float64).reshape(len(ys), classes.shape[-1])
    cats = np.argmax(logits, axis=1).astype(np.int32) if classes.shape[-1] else np.zeros(len(ys), np.int32)
    return out, scores[ys, xs].astype(np.float32), cats, _softmax(logits)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """(n, C) logits → (n, C) float32 probabilities along the last axis ((n, 0) stays empty)."""
    if logits.shape[-1] == 0:
        return logits.astype(np.float32)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class _Outputs:
    index: dict[str, int] = field(default_factory=dict)
    quant: dict[str, tuple[float, int] | None] = field(default_factory=dict)


class Detector:
    """Finds products in a photo. Tensor contract in :class:`DetectorOptions`.

    Create with :meth:`create_from_bundle` (the usual way) or :meth:`create_from_options`.

    Raises (``detect``):
        ValueError: a closed detector, or an image that is not RGB pixels.
        RuntimeError: LiteRT failed to run the model.
    """

    def __init__(self, options: DetectorOptions, category_names: Sequence[str] = ()):
        """Open ``options.model_path``.

        Raises:
            ValueError: no model path, or the file does not exist.
            RuntimeError: LiteRT cannot load the model, or it lacks the :data:`OUTPUTS`.
        """
        from .litert import make_interpreter

        if options.model_path is None:
            raise ValueError("Detector needs options.model_path (or use create_from_bundle)")
        if not Path(options.model_path).is_file():
            raise ValueError(f"detector model {options.model_path} does not exist")
        if options.score_threshold is None:
            options = replace(options, score_threshold=SCORE_THRESHOLD)
        self.options = options
        self.category_names = tuple(category_names)
        try:
            self._interpreter: Any = make_interpreter(str(options.model_path), options.num_threads)
            self._interpreter.allocate_tensors()
            runner = self._interpreter.get_signature_runner()
            details = runner.get_output_details()
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"LiteRT could not load {options.model_path}: {exc}") from exc
        missing = [name for name in OUTPUTS if name not in details]
        if missing:
            raise RuntimeError(f"{options.model_path} is not a detector: outputs {sorted(details)} lack {missing}")
        self._input = self._interpreter.get_input_details()[0]
        self._out = _Outputs()
        for name in OUTPUTS:
            d = details[name]
            self._out.index[name] = int(d["index"])
            scale, zero = d["quantization"]
            self._out.quant[name] = (float(scale), int(zero)) if d["dtype"] == np.int8 else None
        #: S, the side of the model's square input, pixels.
        self.input_size = int(self._input["shape"][1])
        grid = int(details["objectness"]["shape"][1])
        #: Input pixels per grid cell.
        self.stride = self.input_size / grid
        self._int8_table = None
        if self._input["dtype"] == np.int8:
            self._int8_table = quantize_table(*self._input["quantization"])

    @classmethod
    def create_from_options(cls, options: DetectorOptions, category_names: Sequence[str] = ()) -> Detector:
        """Open ``options.model_path`` (required here); ``category_names`` name the model's category logits."""
        return cls(options, category_names)

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, options: DetectorOptions | None = None) -> Detector:
        """The bundle's detector of ``options.precision``, with the bundle's category names.

        Raises:
            ValueError: ``options.model_path`` is set.
            BundleFormatError: the bundle has no detector of that precision, or LiteRT cannot load it.
        """
        options = DetectorOptions() if options is None else options
        if options.model_path is not None:
            raise ValueError(
                f"Detector.create_from_bundle takes the model from bundle {bundle.path}; "
                f"options.model_path must be None, got {options.model_path!r} (use create_from_options)"
            )
        resolved = replace(options, model_path=str(bundle.model_path("detector", options.precision)))
        if options.score_threshold is None:
            shipped = (bundle.manifest.get("detector") or {}).get("score_threshold", SCORE_THRESHOLD)
            if not isinstance(shipped, (int, float)) or not 0.0 < shipped < 1.0:
                raise BundleFormatError(
                    f"bundle {bundle.path}: detector.score_threshold must be in (0, 1), got {shipped!r}"
                )
            resolved = replace(resolved, score_threshold=float(shipped))
        try:
            return cls(resolved, bundle.categories)
        except (RuntimeError, ValueError) as exc:
            raise BundleFormatError(f"bundle {bundle.path}: {exc}") from None

    @property
    def quantized(self) -> bool:
        """True when the model takes int8 input (full-int8 model)."""
        return self._int8_table is not None

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._interpreter is None

    def raw(self, square: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the model on one (S, S, 3) uint8 square; returns float32 objectness (G, G),
        boxes (G, G, 4) and classes (G, G, C), dequantised."""
        if self._interpreter is None:
            raise ValueError(f"Detector for {self.options.model_path} is closed; create a new one")
        x = self._int8_table[square] if self._int8_table is not None else square.astype(np.float32)
        try:
            self._interpreter.set_tensor(self._input["index"], x[None])
            self._interpreter.invoke()
            out = {}
            for name in OUTPUTS:
                y = self._interpreter.get_tensor(self._out.index[name])[0]
                q = self._out.quant[name]
                out[name] = dequantize(y, *q) if q is not None else y.astype(np.float32)
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"LiteRT failed to run {self.options.model_path}: {exc}") from exc
        return out["objectness"][..., 0], out["boxes"], out["classes"]

    def detect(self, image: Image.Image | np.ndarray) -> DetectionResult:
        """Find the products in ``image`` (PIL of any mode, transparency on white; or (h, w, 3) uint8 RGB).

        Returns:
            :class:`DetectionResult`, boxes in the image's pixels, best score first.
        """
        if isinstance(image, Image.Image):
            pixels = np.asarray(on_white(image), np.uint8)
        else:
            pixels = np.asarray(image)
            if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
                raise ValueError(f"image must be (h, w, 3) uint8 RGB pixels, got {pixels.dtype} {pixels.shape}")
        h, w = pixels.shape[:2]
        square, scale, offset = letterbox(pixels, self.input_size)
        return self.detect_square(square, scale=scale, offset=offset, image_size=(w, h))

    def detect_square(
        self,
        square: np.ndarray,
        *,
        scale: float = 1.0,
        offset: tuple[int, int] = (0, 0),
        image_size: tuple[int, int] | None = None,
    ) -> DetectionResult:
        """Detect in an already letterboxed (S, S, 3) uint8 square; ``scale`` / ``offset`` /
        ``image_size`` (from :func:`letterbox`) map the boxes back to the image (default: the square)."""
        o = self.options
        objectness, boxes, classes = self.raw(square)
        cand, scores, cats, probs = decode(
            objectness, boxes, classes, stride=self.stride, score_threshold=float(o.score_threshold or SCORE_THRESHOLD)
        )
        keep = nms(cand, scores, o.iou_threshold, o.max_boxes)
        size = image_size or (self.input_size, self.input_size)
        return DetectionResult(
            boxes=unletterbox(cand[keep], scale, offset, size),
            scores=scores[keep],
            categories=cats[keep],
            category_names=self.category_names,
            image_size=(int(size[0]), int(size[1])),
            category_probs=probs[keep],
        )

    def close(self) -> None:
        """Release the interpreter; later calls raise ``ValueError``. Closing twice is harmless."""
        self._interpreter = None

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
