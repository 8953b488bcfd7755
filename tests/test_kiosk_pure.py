"""Kiosk logic that needs no window: geometry, PIN hashing, the search worker (the config: test_kiosk_config.py)."""

import threading
import time

import numpy as np
import pytest

from vitrina.kiosk_app.config import hash_pin, verify_pin
from vitrina.kiosk_app.geometry import (
    clip_text,
    fit_box,
    fit_strokes,
    interpolate,
    layout_for,
    rects_overlap,
    stroke_hit,
    to_search_strokes,
)
from vitrina.kiosk_app.paint_log import PaintLog
from vitrina.kiosk_app.worker import SearchWorker


def test_interpolate_spacing_and_endpoint():
    pts = interpolate(0, 0, 10, 0, spacing=3)
    assert pts[-1] == (10, 0) and len(pts) == 4
    assert all(abs(b[0] - a[0]) <= 3 for a, b in zip([(0, 0)] + pts, pts))


def test_search_strokes_flip_y():
    (stroke,) = to_search_strokes([[0, 100, 10, 90]], height=100)
    assert stroke.tolist() == [[0, 0], [10, 10]]


def test_stroke_hit():
    flat = [0, 0, 100, 0]
    assert stroke_hit(flat, 50, 5, radius=6) and not stroke_hit(flat, 50, 20, radius=6)
    assert stroke_hit([5, 5], 6, 6, radius=2)


@pytest.mark.parametrize("size, portrait", [((1920, 1080), False), ((1280, 800), False), ((720, 1280), True)])
def test_layout_for_orientation(size, portrait):
    layout = layout_for(*size)
    assert layout.portrait is portrait
    results_width = size[0] if portrait else size[0] * 0.42
    assert 2 * (layout.tile + 8) <= results_width  # at least two result columns fit


def test_rects_overlap():
    assert rects_overlap((0, 0, 10, 10), (5, 5, 10, 10))
    assert not rects_overlap((0, 0, 10, 10), (10, 0, 10, 10))


def test_pin_hash_round_trip_and_no_plain_pin():
    stored = hash_pin("4821")
    assert "4821" not in stored and verify_pin("4821", stored)
    assert not verify_pin("4822", stored) and not verify_pin("4821", None) and not verify_pin("4821", "garbage")
    assert hash_pin("4821") != stored  # salted
    with pytest.raises(ValueError, match="4 to 12 digits"):
        hash_pin("12a4")


def test_worker_newest_request_wins_per_kind():
    replies, started, release = [], threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(5)
        return "first"

    worker = SearchWorker(replies.append)
    assert worker.idle()
    worker.submit("sketch", 1, slow)
    started.wait(5)
    assert not worker.idle()  # running
    worker.submit("sketch", 2, lambda: "stale")  # replaced before it starts
    worker.submit("sketch", 3, lambda: "newest")
    worker.submit("similar", 1, lambda: "other kind kept")
    release.set()
    deadline = time.monotonic() + 5
    while not (len(replies) == 3 and worker.idle()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.idle()
    worker.stop()
    assert [(r.kind, r.generation, r.value) for r in replies] == [
        ("sketch", 1, "first"),
        ("sketch", 3, "newest"),
        ("similar", 1, "other kind kept"),
    ]


def test_worker_reports_errors():
    replies = []
    worker = SearchWorker(replies.append)
    worker.submit("text", 1, lambda: 1 / 0)
    deadline = time.monotonic() + 5
    while not replies and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert isinstance(replies[0].error, ZeroDivisionError)


def test_clip_text():
    assert clip_text("Polera roja", 400, 13) == "Polera roja"
    clipped = clip_text("Pantalón de tela azul marino", 60, 13)
    assert clipped.endswith("…") and len(clipped) <= 8


def test_fit_strokes_centres_and_flips():
    strokes = [np.array([[0.0, 0.0], [100.0, 0.0]]), np.array([[0.0, 50.0]])]
    fitted = fit_strokes(strokes, width=400, height=200, center=(500, 300))
    pts = np.concatenate(fitted)
    assert pts[:, 0].min() == pytest.approx(500 - 70) and pts[:, 0].max() == pytest.approx(500 + 70)  # 0.7 × short side
    assert fitted[1][0, 1] < fitted[0][0, 1]  # y down in, y up out: the lower point ends up lower


def test_pen_strokes_keep_black_ink_as_arrays_and_colour_as_pen_strokes():
    from vitrina.kiosk_app.geometry import pen_strokes
    from vitrina.runtime.rasterize import PenStroke

    flat = [0.0, 100.0, 10.0, 90.0, 20.0, 100.0]
    out = pen_strokes(
        [
            (flat, (0.08, 0.08, 0.09), False),
            (flat, (0.78, 0.12, 0.18), False),
            (flat, (0.08, 0.08, 0.09), True),
            ([], (1, 0, 0), False),
        ],
        height=100.0,
    )
    assert len(out) == 3  # the empty stroke is dropped
    assert not isinstance(out[0], PenStroke)
    np.testing.assert_allclose(out[0], [[0, 0], [10, 10], [20, 0]])  # y flipped to point down
    assert isinstance(out[1], PenStroke) and out[1].color == (199, 31, 46) and not out[1].fill
    assert isinstance(out[2], PenStroke) and out[2].fill and out[2].color == (20, 20, 23)  # a black fill is colour


def test_fit_box_keeps_aspect_centres_and_scales_down_only_when_asked():
    assert fit_box((28, 28), (10, 20, 100, 100)) == (10, 20, 100, 100)
    assert fit_box((200, 50), (0, 0, 100, 100)) == (0, 37.5, 100, 25)
    assert fit_box((40, 10), (0, 0, 100, 20), upscale=False) == (30, 5, 40, 10)
    assert fit_box(None, (0, 0, 100, 20)) == (50, 10, 0, 0)


def test_paint_log_counts_results_already_on_screen_at_once():
    log = PaintLog()
    log.note_filled("sketch", 1, submitted=0.0)
    log.note_filled("sketch", 2, submitted=0.0, on_screen=True)
    assert [p[1] for p in log.painted] == [2] and [a[1] for a in log.awaiting] == [1]
    log.on_flip()
    assert [p[1] for p in log.painted] == [2, 1] and not log.awaiting
