"""``vitrina bench kiosk``: touch-replay responsiveness of the kiosk app.

Held-out drawings from the bundle are replayed as synthetic touch events at
about 60 Hz (two points per frame). Results follow the pen: the app searches at
each stroke end (after ``debounce_ms``, 0 by default) and, while a stroke is
drawn, at most every ``live_search_ms``; the newest search wins. After each
stroke the replay lifts the finger for :data:`PEN_UP_S` (a hand moving to the
next stroke) plus any debounce, then draws the next stroke while the search runs
on the background thread. Measured:

* search → painted: from a search being submitted to the frame that shows its results;
* stroke end → painted: from the finger lifting to the first frame showing results
  of a search submitted at or after it (what the shopper feels; target p95 <= 120 ms);
* frame time while drawing: how long each frame took while a finger was down,
  with searches running in the background (target: none over 50 ms).

The report names the OpenGL renderer: offscreen on a machine without a GPU it
is Mesa's llvmpipe, which rasterises on the CPU, so frame times there include
rendering work that competes with the search for the same cores.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from vitrina.runtime.bench.stats import latency_stats

from ..config import KioskConfig
from ..geometry import fit_strokes
from ..main import prepare_kivy

#: Seconds per replayed frame (60 Hz).
FRAME_S = 1.0 / 60.0
#: Touch points replayed per frame while drawing.
POINTS_PER_FRAME = 2
#: Seconds the finger stays up between strokes.
PEN_UP_S = 0.25


def _ms_stats(seconds: list[float]) -> dict[str, float]:
    return latency_stats([s * 1000.0 for s in seconds], digits=2)


def measure_responsiveness(config: KioskConfig, bundle: Path, drawings: int = 20) -> dict[str, Any]:
    """Replay ``drawings`` held-out drawings through the real app, offscreen at 1280×800.

    Returns the report: the GL renderer, counts, latency statistics in ms
    (``search_to_painted_ms``, ``stroke_end_to_painted_ms``,
    ``frame_ms_while_drawing``, ``gc_pause_ms`` per generation; see
    :func:`vitrina.runtime.bench.stats.latency_stats`), ``frames_over_50ms`` and
    whether the targets were met. Raises ValueError for a bundle that does not
    open or has no held-out strokes.
    """
    prepare_kivy(windowed=True, headless=True, size=(1280, 800))
    from kivy.base import EventLoop
    from kivy.graphics.opengl import GL_RENDERER, glGetString

    from ..app import KioskApp
    from .replay import SyntheticTouch, frames, wait_for

    app = KioskApp(config, bundle, lock_down=False)
    app.start_in_window()
    if app.engine is None:
        app.close_in_window()
        raise ValueError(f"cannot open bundle {bundle}: {app.unavailable_detail}")
    held_out = [s for _, s in app.engine.bundle.eval_strokes()][:drawings]
    if not held_out:
        app.close_in_window()
        raise ValueError(f"bundle {bundle} has no held-out strokes to replay")
    app.start_session()
    frames(5)
    wait_for(app.searches.worker.idle, timeout=30)  # the start-up warm-up search, as before a shopper's first touch
    renderer = glGetString(GL_RENDERER).decode(errors="replace")
    canvas = app.screen("draw").canvas_widget
    debounce = config.debounce_ms / 1000.0
    frame_times: list[float] = []
    stroke_ends: list[float] = []
    gc_pauses: list[tuple[int, float]] = []  # (generation, seconds) of every collection during the replay
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started.append(time.perf_counter())
        elif gc_started:
            gc_pauses.append((int(info["generation"]), time.perf_counter() - gc_started.pop()))

    gc.callbacks.append(on_gc)

    def frame(drawing: bool) -> None:
        start = time.monotonic()
        EventLoop.idle()
        spent = time.monotonic() - start
        if drawing:
            frame_times.append(spent)
        time.sleep(max(0.0, FRAME_S - spent))

    def idle_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame(False)

    try:
        for strokes in held_out:
            canvas.reset()
            for line in fit_strokes(strokes, canvas.width, canvas.height, canvas.center):
                touch = SyntheticTouch(*line[0])
                touch.down()
                for i, (x, y) in enumerate(line[1:], start=1):
                    touch.move_to(x, y)
                    if i % POINTS_PER_FRAME == 0:
                        frame(True)
                stroke_ends.append(time.monotonic())  # before up(): lifting the finger submits the search
                touch.up()
                idle_for(debounce + PEN_UP_S)  # the search starts; the next stroke is drawn while it runs
            idle_for(0.5)
    finally:
        gc.callbacks.remove(on_gc)
        app.close_in_window()
    painted = [(submitted, shown) for kind, _, submitted, shown in app.searches.paint_log.painted if kind == "sketch"]
    search = [shown - submitted for submitted, shown in painted]
    felt = _felt(stroke_ends, painted)
    over = sum(1 for t in frame_times if t > 0.050)
    search_stats = _ms_stats(search)
    felt_stats = _ms_stats(felt)
    return {
        "gl_renderer": renderer,  # llvmpipe = software rendering: frames then compete with the search for the CPU
        "drawings": len(held_out),
        "searches_painted": len(painted),
        "search_to_painted_ms": search_stats,
        "stroke_end_to_painted_ms": felt_stats,
        "strokes": len(stroke_ends),
        "debounce_ms": config.debounce_ms,
        "live_search_ms": config.live_search_ms,
        "frame_ms_while_drawing": _ms_stats(frame_times),
        "frames_over_50ms": over,
        "gc_pause_ms": {f"gen{g}": _ms_stats([t for gen, t in gc_pauses if gen == g]) for g in (0, 1, 2)},
        "targets": {
            "search_to_painted_p95_ms<=150": bool(search) and search_stats["p95"] <= 150.0,
            "stroke_end_to_painted_p95_ms<=120": bool(felt) and felt_stats["p95"] <= 120.0,
            "no_frame_over_50ms": over == 0,
        },
    }


def _felt(stroke_ends: list[float], painted: list[tuple[float, float]]) -> list[float]:
    """Seconds from each stroke end to the first frame showing a search submitted at or after it
    (``painted``: (submitted, shown) monotonic seconds); a stroke end with none is left out."""
    felt = []
    for end in stroke_ends:
        shown = [s for submitted, s in painted if submitted >= end]
        if shown:
            felt.append(min(shown) - end)
    return felt
