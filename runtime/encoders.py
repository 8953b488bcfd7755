"""Sketch and photo encoders: TFLite models run through LiteRT.

Both tasks have the MediaPipe Tasks shape (and so will the coming
``TextEncoder`` and ``Detector``): a frozen ``…Options`` dataclass whose
docstring states the tensor contract, a frozen :class:`EmbeddingResult`,
``create_from_bundle(bundle, options=None)`` and ``create_from_options(options)``
factories, ``close()`` and ``with`` support. ``ValueError`` means bad input or
a wrong state (a closed encoder, options that contradict the bundle);
``RuntimeError`` means LiteRT failed to load or run the model.

Each encoder maps uint8 images to L2-normalised float32 embeddings. The TFLite
models take raw pixel values (0-255) and rescale inside the graph; an int8
model's input is quantised here with the model's own scale and zero point and
its output dequantised before normalisation (widened to float32 first: int8
arithmetic would wrap around).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from .bundle import PRECISIONS, Bundle, BundleFormatError
from .litert import make_interpreter
from .photo import prepare_photo
from .rasterize import RasterOptions, Stroke, rasterize_strokes

_EPS = 1e-12

_Encoder = TypeVar("_Encoder", bound="_TFLiteEncoder")


@dataclass(frozen=True)
class EncoderOptions:
    """How to run one encoder model (the fields every encoder task shares).

    Attributes:
        model_path: the ``.tflite`` file; ``None`` with ``create_from_bundle``,
            which takes the bundle's model of ``precision``.
        num_threads: CPU threads of the interpreter (fixed at creation).
        batch_size: images per interpreter call (the model's batch dimension);
            1 for interactive queries, larger for a catalog or an eval set.
        precision: which of the bundle's models ``create_from_bundle`` opens:
            ``"int8"`` (as shipped) or ``"float"`` (the reference).
    """

    model_path: str | None = None
    num_threads: int = 1
    batch_size: int = 1
    precision: str = "int8"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not isinstance(self.num_threads, (int, np.integer)) or self.num_threads < 1:
            raise ValueError(f"num_threads must be an integer >= 1, got {self.num_threads!r}")


@dataclass(frozen=True)
class PhotoEncoderOptions(EncoderOptions):
    """Options of :class:`PhotoEncoder`; fields as :class:`EncoderOptions`.

    Tensor contract: :meth:`PhotoEncoder.embed` takes (n, S, S, 3) uint8 RGB
    pixels (0-255); each interpreter call gets (batch_size, S, S, 3), fed as
    float32 (float model) or quantised to int8 (int8 model); S is the model's
    input side (the bundle's ``inputs.photo.size``). The model's (batch_size, D)
    float32 or int8 output comes back as (n, D) L2-normalised float32 rows.
    """


@dataclass(frozen=True)
class SketchEncoderOptions(EncoderOptions):
    """Options of :class:`SketchEncoder`: :class:`EncoderOptions` plus the rasteriser.

    Tensor contract: :meth:`SketchEncoder.embed` takes (n, S, S) or (n, S, S, 1)
    uint8 grey pixels, 255 paper and 0 ink, with S = ``raster.size``; each
    interpreter call gets (batch_size, S, S, 1), fed as float32 (float model) or
    quantised to int8 (int8 model). The model's (batch_size, D) float32 or int8
    output comes back as (n, D) L2-normalised float32 rows.

    Attributes:
        raster: how strokes become the (S, S) input; must be the settings the
            model was trained with. ``None`` with ``create_from_bundle`` (the
            bundle's settings); required by ``create_from_options``.
    """

    raster: RasterOptions | None = None


@dataclass(frozen=True, eq=False)
class EmbeddingResult:
    """Embeddings of a batch of inputs, in input order.

    Attributes:
        embeddings: (n, D) float32, each row L2-normalised (unit length), so a
            dot product of two rows is their cosine similarity. An int8 model's
            output is dequantised to float32 before normalisation.
    """

    embeddings: np.ndarray

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (n, D), got shape {self.embeddings.shape}")

    @property
    def dtype(self) -> np.dtype:
        """The embeddings' dtype (float32)."""
        return self.embeddings.dtype

    @property
    def dims(self) -> int:
        """D, the embedding width."""
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.embeddings)


def quantize_table(scale: float, zero_point: int) -> np.ndarray:
    """(256,) int8 lookup: uint8 pixel value → the model's int8 input, ``round(v / scale + zero_point)``
    clipped to [-128, 127], computed in float64 (no int8 arithmetic)."""
    return np.clip(np.round(np.arange(256, dtype=np.float64) / scale + zero_point), -128, 127).astype(np.int8)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 (or uint8) model output → float32 ``(values - zero_point) * scale``, widened to float32
    before the subtraction (in int8, -128 - 127 would wrap around to 1)."""
    return (np.asarray(values).astype(np.float32) - zero_point) * scale


class _TFLiteEncoder:
    """Shared engine: input (n, S, S, C) uint8 → (n, D) float32 unit rows, ``batch_size`` per invoke."""

    _role = "encoder"
    _options_class: type[EncoderOptions] = EncoderOptions

    def __init__(self, options: EncoderOptions):
        """Open ``options.model_path`` with a batch of ``options.batch_size``.

        Raises:
            ValueError: no model path, or the file does not exist.
            RuntimeError: LiteRT cannot load the model.
        """
        if options.model_path is None:
            raise ValueError(f"{type(self).__name__} needs options.model_path (or use create_from_bundle)")
        if not Path(options.model_path).is_file():
            raise ValueError(f"encoder model {options.model_path} does not exist")
        self.options = options
        try:
            self._interpreter: Any = make_interpreter(options.model_path, options.num_threads)
            inp = self._interpreter.get_input_details()[0]
            shape = [options.batch_size, *[int(v) for v in inp["shape"][1:]]]
            self._interpreter.resize_tensor_input(inp["index"], shape)
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"LiteRT could not load {options.model_path}: {exc}") from exc
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        #: (S, S, C) input shape of one image.
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in self._input["shape"][1:])
        #: D, the embedding width.
        self.dims = int(self._output["shape"][-1])
        # uint8 pixels → the model's int8 input in one indexing op (a 256-entry table),
        # instead of float arithmetic on every pixel of every query.
        self._int8_table = None
        if self.quantized:
            scale, zero = self._input["quantization"]
            self._int8_table = quantize_table(scale, zero)

    @classmethod
    def create_from_options(cls: type[_Encoder], options: EncoderOptions) -> _Encoder:
        """Open ``options.model_path`` (required here).

        Raises:
            ValueError: no model path, or the file does not exist.
            RuntimeError: LiteRT cannot load the model.
        """
        return cls(options)

    @classmethod
    def _bundle_options(cls, bundle: Bundle, options: EncoderOptions | None) -> EncoderOptions:
        """``options`` (default: the task's defaults) with the bundle's model of ``options.precision``."""
        options = cls._options_class() if options is None else options
        if options.model_path is not None:
            raise ValueError(
                f"{cls.__name__}.create_from_bundle takes the model from bundle {bundle.path}; "
                f"options.model_path must be None, got {options.model_path!r} (use create_from_options)"
            )
        return replace(options, model_path=str(bundle.model_path(cls._role, options.precision)))

    @property
    def quantized(self) -> bool:
        """True when the model takes int8 input (full-int8 model)."""
        return self._input["dtype"] == np.int8

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._interpreter is None

    def embed(self, images: np.ndarray) -> EmbeddingResult:
        """Encode images, ``batch_size`` per interpreter call (the last batch padded with paper).

        Args:
            images: uint8 array (n, S, S, C), or (n, S, S) for one-channel models,
                where (S, S, C) is :attr:`input_shape`.

        Returns:
            :class:`EmbeddingResult` with (n, D) float32 L2-normalised embeddings.

        Raises:
            ValueError: the encoder is closed, or images of the wrong dtype or shape.
            RuntimeError: LiteRT failed to run the model.
        """
        self._check_open()
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 pixels, got {images.dtype}")
        if images.ndim == len(self.input_shape) and images.shape[-1] != self.input_shape[-1]:
            images = images[..., None]
        if images.shape[1:] != self.input_shape:
            raise ValueError(f"images must have shape (n, {', '.join(map(str, self.input_shape))}), got {images.shape}")
        out = np.empty((len(images), self.dims), dtype=np.float32)
        b = self.options.batch_size
        for start in range(0, len(images), b):
            chunk = images[start : start + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.full((b - n, *self.input_shape), 255, np.uint8)])
            out[start : start + n] = self._run(chunk)[:n]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return EmbeddingResult(out / np.maximum(norms, _EPS))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One interpreter call: (batch_size, S, S, C) uint8 → (batch_size, D) float32 (not normalised)."""
        x = self._int8_table[batch] if self._int8_table is not None else batch.astype(np.float32)
        try:
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            y = self._interpreter.get_tensor(self._output["index"])
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(
                f"LiteRT failed to run {self.options.model_path} on a batch of {len(batch)}: {exc}"
            ) from exc
        if self._output["dtype"] == np.int8:
            scale, zero = self._output["quantization"]
            return dequantize(y, scale, zero)
        return y.astype(np.float32)

    def _check_open(self) -> None:
        if self._interpreter is None:
            raise ValueError(f"{type(self).__name__} for {self.options.model_path} is closed; create a new one")

    def close(self) -> None:
        """Release the interpreter; later calls raise ``ValueError``. Closing twice is harmless."""
        self._interpreter = None

    def __enter__(self: _Encoder) -> _Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _model_errors(bundle: Bundle) -> Iterator[None]:
    """A bundle's model that LiteRT cannot load, or whose shape contradicts the bundle, is a broken bundle."""
    try:
        yield
    except (RuntimeError, ValueError) as exc:
        raise BundleFormatError(f"bundle {bundle.path}: {exc}") from None


class SketchEncoder(_TFLiteEncoder):
    """Encodes sketches (strokes or rasterised images) into the catalog's embedding space.

    Tensor contract in :class:`SketchEncoderOptions`. Create with
    :meth:`create_from_bundle` (the usual way) or :meth:`create_from_options`.
    """

    _role = "sketch"
    _options_class = SketchEncoderOptions

    def __init__(self, options: EncoderOptions, raster: RasterOptions | None = None):
        """Open ``options.model_path`` rasterising with ``raster`` (default: ``options.raster``).

        Raises:
            ValueError: no raster options, two that differ, or a size that is not the model's input side.
            RuntimeError: LiteRT cannot load the model.
        """
        in_options = getattr(options, "raster", None)
        if raster is not None and in_options is not None and raster != in_options:
            raise ValueError(f"two raster settings: {raster} and options.raster {in_options}; give one")
        raster = raster if raster is not None else in_options
        if raster is None:
            raise ValueError(
                "SketchEncoder needs the raster options its model was trained with: set SketchEncoderOptions.raster"
            )
        super().__init__(options)
        if self.input_shape != (raster.size, raster.size, 1):
            raise ValueError(f"sketch model input {self.input_shape} does not match raster size {raster.size}")
        #: Rasteriser settings of this encoder (strokes → (S, S) pixels).
        self.raster = raster

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, options: SketchEncoderOptions | None = None) -> SketchEncoder:
        """The bundle's sketch encoder of ``options.precision`` with the bundle's raster settings.

        Args:
            bundle: an opened bundle.
            options: precision, threads and batch size; ``model_path`` must be
                None and ``raster`` None or equal to the bundle's.

        Raises:
            ValueError: options contradict the bundle.
            BundleFormatError: the bundle has no sketch model of that precision,
                LiteRT cannot load it, or its input does not match the raster settings.
        """
        resolved = cls._bundle_options(bundle, options)
        raster = getattr(resolved, "raster", None)
        if raster is not None and raster != bundle.raster_options:
            raise ValueError(
                f"options.raster {raster} differs from bundle {bundle.path}'s {bundle.raster_options}; leave it None"
            )
        with _model_errors(bundle):
            return cls(resolved, bundle.raster_options)

    def embed_strokes(self, strokes: Sequence[Stroke]) -> EmbeddingResult:
        """Rasterise one drawing ((m, 2) float point arrays, screen pixels, y down) and encode it.

        Returns:
            :class:`EmbeddingResult` with (1, D) float32 unit embeddings.

        Raises:
            EmptySketchError: nothing is drawn.
        """
        return self.embed(rasterize_strokes(strokes, self.raster)[None])


class PhotoEncoder(_TFLiteEncoder):
    """Encodes product photos into the catalog's embedding space.

    Tensor contract in :class:`PhotoEncoderOptions`. Create with
    :meth:`create_from_bundle` (the usual way) or :meth:`create_from_options`.
    """

    _role = "photo"
    _options_class = PhotoEncoderOptions

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, options: PhotoEncoderOptions | None = None) -> PhotoEncoder:
        """The bundle's photo encoder of ``options.precision``.

        Args:
            bundle: an opened bundle.
            options: precision, threads and batch size; ``model_path`` must be None.

        Raises:
            ValueError: options contradict the bundle.
            BundleFormatError: the bundle has no photo model of that precision, or LiteRT cannot load it.
        """
        resolved = cls._bundle_options(bundle, options)
        with _model_errors(bundle):
            return cls(resolved)

    def embed_photos(self, photos: Sequence[Image.Image]) -> EmbeddingResult:
        """Prepare PIL photos (on white, padded square, resized to S: ``photo.prepare_photo``) and encode them.

        Returns:
            :class:`EmbeddingResult` with (n, D) float32 unit embeddings.
        """
        size = self.input_shape[0]
        return self.embed(np.stack([prepare_photo(p, size) for p in photos]))
