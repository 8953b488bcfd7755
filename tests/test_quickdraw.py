import json

import numpy as np
import pytest

from vitrina.export.data.quickdraw import iter_ndjson, read_bitmaps
from vitrina.runtime.rasterize import RasterOptions, rasterize_strokes


def test_bitmap_npy(tmp_path):
    raw = np.zeros((3, 784), dtype=np.uint8)
    raw[1, 28 * 14 : 28 * 15] = 255  # a horizontal line in drawing 1
    np.save(tmp_path / "cat.npy", raw)
    images = read_bitmaps(tmp_path / "cat.npy")
    assert images.shape == (3, 28, 28)
    assert images[0].min() == 255  # blank drawing is all paper
    assert (images[1, 14] == 0).all() and images[1, 0, 0] == 255


def test_bitmap_npy_wrong_shape(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 100), dtype=np.uint8))
    with pytest.raises(ValueError, match="expected a \\(N, 784\\) uint8 array"):
        read_bitmaps(tmp_path / "bad.npy")


def test_simplified_and_raw_ndjson(tmp_path):
    lines = [
        {
            "word": "t-shirt",
            "key_id": "1",
            "recognized": True,
            "drawing": [[[0, 100, 100], [0, 0, 80]], [[10, 20], [50, 50]]],
        },
        {"word": "t-shirt", "key_id": "2", "recognized": False, "drawing": [[[5, 6, 7], [1, 2, 3], [0, 16, 32]]]},
    ]
    path = tmp_path / "shirts.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    sketches = list(iter_ndjson(path))
    assert [s.key_id for s in sketches] == ["1", "2"] and sketches[1].recognized is False
    assert sketches[0].strokes[0].tolist() == [[0, 0], [100, 0], [100, 80]]
    assert sketches[1].strokes[0].shape == (3, 2)
    image = rasterize_strokes(sketches[0].strokes, RasterOptions(size=32))
    assert image.min() == 0


def test_ndjson_bad_line_is_named(tmp_path):
    path = tmp_path / "bad.ndjson"
    path.write_text('{"word": "x", "drawing": [[[1, 2], [3]]]}\n')
    with pytest.raises(ValueError, match="line 1"):
        list(iter_ndjson(path))
