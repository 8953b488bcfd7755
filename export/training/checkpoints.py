"""Checkpoints of every training loop (``encoders.py``, ``detector.py``): durable, resumable, never mixed.

A checkpoint is a set of files named after its step (one ``<role>-<step>.weights.h5``
per model, one ``<prefix>-<step>.npz`` of other arrays such as the optimizer's
variables) plus ``state.json``, which names them and is replaced last: a crash at
any point leaves either the previous checkpoint or the new one, never a mix of
the two. A run resumes only a checkpoint whose :func:`fingerprint` (settings and
data) matches its own.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vitrina.runtime.files import fsync_dir, write_atomic

STATE_FILE = "state.json"


def fingerprint(*parts: object) -> str:
    """16 hex digits naming a training run's settings and data (dataclasses as their fields,
    other objects as JSON, or ``str`` when JSON has no form for them)."""
    text = json.dumps(
        [asdict(p) if is_dataclass(p) and not isinstance(p, type) else p for p in parts], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_weights_durably(model: keras.Model, path: Path) -> None:
    """``model.save_weights`` to a temporary sibling, fsync, rename over ``path``.

    Not :func:`vitrina.runtime.files.write_atomic`: Keras writes the HDF5 file
    itself from a path (h5py), so there are no bytes to hand over; the same
    steps (temporary file, fsync, ``os.replace``) are done here instead.
    """
    tmp = path.with_name(f".{path.name[: -len('.weights.h5')]}.tmp-{os.getpid()}.weights.h5")  # Keras wants the suffix
    model.save_weights(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`restore_checkpoint` read back.

    Attributes:
        step: training steps done when it was written.
        arrays: the non-model arrays saved with it (name → array).
        sampler: the batch sampler's state (JSON), ``{}`` when none was saved.
        summary: seconds and loss so far (``seconds_total``, ``final_loss``) when saved.
    """

    step: int
    arrays: dict[str, np.ndarray]
    sampler: dict[str, Any]
    summary: dict[str, Any]


def save_checkpoint(
    directory: Path,
    step: int,
    *,
    run: str,
    models: Mapping[str, keras.Model],
    arrays: Mapping[str, np.ndarray],
    prefix: str = "state",
    sampler: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
) -> None:
    """Write the checkpoint of ``step`` into ``directory`` (made if missing) and drop the previous one's files.

    ``run`` is the run's :func:`fingerprint`; ``models`` maps a role to its Keras model,
    ``arrays`` names the other arrays (float or int, any shape) to keep.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = {role: f"{role}-{step:07d}.weights.h5" for role in models} | {"state": f"{prefix}-{step:07d}.npz"}
    for role, model in models.items():
        save_weights_durably(model, directory / files[role])
    buffer = io.BytesIO()
    np.savez(buffer, **dict(arrays))  # type: ignore[arg-type]  # numpy stubs type **kwds as allow_pickle
    write_atomic(directory / files["state"], buffer.getvalue())
    state = {"step": step, "fingerprint": run, "files": files, "sampler": dict(sampler or {}), **(summary or {})}
    write_atomic(directory / STATE_FILE, json.dumps(state).encode())  # last: it marks completeness
    fsync_dir(directory)
    keep = set(files.values()) | {STATE_FILE}
    for old in directory.iterdir():
        if old.name not in keep and old.name.endswith((".weights.h5", ".npz")):
            old.unlink()


def restore_checkpoint(directory: Path, *, run: str, models: Mapping[str, keras.Model]) -> Checkpoint | None:
    """Load the checkpoint in ``directory`` into ``models`` if it was written by run ``run``
    (the same :func:`fingerprint`); None when there is nothing to resume."""
    state_path = directory / STATE_FILE
    if not state_path.is_file():
        return None
    state = json.loads(state_path.read_text())
    if state.get("fingerprint") != run or "files" not in state:
        return None
    files = state["files"]
    for role, model in models.items():
        model.load_weights(directory / files[role])
    with np.load(directory / files["state"], allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in saved.files}
    summary = {k: state[k] for k in ("seconds_total", "final_loss") if k in state}
    return Checkpoint(int(state["step"]), arrays, state.get("sampler", {}), summary)
