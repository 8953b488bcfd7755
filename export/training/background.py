"""Training in a spawned process beside the build's main work.

``vitrina build`` trains the detector and the text-visual model (when it does not start
from the photo encoder) in their own processes while the sketch and photo encoders
train: small models leave cores idle, so two trainings side by side take little longer
than one (two 1,400-step detector runs side by side on 2 cores each took as long as
one alone). The models are the same as trained alone: fixed steps, fixed seeds,
deterministic ops, whatever else runs.

A job's child writes the step it reached to a progress file; :meth:`BackgroundJob.wait`
shows it as a progress bar once the build has nothing else to do.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

T = TypeVar("T")

#: Seconds between the parent's looks at a running job's progress file.
_POLL_SECONDS = 0.5


def save_arrays(path: Path, value: Any) -> None:
    """Write a dataclass whose fields are all arrays (a job's input) to ``path``, an ``.npz``."""
    np.savez(path, **{f.name: getattr(value, f.name) for f in fields(value)})


def load_arrays(path: str | Path, cls: type[T]) -> T:
    """The dataclass ``cls`` from the arrays :func:`save_arrays` wrote (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return cls(**{f.name: z[f.name] for f in fields(cls)})  # type: ignore[arg-type]


def write_progress(path: Path | None, step: int) -> None:
    """Record ``step`` in a job's progress file (no-op for None); called by the child."""
    if path is not None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(str(step))
        tmp.replace(path)


@dataclass
class BackgroundJob:
    """A spawned training process (:func:`start_job`).

    Attributes:
        process: the ``multiprocessing`` process; name: what the progress bar says.
        total: steps the job trains; progress_file: where its child writes the step reached.
        cleanup: files removed once the job ended or was cancelled (its input arrays).
    """

    process: Any
    name: str
    total: int
    progress_file: Path
    cleanup: list[Path] = field(default_factory=list)

    def step(self) -> int:
        """The step the child reported last (0 before its first report)."""
        try:
            return int(self.progress_file.read_text() or 0)
        except (OSError, ValueError):
            return 0

    def wait(self, progress: bool = True) -> None:
        """Block until the job ends, with a progress bar while it runs.

        Raises:
            RuntimeError: the child failed (its own message is above, on stderr).
        """
        if self.process.is_alive() and progress:
            with tqdm(total=self.total, initial=self.step(), desc=self.name, unit="step") as bar:
                while self.process.is_alive():
                    self.process.join(_POLL_SECONDS)
                    bar.update(max(0, self.step() - bar.n))
        self.process.join()
        self._remove_inputs()
        if self.process.exitcode != 0:
            raise RuntimeError(f"{self.name} failed in its process (exit code {self.process.exitcode}); see above")

    def cancel(self) -> None:
        """Stop the child if it still runs (idempotent); what it checkpointed stays."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self._remove_inputs()

    def _remove_inputs(self) -> None:
        for path in self.cleanup:
            path.unlink(missing_ok=True)


def start_job(
    target: Callable[..., None],
    args: Sequence[object],
    *,
    name: str,
    total: int,
    progress_file: Path,
    cleanup: Sequence[Path] = (),
) -> BackgroundJob:
    """Run ``target(*args)`` in a fresh spawned process (a TensorFlow of its own) and return at once.

    ``target`` must be importable (a module-level function) and write its step to
    ``progress_file`` with :func:`write_progress`.
    """
    progress_file.unlink(missing_ok=True)
    child = multiprocessing.get_context("spawn").Process(target=target, args=tuple(args))
    child.start()
    return BackgroundJob(process=child, name=name, total=total, progress_file=progress_file, cleanup=list(cleanup))
