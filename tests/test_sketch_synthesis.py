import numpy as np

from vitrina.export.data.demo_catalog import tint
from vitrina.export.data.fashion_mnist import load_split
from vitrina.export.data.sketch_synthesis import render_sketches, simplify_polyline, synthesize_strokes
from vitrina.runtime.rasterize import RasterOptions


def product_images(n: int) -> np.ndarray:
    split = load_split("test")
    return np.stack([tint(split.images[i], (200, 30, 45)) for i in range(n)])


def test_render_is_deterministic_per_seed_and_parallel_safe():
    images = product_images(300)
    raster = RasterOptions(size=32)
    a = render_sketches(images, 2, raster, seed=3, workers=1, progress=False)
    b = render_sketches(images, 2, raster, seed=3, workers=2, progress=False)
    c = render_sketches(images, 2, raster, seed=4, workers=1, progress=False)
    assert a.shape == (300, 2, 32, 32) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert (a[:, 0] != a[:, 1]).any(axis=(1, 2)).mean() > 0.9  # variants differ


def test_sketches_look_like_line_drawings():
    sketches = render_sketches(product_images(50), 1, RasterOptions(size=48), seed=0, workers=1, progress=False)[:, 0]
    ink = (sketches < 128).mean(axis=(1, 2))
    assert (sketches[:, 0, 0] == 255).all()
    assert (ink > 0.02).all() and (ink < 0.6).all()


def test_sketch_keeps_the_outline_when_roughening_leaves_nothing(monkeypatch):
    import vitrina.export.data.sketch_synthesis as synthesis

    monkeypatch.setattr(synthesis, "_roughen", lambda stroke, rng, opts: [])
    strokes, widths = synthesize_strokes(product_images(1)[0], np.random.default_rng(0))
    assert strokes and sum(len(s) for s in strokes) > 10 and len(widths) == len(strokes)


def test_blank_photo_falls_back_to_a_box():
    strokes, widths = synthesize_strokes(np.full((28, 28, 3), 255, np.uint8), np.random.default_rng(0))
    assert strokes and len(widths) == len(strokes)


def test_simplify_keeps_endpoints_and_drops_collinear_points():
    line = np.stack([np.linspace(0, 10, 50), np.zeros(50)], axis=1)
    line[25, 1] = 3.0
    out = simplify_polyline(line, 0.5)
    assert out[0].tolist() == [0, 0] and out[-1].tolist() == [10, 0]
    assert 3 <= len(out) <= 5 and 3.0 in out[:, 1]  # the spike (and at most its two neighbours) kept
