"""``vitrina bench sync``: delta size, sync time over loopback, and the kill -9 crash loop.

1. Keys for the four TUF roles; publish the bundle as v1; derive v2 by changing
   ``fraction`` of the products' metadata (price, title) and catalog codes
   (:func:`simulate_catalog_update`) and publish it, with deltas.
2. Serve the repository on 127.0.0.1; sync v1 into an empty device (full), then
   v2 (delta), then once more ("nothing new": the metadata a periodic check
   costs). Report bytes, requests and seconds of each.
3. Crash loop: ``kills`` times, start ``vitrina sync --no-delta`` towards the
   other version and kill -9 it at a random moment; then check the device's
   ``current`` bundle verifies and is v1 or v2. Count the outcomes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vitrina.runtime.bundle import MANIFEST, Bundle, BundleError, release_version
from vitrina.runtime.files import sha256_file
from vitrina.runtime.sync.client import sync
from vitrina.runtime.sync.repo_format import METADATA
from vitrina.runtime.sync.store import DeviceStore

from .repository import Repository
from .serve import serve_in_thread


def simulate_catalog_update(src: str | Path, dst: str | Path, fraction: float = 0.01, seed: int = 0) -> list[int]:
    """Copy bundle ``src`` to ``dst`` with ``fraction`` of its products changed:
    price +7%, title marked "(nuevo)", and their catalog code rows (and
    re-rank rows, when the bundle has them) perturbed.

    Stands in for the publisher's rebuild after a catalog edit; the manifest's
    hashes are recomputed for the changed files and the release entry
    dropped (publishing sets it). Returns the changed product indices.
    """
    src, dst = Path(src), Path(dst)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    bundle = Bundle.open(src)
    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    n = len(bundle.items)
    changed = np.sort(rng.choice(n, size=max(1, round(fraction * n)), replace=False))
    items = json.loads((dst / "items.json").read_text(encoding="utf-8"))
    for i in changed.tolist():
        items["items"][i]["price"] = round(items["items"][i]["price"] * 1.07, 2)
        items["items"][i]["title"] += " (nuevo)"
    (dst / "items.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    codes = np.load(dst / "codes/codes.npy", allow_pickle=False)
    rows = np.flatnonzero(np.isin(bundle.code_items, changed))
    if codes.dtype == np.uint8:
        codes[rows] ^= rng.integers(0, 256, size=codes[rows].shape, dtype=np.uint8) & np.uint8(0x11)
    else:
        noisy = codes[rows].astype(np.float32) + rng.normal(scale=0.05, size=codes[rows].shape).astype(np.float32)
        if bundle.code_spec.metric == "cosine":
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        codes[rows] = noisy.astype(codes.dtype)
    np.save(dst / "codes/codes.npy", codes)
    changed_files = ["items.json", "codes/codes.npy"]
    if bundle.has_rerank:  # the re-rank embeddings of those products change too
        rel = bundle.manifest["codes"]["rerank"]["file"]
        rerank = np.load(dst / rel, allow_pickle=False)
        rerank[rows] = np.clip(
            rerank[rows].astype(np.int16) + rng.integers(-6, 7, size=rerank[rows].shape), -127, 127
        ).astype(np.int8)
        np.save(dst / rel, rerank)
        changed_files.append(rel)
    manifest = json.loads((dst / MANIFEST).read_text(encoding="utf-8"))
    manifest.pop("release", None)
    for rel in changed_files:
        manifest["files"][rel] = {"sha256": sha256_file(dst / rel), "size": (dst / rel).stat().st_size}
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    Bundle.open(dst)
    return changed.tolist()


@dataclass(frozen=True)
class SyncBenchReport:
    """Figures of one run. Bytes are what the device read from the repository."""

    bundle_bytes: int
    changed_products: int
    full_sync_bytes: int
    full_sync_s: float
    delta_sync_bytes: int
    delta_sync_s: float
    delta_ratio: float
    check_bytes: int
    check_requests: int
    publish_patch_bytes: int
    crash_kills: int
    crash_outcomes: dict
    crash_resumed_runs: int

    def to_json(self) -> dict:
        return asdict(self)


def prepare_repository(bundle: Path, work: Path, fraction: float = 0.01) -> tuple[Path, Path, int]:
    """Keys (``work/keys``), v1 and v2 published to ``work/repo``, v1 alone to ``work/repo-v1``.

    Returns (repo, its root.json for devices to trust, patch bytes of v2).
    """
    v1, v2 = work / "v1", work / "v2"
    shutil.copytree(bundle, v1)
    simulate_catalog_update(v1, v2, fraction)
    repo_v1, _ = Repository.create(work / "repo-v1", [work / "keys"], generate_missing=True)
    repo_v1.publish_bundle(v1, version=1)
    shutil.copytree(work / "repo-v1", work / "repo")
    result = Repository(work / "repo", [work / "keys"]).publish_bundle(v2, version=2)
    return work / "repo", work / "repo" / METADATA / "1.root.json", result.patch_bytes


def run_sync_bench(
    bundle: str | Path,
    kills: int = 0,
    fraction: float = 0.01,
    progress: Callable[[str], None] = lambda _: None,
    seed: int = 0,
) -> SyncBenchReport:
    """Publish v1 and a v2 with ``fraction`` of the products changed, serve them on 127.0.0.1,
    time a full and a delta sync, then run ``kills`` kill -9 crash-loop iterations (0 skips it)."""
    bundle = Path(bundle)
    with tempfile.TemporaryDirectory(prefix="vitrina-syncbench-") as tmp:
        work = Path(tmp)
        progress("publishing v1 and v2 to a TUF repository (bsdiff deltas)")
        repo, root_json, patch_bytes = prepare_repository(bundle, work, fraction)
        repo_v1_only = work / "repo-v1"
        trusted = root_json.read_bytes()
        server, url_v2 = serve_in_thread(repo)
        server_v1, url_v1 = serve_in_thread(repo_v1_only)
        try:
            root = work / "device"
            progress("full sync of v1 over loopback")
            full = sync(url_v1, root, trusted)
            progress("delta sync of v2")
            delta = sync(url_v2, root, trusted)
            progress("'nothing new' check")
            check = sync(url_v2, root, trusted)
            if not check.up_to_date:
                raise RuntimeError("the third sync found something new: the bench's repository changed under it")
            outcomes, resumed = (
                _crash_loop(url_v2, root, root_json, kills, full.seconds, seed, progress) if kills else ({}, 0)
            )
        finally:
            server.shutdown()
            server_v1.shutdown()
        changed = round(fraction * len(Bundle.open(work / "v1", verify=False).items))
        return SyncBenchReport(
            bundle_bytes=full.full_size,
            changed_products=max(1, changed),
            full_sync_bytes=full.transferred,
            full_sync_s=full.seconds,
            delta_sync_bytes=delta.transferred,
            delta_sync_s=delta.seconds,
            delta_ratio=round(delta.transferred / max(full.transferred, 1), 5),
            check_bytes=check.transferred,
            check_requests=check.requests,
            publish_patch_bytes=patch_bytes,
            crash_kills=kills,
            crash_outcomes=outcomes,
            crash_resumed_runs=resumed,
        )


def _crash_loop(
    url: str, root: Path, pub: Path, kills: int, full_s: float, seed: int, progress: Callable[[str], None]
) -> tuple[dict, int]:
    """kill -9 a full (no-delta) sync at random moments; classify the device after each."""
    rng = np.random.default_rng(seed)
    store = DeviceStore(root)
    outcomes = {"old": 0, "new": 0, "other": 0}
    resumed = 0
    window = max(full_s * 1.3, 0.5)
    cmd = [
        sys.executable,
        "-m",
        "vitrina.runtime.cli",
        "sync",
        "--from",
        url,
        "--root",
        str(root),
        "--trust-root",
        str(pub),
        "--no-delta",
        "--quiet",
    ]
    for k in range(kills):
        before = release_version(store.current_manifest() or {})
        if before == 2:  # go back so the next sync has work to do
            store.activate_version(1)
            before = 1
        staged = any((root / "staging").iterdir()) if (root / "staging").is_dir() else False
        resumed += staged
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(float(rng.uniform(0.05, window)))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        outcomes[_classify(store, before)] += 1
        if (k + 1) % 20 == 0:
            progress(f"crash loop: {k + 1}/{kills} {outcomes}")
    return outcomes, resumed


def _classify(store: DeviceStore, before: int) -> str:
    path = store.current()
    if path is None:
        return "other"
    try:
        bundle = Bundle.open(path, verify=True)
    except BundleError:
        return "other"
    version = release_version(bundle.manifest)
    return "old" if version == before else "new" if version == 2 else "other"
