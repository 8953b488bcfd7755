"""A broken bundle never crashes the kiosk: it shows "unavailable" with a short reason
and logs the full message to ``vitrina.kiosk`` (``<KIVY_HOME>/vitrina-kiosk.log``),
also with Kivy's console log off. Broken copies of the tiny bundle are built here,
with the manifest's hashes updated so that they pass the integrity check."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from vitrina.kiosk_app.main import prepare_kivy

prepare_kivy(windowed=True, headless=True, size=(1280, 800))  # before any kivy import

from kivy.uix.label import Label  # noqa: E402

from vitrina.kiosk_app.app import KioskApp  # noqa: E402
from vitrina.kiosk_app.config import KioskConfig, hash_pin  # noqa: E402
from vitrina.kiosk_app.failures import LOG_NAME  # noqa: E402
from vitrina.kiosk_app.strings import TEXTS  # noqa: E402
from vitrina.kiosk_app.tools.replay import draw_strokes, frames, sample_strokes, wait_for  # noqa: E402

PIN = "2468"


# --- broken bundles ---------------------------------------------------------------------------


def broken_copy(tiny_bundle, tmp_path, name="broken"):
    out = tmp_path / name
    shutil.copytree(tiny_bundle, out)
    return out


def rehash(bundle, rel):
    """Make the manifest agree with the file as it is now (size and sha256)."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    data = (bundle / rel).read_bytes()
    manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def corrupt_model(bundle, rel="models/sketch_int8.tflite"):
    path = bundle / rel
    path.write_bytes(b"\0" * 64 + path.read_bytes()[64:])  # the flatbuffer's header zeroed: LiteRT refuses it
    rehash(bundle, rel)


def truncate_codes(bundle):
    path = bundle / "codes/codes.npy"
    path.write_bytes(path.read_bytes()[:200])
    rehash(bundle, "codes/codes.npy")


def zero_codes(bundle):
    path = bundle / "codes/codes.npy"
    path.write_bytes(bytes(path.stat().st_size))
    rehash(bundle, "codes/codes.npy")


def mistype_manifest(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["codes"] = "x"
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def remove_bundle(bundle):
    shutil.rmtree(bundle)


# --- the kiosk --------------------------------------------------------------------------------


def make_app(bundle, **config):
    app = KioskApp(KioskConfig(admin_pin_hash=hash_pin(PIN), debounce_ms=50, **config), bundle, lock_down=True)
    app.start_in_window()
    frames(3)
    return app


class LogTail:
    """What the kiosk's log file gained since this object was made."""

    def __init__(self, app):
        self.path = app.log_path
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def text(self):
        with open(self.path, encoding="utf-8") as f:
            f.seek(self.start)
            return f.read()


def shown_texts(app):
    return " ".join(w.text for w in app.screen("unavailable").walk() if isinstance(w, Label))


#: After start, a failure the runtime wrapped as a BundleError reads "damaged", anything else "failed".
AFTER_START = ("reason_damaged", "reason_failed")


def assert_unavailable(app, reasons, detail_words, log):
    """On the unavailable screen with a short reason (one of ``reasons``, strings keys); the
    detail is in the log (with the traceback) and on the admin screen, never on the shoppers' screen."""
    frames(2)
    assert app.engine is None and app.manager.current == "unavailable"
    reasons = (reasons,) if isinstance(reasons, str) else reasons
    assert app.unavailable_reason in [app.texts[r] for r in reasons], app.unavailable_reason
    shown = shown_texts(app)
    assert app.unavailable_reason in shown and "Traceback" not in shown and "Error" not in shown
    logged = log.text()
    assert "ERROR vitrina.kiosk:" in logged and "Traceback" in logged, logged[-2000:]
    for word in detail_words:
        assert word in app.unavailable_detail and word in logged and word not in shown, (word, app.unavailable_detail)
    assert str(app.log_path) in app.bundle_summary and app.unavailable_detail in app.bundle_summary
    app.start_session()  # a shopper's touch: still unavailable
    assert app.manager.current == "unavailable"


@pytest.fixture()
def log_folder():
    """The kiosk log is in KIVY_HOME, written with Kivy's console log off."""
    assert os.environ["KIVY_NO_CONSOLELOG"] == "1"
    return os.environ["KIVY_HOME"]


@pytest.mark.parametrize(
    "damage, reason, words",
    [
        (corrupt_model, "reason_damaged", ["sketch_int8.tflite"]),
        (truncate_codes, "reason_damaged", ["codes.npy"]),
        (zero_codes, "reason_damaged", ["codes.npy"]),
        (mistype_manifest, "reason_damaged", ["manifest.json", "codes"]),
        (remove_bundle, "reason_missing", ["no bundle at"]),
    ],
)
def test_broken_bundle_at_start_shows_unavailable_and_logs(tiny_bundle, tmp_path, log_folder, damage, reason, words):
    bundle = broken_copy(tiny_bundle, tmp_path)
    damage(bundle)
    app = KioskApp(KioskConfig(), bundle)
    log = LogTail(app)
    assert str(app.log_path) == os.path.join(os.path.realpath(log_folder), LOG_NAME)
    app.start_in_window()
    try:
        assert_unavailable(app, reason, [*words, str(bundle)], log)
    finally:
        app.close_in_window()


@pytest.mark.parametrize(
    "error",
    [
        ValueError("Model provided has model identifier 'x', should be 'TFL3'"),  # LiteRT, not wrapped
        RuntimeError("Failed to allocate tensors"),
        AttributeError("'str' object has no attribute 'get'"),  # code reading a malformed manifest
    ],
)
def test_engine_load_failures_the_runtime_does_not_wrap(tiny_bundle, monkeypatch, error):
    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr("vitrina.kiosk_app.admin_actions.ProductSearch", fail)
    app = KioskApp(KioskConfig(language="en"), tiny_bundle)
    log = LogTail(app)
    app.start_in_window()
    try:
        assert_unavailable(app, "reason_damaged", [type(error).__name__, str(error)], log)
        assert app.unavailable_reason == TEXTS["en"]["reason_damaged"]
    finally:
        app.close_in_window()


def test_no_bundle_configured(log_folder):
    app = make_app(None)
    try:
        assert app.manager.current == "unavailable" and app.unavailable_reason == app.texts["reason_unconfigured"]
    finally:
        app.close_in_window()


def test_search_failing_after_start_shows_unavailable_then_recovers(tiny_bundle, log_folder):
    app = make_app(tiny_bundle)
    log = LogTail(app)
    try:
        engine = app.engine

        def fail(*_args, **_kwargs):
            raise RuntimeError("interpreter invoke failed")

        engine.by_strokes = fail
        app.start_session()
        frames(3)
        draw_strokes(sample_strokes(app))
        assert wait_for(lambda: app.manager.current == "unavailable", timeout=15)
        assert_unavailable(app, "reason_failed", ["sketch search", "RuntimeError: interpreter invoke failed"], log)
        assert app.results == [] and app.status == ""
        app.reset_session()  # the idle reset opens the bundle again: the failure may have been passing
        assert app.engine is not None and app.engine is not engine and app.manager.current == "attract"
        assert app.unavailable_reason == "" and str(app.log_path) not in app.bundle_summary
        assert "opened the bundle" in log.text()
    finally:
        app.close_in_window()


def test_warm_up_failure_is_a_bundle_failure(tiny_bundle, tmp_path, monkeypatch, log_folder):
    from vitrina.runtime.product_search import ProductSearch

    def fail(*_args, **_kwargs):
        raise RuntimeError("LiteRT could not run the sketch encoder")

    monkeypatch.setattr(ProductSearch, "by_strokes", fail)
    app = KioskApp(KioskConfig(), tiny_bundle)
    log = LogTail(app)
    app.start_in_window()
    try:
        assert wait_for(lambda: app.manager.current == "unavailable", timeout=15)
        assert_unavailable(app, "reason_failed", ["warm-up search", "LiteRT could not run"], log)
    finally:
        app.close_in_window()


def test_photo_model_broken_fails_at_the_first_photo_search(tiny_bundle, tmp_path, log_folder):
    from PIL import Image

    bundle = broken_copy(tiny_bundle, tmp_path)
    corrupt_model(bundle, "models/photo_int8.tflite")  # opened lazily: the kiosk starts
    app = make_app(bundle)
    log = LogTail(app)
    try:
        assert app.engine is not None and app.manager.current == "attract"
        Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(tmp_path / "shot.png")
        app.start_session()
        app.show("photo")
        app.searches.by_photo_file([str(tmp_path / "shot.png")])
        assert wait_for(lambda: app.manager.current == "unavailable", timeout=15)
        assert_unavailable(app, AFTER_START, ["photo search", "photo_int8.tflite"], log)
    finally:
        app.close_in_window()


def test_thumbnails_gone_while_running(tiny_bundle, tmp_path, log_folder):
    bundle = broken_copy(tiny_bundle, tmp_path)
    app = make_app(bundle)
    log = LogTail(app)
    try:
        last = len(app.engine.bundle.items) - 1
        for sheet in (bundle / "thumbs").iterdir():
            sheet.unlink()
        app.start_session()
        app.searches.show_detail(last)  # its sheet is decoded on the UI thread: not there any more
        assert_unavailable(app, AFTER_START, [f"showing product {last}", "sheet_"], log)
    finally:
        app.close_in_window()


def test_bad_photo_is_the_shoppers_input_not_a_bundle_failure(tiny_bundle, tmp_path, log_folder):
    app = make_app(tiny_bundle)
    try:
        (tmp_path / "bad.png").write_bytes(b"nope")
        app.start_session()
        app.show("photo")
        app.searches.by_photo_file([str(tmp_path / "bad.png")])
        assert wait_for(lambda: "cannot read photo bad.png" in app.status, timeout=15)
        assert app.engine is not None and app.manager.current == "photo"
    finally:
        app.close_in_window()


def test_retries_at_idle_reset_log_the_traceback_once(tiny_bundle, tmp_path, log_folder):
    bundle = broken_copy(tiny_bundle, tmp_path)
    truncate_codes(bundle)
    app = KioskApp(KioskConfig(), bundle)
    log = LogTail(app)
    app.start_in_window()
    try:
        app.reset_session()  # each idle reset tries the bundle again
        app.reset_session()
        logged = log.text()
        assert logged.count("cannot open the bundle") == 3 and logged.count("Traceback") == 1, logged
        assert app.manager.current == "unavailable"
    finally:
        app.close_in_window()
