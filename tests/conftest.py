"""Shared fixtures: a small real demo catalog (Fashion-MNIST) and a bundle built
from it with the ``tiny`` profile (real training, real TFLite, real LiteRT)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Property tests (hypothesis): every property runs at least 200 examples, in CI too;
# no per-example deadline (shared 2-core machines are noisy). VITRINA_HYPOTHESIS=dev runs 50.
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("VITRINA_HYPOTHESIS", "ci"))

ASSETS = Path(__file__).resolve().parent.parent / "assets"

# Kivy (SDL2) and TensorFlow crash when loaded into one process: the GUI tests
# run as a separate pytest process (`make test` does both, VITRINA_GUI_TESTS=1 second).
collect_ignore = [] if os.environ.get("VITRINA_GUI_TESTS") else ["gui"]
TINY_TRAIN, TINY_TEST = 480, 160


@pytest.fixture(scope="session")
def demo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vitrina.export.data.demo_catalog import write_demo_catalog

    out = tmp_path_factory.mktemp("demo-catalog")
    write_demo_catalog(out, limit_train=TINY_TRAIN, limit_test=TINY_TEST)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(demo_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vitrina.export.build import BuildOptions, build_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    build_bundle(demo_catalog, out, BuildOptions(profile="tiny", workers=1, progress=False))
    return out


@pytest.fixture()
def strokes_file() -> Path:
    return ASSETS / "sketches" / "trousers.json"
