"""The text-visual encoder on the device: titles, crops or both → one 16-d code, through LiteRT.

MediaPipe Tasks shape, like the encoders and the detector: a frozen
:class:`TextVisualOptions` whose docstring states the tensor contract, a frozen
:class:`TextVisualResult`, ``create_from_bundle`` / ``create_from_options``,
``close()`` and ``with``.

Words become ids with the bundle's text vocabulary (``text/vocabulary.json``):
a word's id is its position in the vocabulary plus one, for the first
``vocab_size`` words the model was trained with (manifest ``text_visual``);
0 is padding. A text is its words after :class:`~vitrina.runtime.text.WordRepair`
(folded, brands and numbers dropped, misspellings repaired), at most
:data:`~vitrina.runtime.text.MAX_QUERY_WORDS`, in order, padding after them.

Images are padded to a square around their centre (the aspect ratio is kept,
never stretched: :func:`~vitrina.runtime.photo.prepare_photo`) and resized to the
model's input side. A missing input is zeros and its branch weight 0; with both,
the branches are averaged (weights 0.5 / 0.5).

The bundle also carries the text-visual codes of every catalog product (title +
main image, from the int8 model; the float model's codes too, for eval):
``text_visual/codes_int8.npy`` and ``text_visual/codes_float.npy``, (P, 16)
float32 L2-normalised rows in product order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .bundle import Bundle, BundleFormatError
from .encoders import EncoderOptions, dequantize, quantize_table
from .identify import EQUAL_WEIGHTS, FactorWeights
from .litert import make_interpreter
from .photo import prepare_photo
from .text import Vocabulary

#: The bundle's model role and manifest entry.
ROLE = "textvisual"
MANIFEST_ENTRY = "text_visual"
#: Input and output names of the model's TFLite signature.
INPUTS = ("words", "pixels", "weights")
OUTPUTS = ("code", "plausibility")
#: Word id of padding.
PAD = 0
_EPS = 1e-12


def codes_file(precision: str) -> str:
    """Bundle-relative path of the catalog's text-visual codes made with the ``precision`` model."""
    return f"text_visual/codes_{precision}.npy"


def word_ids(words: Sequence[str], index: Mapping[str, int], *, vocab_size: int, max_words: int) -> np.ndarray:
    """(max_words,) int32 ids of ``words`` (folded vocabulary words, in order), padding (0) after them.

    A word's id is ``index[word] + 1`` when that is at most ``vocab_size``; other words
    are skipped (the model never saw them). At most ``max_words`` ids are kept.
    """
    ids = [index[w] + 1 for w in words if w in index and index[w] < vocab_size][:max_words]
    out = np.full(max_words, PAD, np.int32)
    out[: len(ids)] = ids
    return out


def square_crop(
    image: Image.Image | np.ndarray, size: int, box: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """(size, size, 3) uint8: ``image`` (or its ``box``, xyxy pixels) padded to a square with
    white around its centre, keeping the aspect ratio, then resized (the visual branch's input)."""
    pil = Image.fromarray(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if box is not None:
        from .detector import crop_box

        pil = crop_box(pil, box)
    return prepare_photo(pil, size)


def branch_weights(*, has_text: bool, has_image: bool) -> np.ndarray:
    """(2,) float32 (text, visual) weights of the fusion: the average of the present branches."""
    n = int(has_text) + int(has_image)
    if n == 0:
        raise ValueError("a text-visual code needs a text, an image or both")
    return np.array([has_text / n, has_image / n], np.float32)


@dataclass(frozen=True)
class TextVisualOptions:
    """How to run the text-visual model.

    Tensor contract: each interpreter call takes ``words`` (batch_size, W) int32
    ids (0 = padding, W = 9), ``pixels`` (batch_size, S, S, 3) float32 pixels 0-255
    (float model) or int8 (int8 model), and ``weights`` (batch_size, 2) float32 or
    int8: the text and visual branch weights (0.5/0.5 both, 1/0 text only, 0/1 image
    only). It returns ``code`` (batch_size, 16) and ``plausibility`` (batch_size, 1),
    float32 or int8, dequantised here; codes come back L2-normalised, plausibility
    through a sigmoid.

    Attributes:
        model_path: the ``.tflite`` file; None with ``create_from_bundle``.
        num_threads: CPU threads of the interpreter.
        batch_size: rows per interpreter call (1 for queries, more for a catalog).
        precision: which of the bundle's models ``create_from_bundle`` opens (``"int8"`` or ``"float"``).
    """

    model_path: str | None = None
    num_threads: int = 1
    batch_size: int = 1
    precision: str = "int8"

    def __post_init__(self) -> None:
        # the encoders' own checks, with their messages (the same fields, the same rules)
        EncoderOptions(num_threads=self.num_threads, batch_size=self.batch_size, precision=self.precision)


@dataclass(frozen=True, eq=False)
class TextVisualResult:
    """Codes of a batch, in input order.

    Attributes:
        codes: (n, D) float32, L2-normalised rows (D = 16).
        plausibility: (n,) float32 in (0, 1): how likely the text describes the image
            (meaningful only where both were given).
    """

    codes: np.ndarray
    plausibility: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)


class TextVisualEncoder:
    """Encodes texts, images or both into the text-visual space. Create with
    :meth:`create_from_bundle` or :meth:`create_from_options`.

    Raises (every encode method): ``ValueError`` for bad input or a closed encoder,
    ``RuntimeError`` when LiteRT fails.
    """

    def __init__(self, options: TextVisualOptions, vocabulary: Vocabulary | None = None, vocab_size: int = 0):
        """Open ``options.model_path``; ``vocabulary`` (its first ``vocab_size`` words) maps words to ids.

        Raises:
            ValueError: no model path, or the file does not exist.
            RuntimeError: LiteRT cannot load the model, or it lacks the inputs/outputs.
        """
        if options.model_path is None:
            raise ValueError("TextVisualEncoder needs options.model_path (or use create_from_bundle)")
        if not Path(options.model_path).is_file():
            raise ValueError(f"text-visual model {options.model_path} does not exist")
        self.options = options
        self.vocabulary = vocabulary
        try:
            self._interpreter: Any = make_interpreter(options.model_path, options.num_threads)
            runner = self._interpreter.get_signature_runner()
            ins, outs = runner.get_input_details(), runner.get_output_details()
            del runner  # it holds tensor references: resizing below needs them released
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"LiteRT could not load {options.model_path}: {exc}") from exc
        missing = [n for n in INPUTS if n not in ins] + [n for n in OUTPUTS if n not in outs]
        if missing:
            raise RuntimeError(f"{options.model_path} is not a text-visual model: it lacks {missing}")
        b = options.batch_size
        try:
            for name in INPUTS:
                self._interpreter.resize_tensor_input(
                    ins[name]["index"], [b, *[int(v) for v in ins[name]["shape"][1:]]]
                )
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"LiteRT could not load {options.model_path}: {exc}") from exc
        self._in = {n: ins[n] for n in INPUTS}
        self._out = {n: outs[n] for n in OUTPUTS}
        #: W, word ids per text.
        self.max_words = int(ins["words"]["shape"][1])
        #: S, the side of the square image input, pixels.
        self.image_size = int(ins["pixels"]["shape"][1])
        #: D, the code width.
        self.dims = int(outs["code"]["shape"][-1])
        self.vocab_size = vocab_size if vocab_size else (len(vocabulary) if vocabulary is not None else 0)
        self._pixel_table = None
        if ins["pixels"]["dtype"] == np.int8:
            self._pixel_table = quantize_table(*ins["pixels"]["quantization"])

    @classmethod
    def create_from_options(
        cls, options: TextVisualOptions, vocabulary: Vocabulary | None = None, vocab_size: int = 0
    ) -> TextVisualEncoder:
        """Open ``options.model_path`` (required here); ``vocabulary`` lets :meth:`encode_texts` take words."""
        return cls(options, vocabulary, vocab_size)

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, options: TextVisualOptions | None = None) -> TextVisualEncoder:
        """The bundle's text-visual model of ``options.precision``, with the bundle's vocabulary.

        Raises:
            ValueError: ``options.model_path`` is set.
            BundleFormatError: the bundle has no text-visual model, or LiteRT cannot load it.
        """
        options = TextVisualOptions() if options is None else options
        if options.model_path is not None:
            raise ValueError(
                f"TextVisualEncoder.create_from_bundle takes the model from bundle {bundle.path}; "
                f"options.model_path must be None, got {options.model_path!r} (use create_from_options)"
            )
        entry = text_visual_entry(bundle)
        resolved = replace(options, model_path=str(bundle.model_path(ROLE, options.precision)))
        try:
            return cls(resolved, bundle.vocabulary, int(entry["vocab_size"]))
        except (RuntimeError, ValueError) as exc:
            raise BundleFormatError(f"bundle {bundle.path}: {exc}") from None

    @property
    def quantized(self) -> bool:
        """True for a full-int8 model."""
        return self._pixel_table is not None

    @property
    def closed(self) -> bool:
        return self._interpreter is None

    def ids(self, words: Sequence[str]) -> np.ndarray:
        """(W,) int32 word ids of ``words`` (folded vocabulary words); see :func:`word_ids`."""
        if self.vocabulary is None:
            raise ValueError("this TextVisualEncoder has no vocabulary: pass word ids, or create it from a bundle")
        return word_ids(words, self.vocabulary.index, vocab_size=self.vocab_size, max_words=self.max_words)

    def encode(self, words: np.ndarray | None = None, images: np.ndarray | None = None) -> TextVisualResult:
        """Encode n texts, n images, or n (text, image) pairs.

        Args:
            words: (n, W) int ids (:meth:`ids`), or None for images only.
            images: (n, S, S, 3) uint8 pixels (:func:`square_crop`), or None for texts only.

        Raises:
            ValueError: neither given, shapes or dtypes that do not fit, or a closed encoder.
            RuntimeError: LiteRT failed.
        """
        if self._interpreter is None:
            raise ValueError(f"TextVisualEncoder for {self.options.model_path} is closed; create a new one")
        if words is None and images is None:
            raise ValueError("encode needs words, images or both")
        n = len(words) if words is not None else len(images)  # type: ignore[arg-type]
        if words is not None:
            words = np.asarray(words)
            if words.ndim != 2 or words.shape[1] != self.max_words or words.dtype.kind not in "iu":
                raise ValueError(f"words must be (n, {self.max_words}) integer ids, got {words.dtype} {words.shape}")
            if words.size and self.vocab_size and (words.min() < 0 or words.max() > self.vocab_size):
                raise ValueError(f"word ids must be in [0, {self.vocab_size}], got {words.min()} to {words.max()}")
        if images is not None:
            images = np.asarray(images)
            want = (self.image_size, self.image_size, 3)
            if images.dtype != np.uint8 or images.shape[1:] != want:
                raise ValueError(
                    f"images must be (n, {', '.join(map(str, want))}) uint8, got {images.dtype} {images.shape}"
                )
            if words is not None and len(images) != n:
                raise ValueError(f"{n} texts but {len(images)} images: pairs need one of each")
        weight = branch_weights(has_text=words is not None, has_image=images is not None)
        codes = np.empty((n, self.dims), np.float32)
        plaus = np.empty(n, np.float32)
        b = self.options.batch_size
        for start in range(0, n, b):
            m = min(b, n - start)
            w = np.zeros((b, self.max_words), np.int32)
            px = np.full((b, self.image_size, self.image_size, 3), 255, np.uint8)
            if words is not None:
                w[:m] = words[start : start + m]
            if images is not None:
                px[:m] = images[start : start + m]
            c, p = self._run(w, px, np.tile(weight, (b, 1)))
            codes[start : start + m], plaus[start : start + m] = c[:m], p[:m]
        codes /= np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), _EPS)
        return TextVisualResult(codes, 1.0 / (1.0 + np.exp(-plaus)))

    def encode_texts(self, texts: Sequence[Sequence[str]]) -> TextVisualResult:
        """Codes of texts given as word lists (folded vocabulary words, e.g. ``QueryWords.words``)."""
        return self.encode(
            words=np.stack([self.ids(t) for t in texts]) if texts else np.zeros((0, self.max_words), np.int32)
        )

    def encode_images(self, images: np.ndarray) -> TextVisualResult:
        """Codes of (n, S, S, 3) uint8 square crops."""
        return self.encode(images=images)

    def _run(self, words: np.ndarray, pixels: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feeds = {"words": words, "pixels": pixels, "weights": weights}
        try:
            for name, value in feeds.items():
                d = self._in[name]
                if name == "pixels" and self._pixel_table is not None:
                    value = self._pixel_table[value]
                elif d["dtype"] == np.int8:
                    scale, zero = d["quantization"]
                    value = np.clip(np.round(value.astype(np.float64) / scale + zero), -128, 127).astype(np.int8)
                else:
                    value = value.astype(d["dtype"])
                self._interpreter.set_tensor(d["index"], value)
            self._interpreter.invoke()
            out = {}
            for name in OUTPUTS:
                d = self._out[name]
                y = self._interpreter.get_tensor(d["index"])
                out[name] = dequantize(y, *d["quantization"]) if d["dtype"] == np.int8 else y.astype(np.float32)
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"LiteRT failed to run {self.options.model_path}: {exc}") from exc
        return out["code"], out["plausibility"][:, 0]

    def close(self) -> None:
        """Release the interpreter; later calls raise ``ValueError``. Closing twice is harmless."""
        self._interpreter = None

    def __enter__(self) -> TextVisualEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def has_text_visual(bundle: Bundle) -> bool:
    """True when the bundle carries the text-visual model and its catalog codes."""
    return bool(bundle.manifest["models"].get(ROLE)) and isinstance(bundle.manifest.get(MANIFEST_ENTRY), dict)


def text_visual_entry(bundle: Bundle) -> dict[str, Any]:
    """The manifest's ``text_visual`` entry, checked.

    Raises:
        BundleFormatError: the bundle has no text-visual model, or the entry is malformed.
    """
    if not has_text_visual(bundle):
        raise BundleFormatError(f"bundle {bundle.path} has no text-visual model (built without one)")
    entry = bundle.manifest[MANIFEST_ENTRY]
    size = entry.get("vocab_size")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= len(bundle.vocabulary):
        raise BundleFormatError(
            f"bundle {bundle.path}: text_visual.vocab_size must be 1 to the vocabulary's {len(bundle.vocabulary)} words, got {size!r}"
        )
    return entry


def identify_weights(bundle: Bundle) -> FactorWeights:
    """The identification factors' weights the build fitted (``text_visual.identify_weights``);
    equal weights for a bundle built before them, or without a text-visual model.

    Raises:
        BundleFormatError: the entry is there but malformed.
    """
    if not has_text_visual(bundle) or "identify_weights" not in bundle.manifest[MANIFEST_ENTRY]:
        return EQUAL_WEIGHTS
    try:
        return FactorWeights.from_json(bundle.manifest[MANIFEST_ENTRY]["identify_weights"])
    except ValueError as error:
        raise BundleFormatError(f"bundle {bundle.path}: text_visual.identify_weights: {error}") from error


def catalog_codes(bundle: Bundle, precision: str = "int8") -> np.ndarray:
    """(P, D) float32 text-visual codes of the bundle's products (title + main image), by the ``precision`` model.

    Raises:
        BundleFormatError: no text-visual codes, or not one finite unit row per product.
    """
    text_visual_entry(bundle)
    from .bundle import check_finite

    codes = bundle.array(codes_file(precision))
    if codes.dtype != np.float32 or codes.ndim != 2 or len(codes) != len(bundle.items):
        raise BundleFormatError(
            f"{bundle.path}/{codes_file(precision)}: expected ({len(bundle.items)}, D) float32, got {codes.dtype} {codes.shape}"
        )
    check_finite(codes, where=f"{bundle.path}/{codes_file(precision)}")
    return codes
