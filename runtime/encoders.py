"""Sketch and photo encoders running TFLite models through LiteRT.

Each encoder maps uint8 images to L2-normalised float32 embeddings. The TFLite
models take raw pixel values (0-255) and rescale inside the graph; an int8
model's input is quantised here with the model's own scale and zero point and
its output dequantised before normalisation (widened to float32 first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from .bundle import Bundle
from .litert import make_interpreter
from .photo import prepare_photo
from .rasterize import RasterOptions, Stroke, rasterize_strokes

_EPS = 1e-12


@dataclass(frozen=True)
class EncoderOptions:
    """How to run one encoder model.

    Attributes:
        model_path: the ``.tflite`` file.
        num_threads: CPU threads of the interpreter (fixed at creation).
        batch_size: images per interpreter call; 1 for interactive queries,
            larger for encoding a catalog or an eval set.
    """

    model_path: str
    num_threads: int = 1
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")


class _TFLiteEncoder:
    """Shared engine: input (n, S, S, C) uint8 → output (n, D) float32, unit norm."""

    def __init__(self, options: EncoderOptions):
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
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in self._input["shape"][1:])
        self.dims = int(self._output["shape"][-1])
        # uint8 pixels → the model's int8 input in one indexing op (a 256-entry table),
        # instead of float arithmetic on every pixel of every query.
        self._int8_table = None
        if self.quantized:
            scale, zero = self._input["quantization"]
            self._int8_table = np.clip(np.round(np.arange(256) / scale + zero), -128, 127).astype(np.int8)

    @property
    def quantized(self) -> bool:
        """True when the model takes int8 input (full-int8 model)."""
        return self._input["dtype"] == np.int8

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Encode images.

        Args:
            images: uint8 array (n, S, S, C) or (n, S, S) for one-channel models,
                where (S, S, C) is :attr:`input_shape`.

        Returns:
            (n, D) float32 L2-normalised embeddings.
        """
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
        return out / np.maximum(norms, _EPS)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        x = self._int8_table[batch] if self._int8_table is not None else batch.astype(np.float32)
        self._interpreter.set_tensor(self._input["index"], x)
        self._interpreter.invoke()
        y = self._interpreter.get_tensor(self._output["index"])
        if self._output["dtype"] == np.int8:
            scale, zero = self._output["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def close(self) -> None:
        """Release the interpreter."""
        self._interpreter = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SketchEncoder(_TFLiteEncoder):
    """Encodes sketches (strokes or images) into the catalog's embedding space.

    Tensor contract: input (batch, S, S, 1) raw pixels, 255 paper and 0 ink;
    output (batch, D).
    """

    def __init__(self, options: EncoderOptions, raster: RasterOptions):
        super().__init__(options)
        if self.input_shape != (raster.size, raster.size, 1):
            raise ValueError(f"sketch model input {self.input_shape} does not match raster size {raster.size}")
        self.raster = raster

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, precision: str = "int8", num_threads: int = 1, batch_size: int = 1) -> "SketchEncoder":
        options = EncoderOptions(str(bundle.model_path("sketch", precision)), num_threads, batch_size)
        return cls(options, bundle.raster_options)

    def embed_strokes(self, strokes: Sequence[Stroke]) -> np.ndarray:
        """Rasterise one drawing and encode it: returns (1, D) float32."""
        return self.embed(rasterize_strokes(strokes, self.raster)[None])


class PhotoEncoder(_TFLiteEncoder):
    """Encodes product photos. Tensor contract: input (batch, S, S, 3) RGB 0-255; output (batch, D)."""

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, precision: str = "int8", num_threads: int = 1, batch_size: int = 1) -> "PhotoEncoder":
        return cls(EncoderOptions(str(bundle.model_path("photo", precision)), num_threads, batch_size))

    def embed_photos(self, photos: Sequence[Image.Image]) -> np.ndarray:
        """Prepare (pad, resize) PIL photos and encode them: returns (n, D) float32."""
        size = self.input_shape[0]
        return self.embed(np.stack([prepare_photo(p, size) for p in photos]))
