"""The device's bundle store: installed bundles, the active pointer, rollback and gc.

Layout under a root folder (``vitrina sync --root``, the kiosk's ``device_root``)::

    bundles/<catalog>-v<version>/   installed, verified bundles (A/B/C slots)
    current -> bundles/...          symlink to the active bundle
    staging/<catalog>-v<version>-<manifest hash>/
                                    a sync in progress (kept for resume)

Activation swaps ``current`` with a rename of a fresh symlink (atomic on
POSIX) and fsyncs the root, so ``current`` always names a complete bundle:
the old one or the new one, never a half-written folder. Apps open
``<root>/current``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from vitrina.runtime.bundle import MANIFEST, Bundle, BundleError
from vitrina.runtime.files import fsync_dir

CURRENT = "current"
BUNDLES = "bundles"
STAGING = "staging"
KEEP_PREVIOUS = 2
_SLOT = re.compile(r"^(?P<name>.+)-v(?P<version>\d+)$")


class StoreError(Exception):
    """The store cannot do what was asked (no such version, nothing to roll back to...)."""


@dataclass(frozen=True)
class Installed:
    """One installed bundle. version: the signed release version (0 if unsigned)."""

    catalog: str
    version: int
    path: Path
    active: bool


def slot_name(catalog: str, version: int) -> str:
    """The folder name of an installed bundle, ``<catalog>-v<version>``; refuses names that cannot name a folder."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", catalog) or catalog.startswith("."):
        raise StoreError(f"catalog name {catalog!r} cannot name a folder: use letters, digits, '.', '_' and '-'")
    return f"{catalog}-v{version}"


class DeviceStore:
    """Bundles installed under ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def current_link(self) -> Path:
        return self.root / CURRENT

    def ensure(self) -> None:
        (self.root / BUNDLES).mkdir(parents=True, exist_ok=True)
        (self.root / STAGING).mkdir(parents=True, exist_ok=True)

    def current(self) -> Path | None:
        """The active bundle folder, or None when nothing is active."""
        link = self.current_link
        if not link.is_symlink():
            return None
        target = (self.root / os.readlink(link)).resolve()
        return target if target.is_dir() else None

    def current_manifest(self) -> dict | None:
        path = self.current()
        if path is None:
            return None
        try:
            return json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def installed(self) -> list[Installed]:
        """Installed bundles, oldest version first."""
        folder = self.root / BUNDLES
        if not folder.is_dir():
            return []
        active = self.current()
        out = []
        for path in folder.iterdir():
            m = _SLOT.match(path.name)
            if path.is_dir() and m:
                out.append(
                    Installed(m["name"], int(m["version"]), path, active is not None and path.resolve() == active)
                )
        return sorted(out, key=lambda i: (i.catalog, i.version))

    def slot(self, catalog: str, version: int) -> Path:
        return self.root / BUNDLES / slot_name(catalog, version)

    def activate(self, path: Path, verify: bool = True) -> None:
        """Point ``current`` at ``path`` (a folder under bundles/) atomically.

        ``verify`` hashes every file first; sync passes False for a bundle it
        verified moments before (124 MB hashed once, not twice).
        """
        path = Path(path)
        if path.parent.resolve() != (self.root / BUNDLES).resolve():
            raise StoreError(f"{path} is not an installed bundle under {self.root / BUNDLES}")
        try:
            Bundle.open(path, verify=verify)
        except BundleError as exc:
            raise StoreError(f"refusing to activate {path.name}: {exc}") from None
        tmp = self.root / f".{CURRENT}.tmp-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(Path(BUNDLES) / path.name, tmp)
        os.replace(tmp, self.current_link)
        fsync_dir(self.root)

    def activate_version(self, version: int, catalog: str | None = None) -> Installed:
        matches = [i for i in self.installed() if i.version == version and (catalog is None or i.catalog == catalog)]
        if not matches:
            have = ", ".join(f"{i.catalog} v{i.version}" for i in self.installed()) or "none"
            raise StoreError(f"no installed bundle with version {version} (installed: {have})")
        if len(matches) > 1:
            raise StoreError(f"several catalogs have version {version}: name one with --catalog")
        self.activate(matches[0].path)
        return matches[0]

    def rollback(self) -> Installed:
        """Activate the newest installed version older than the active one (same catalog)."""
        active = next((i for i in self.installed() if i.active), None)
        if active is None:
            raise StoreError("no active bundle to roll back from")
        older = [i for i in self.installed() if i.catalog == active.catalog and i.version < active.version]
        if not older:
            raise StoreError(
                f"{active.catalog} v{active.version} is the oldest installed version: nothing to roll back to"
            )
        self.activate(older[-1].path)
        return older[-1]

    def gc(self, keep_previous: int = KEEP_PREVIOUS, staging: bool = False) -> list[Path]:
        """Remove installed bundles other than the active one and the ``keep_previous``
        newest others of its catalog (and all staging folders when ``staging``). Returns what was removed."""
        removed = []
        active = next((i for i in self.installed() if i.active), None)
        by_catalog: dict[str, list[Installed]] = {}
        for i in self.installed():
            by_catalog.setdefault(i.catalog, []).append(i)
        for catalog, items in by_catalog.items():
            others = [i for i in items if not i.active]
            keep = (
                others[-keep_previous:] if keep_previous > 0 and (active is None or active.catalog == catalog) else []
            )
            for i in others:
                if i not in keep:
                    shutil.rmtree(i.path)
                    removed.append(i.path)
        if staging and (self.root / STAGING).is_dir():
            for path in (self.root / STAGING).iterdir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed
