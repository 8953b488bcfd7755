"""The sync repository: plain files any static web server (or a USB stick) can serve.

Layout (``vitrina publish BUNDLE --repo DIR`` writes it)::

    index.json                         catalogs and their latest versions, key endorsements
    catalogs/<name>/<version>/manifest.json    the bundle's signed manifest, byte for byte
    catalogs/<name>/<version>/signature.json
    catalogs/<name>/<version>/patches.json     deltas from the previous version (optional)
    blobs/<sha256>                     every bundle file, named by its hash
    patches/<sha256>                   bsdiff patches, named by their hash

``index.json``::

    {"format": "vitrina-repo", "format_version": 1,
     "catalogs": {"demo-catalog": {"version": 3, "path": "catalogs/demo-catalog/3"}},
     "keys": [<endorsements, see signing.py>]}

Nothing here is trusted by a device on its own: the manifest's signature,
version and expiry are checked, and every file (patched or downloaded) must
hash to what the signed manifest says. ``patches.json`` only offers shortcuts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitrina.runtime.bundle import MANIFEST, Bundle, release_version
from vitrina.runtime.files import copy_atomic, write_atomic
from vitrina.runtime.sync.gate import GateError, check_bundle
from vitrina.runtime.sync.repo_format import BLOBS, INDEX, PATCHES, REPO_FORMAT, REPO_FORMAT_VERSION, catalog_path
from vitrina.runtime.sync.trust import SIGNATURE_FILE

# A patch is published only when it is smaller than this share of the file.
MAX_PATCH_RATIO = 0.5


@dataclass(frozen=True)
class PublishResult:
    """Attributes: catalog, version; blobs_added / blob_bytes_added: new full files;
    patches: files with a delta from the previous version; patch_bytes: their total size."""

    catalog: str
    version: int
    blobs_added: int
    blob_bytes_added: int
    patches: int
    patch_bytes: int


def read_index(repo: Path) -> dict[str, Any]:
    """The repository's ``index.json``, or an empty index for a new repository folder."""
    path = repo / INDEX
    if not path.is_file():
        return {"format": REPO_FORMAT, "format_version": REPO_FORMAT_VERSION, "catalogs": {}, "keys": []}
    index = json.loads(path.read_text(encoding="utf-8"))
    if index.get("format") != REPO_FORMAT:
        raise ValueError(f"{path} is not a {REPO_FORMAT} index")
    return index


def _copy_blob(src: Path, repo: Path, sha: str) -> int:
    dest = repo / BLOBS / sha
    if dest.is_file():
        return 0
    return copy_atomic(src, dest)


def publish(
    bundle_dir: str | Path,
    repo_dir: str | Path,
    endorsements: list[dict] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> PublishResult:
    """Add a signed bundle to the repository and make it the catalog's latest version.

    Refuses an unsigned bundle, a bundle that fails the devices' activation gate
    (``runtime/sync/gate.py``: a model that will not load, arrays that do not
    match their headers, a query that fails), and a version not above the one
    published. Deltas (bsdiff) are computed from the previous published version's files.
    """
    try:
        check_bundle(bundle_dir)  # the same gate every device runs: a broken bundle is stopped here first
    except GateError as exc:
        raise ValueError(f"refusing to publish: {exc}") from None
    bundle = Bundle.open(bundle_dir)
    if not (bundle.path / SIGNATURE_FILE).is_file() or not bundle.manifest.get("release"):
        raise ValueError(f"{bundle.path} is not signed: run `vitrina sign {bundle.path} --key KEY --version N` first")
    repo = Path(repo_dir)
    repo.mkdir(parents=True, exist_ok=True)
    index = read_index(repo)
    name, version = bundle.name, release_version(bundle.manifest)
    previous = index["catalogs"].get(name)
    if previous and previous["version"] >= version:
        raise ValueError(
            f"{name} v{previous['version']} is already published: the new bundle's version ({version}) must be higher"
        )
    files = bundle.manifest["files"]
    added = added_bytes = 0
    for rel, entry in files.items():
        n = _copy_blob(bundle.path / rel, repo, entry["sha256"])
        added += n > 0
        added_bytes += n
    patches = _make_patches(repo, files, previous, progress)
    folder = repo / catalog_path(name, version)
    write_atomic(folder / MANIFEST, (bundle.path / MANIFEST).read_bytes())
    write_atomic(folder / SIGNATURE_FILE, (bundle.path / SIGNATURE_FILE).read_bytes())
    write_atomic(
        folder / PATCHES,
        json.dumps({"from_version": previous["version"] if previous else None, "files": patches}, indent=1).encode(),
    )
    index["catalogs"][name] = {"version": version, "path": catalog_path(name, version)}
    known = {e.get("key_id") for e in index.get("keys", [])}
    index["keys"] = index.get("keys", []) + [e for e in endorsements or [] if e.get("key_id") not in known]
    write_atomic(repo / INDEX, json.dumps(index, indent=2).encode())
    patch_bytes = sum(p["size"] for p in patches.values())
    return PublishResult(name, version, added, added_bytes, len(patches), patch_bytes)


def _make_patches(repo: Path, files: dict, previous: dict | None, progress: Callable[[str], None]) -> dict[str, dict]:
    """bsdiff patches from the previous version's file at the same path, where they pay off."""
    if not previous:
        return {}
    import bsdiff4

    old_manifest = json.loads((repo / previous["path"] / MANIFEST).read_text(encoding="utf-8"))
    old_files = old_manifest.get("files", {})
    out = {}
    for rel, entry in files.items():
        old = old_files.get(rel)
        if not old or old["sha256"] == entry["sha256"] or not (repo / "blobs" / old["sha256"]).is_file():
            continue
        progress(f"delta {rel}")
        patch = bsdiff4.diff(
            (repo / "blobs" / old["sha256"]).read_bytes(), (repo / "blobs" / entry["sha256"]).read_bytes()
        )
        if len(patch) > MAX_PATCH_RATIO * entry["size"]:
            continue
        sha = hashlib.sha256(patch).hexdigest()
        dest = repo / "patches" / sha
        if not dest.is_file():
            write_atomic(dest, patch)
        out[rel] = {
            "from": old["sha256"],
            "to": entry["sha256"],
            "patch": f"patches/{sha}",
            "sha256": sha,
            "size": len(patch),
        }
    return out
