"""Reader for the Fashion-MNIST IDX files of Debian's ``dataset-fashion-mnist``.

70,000 Zalando product photos, 28×28 grayscale (white product on black), 10
classes, MIT licence; the project installs the package itself (see Makefile).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(os.environ.get("VITRINA_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class Split:
    """Attributes: images (n, 28, 28) uint8, 0 background, 255 product; labels (n,) uint8 class index."""

    images: np.ndarray
    labels: np.ndarray


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Fashion-MNIST file {path} not found: install it with `apt-get install dataset-fashion-mnist` "
            "or point VITRINA_FASHION_MNIST / --source at a folder holding the IDX .gz files"
        ) from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable gzip IDX file: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != expected_dims:
        raise ValueError(f"{path} is not an IDX uint8 file with {expected_dims} dimensions")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims))
    offset = 4 + 4 * expected_dims
    count = int(np.prod(shape))
    if len(data) - offset != count:
        raise ValueError(f"{path} holds {len(data) - offset} values, its header says {count}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_split(split: str, source: Path = DEFAULT_DIR) -> Split:
    """Load the dataset's own ``"train"`` (60,000) or ``"test"`` (10,000) split."""
    if split not in _FILES:
        raise ValueError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    images_name, labels_name = _FILES[split]
    images = _read_idx(Path(source) / images_name, 3)
    labels = _read_idx(Path(source) / labels_name, 1)
    if len(images) != len(labels):
        raise ValueError(f"{source}: {len(images)} {split} images but {len(labels)} labels")
    return Split(images, labels)
