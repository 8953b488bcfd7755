"""GUI tests run in their own pytest process (``make test`` runs them second):
TensorFlow and Kivy's SDL2 crash when loaded into one process, so this process
never imports TensorFlow. The tiny bundle is built by a ``vitrina build``
subprocess instead of in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundle(demo_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gui-bundles") / "tiny"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitrina.runtime.cli",
            "build",
            "--catalog",
            str(demo_catalog),
            "--out",
            str(out),
            "--profile",
            "tiny",
            "--quiet",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
