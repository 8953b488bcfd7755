"""The device's bundle store: installed bundles, the active pointer, rollback and gc.

Layout under a root folder (``vitrina sync --root``, the kiosk's ``device_root``)::

    bundles/<catalog>-v<version>/   installed, verified bundles (A/B/C slots)
    current -> bundles/...          symlink to the active bundle
    staging/<catalog>-v<version>-<manifest hash>/
                                    a sync in progress (kept for resume)
    refused.json                    versions a plain sync must not activate:
                                    failed the activation gate, or rolled back by staff

Activation swaps ``current`` with a rename of a fresh symlink (atomic on
POSIX) and fsyncs the root, so ``current`` always names a complete bundle:
the old one or the new one, never a half-written folder. Apps open
``<root>/current``. Every activation passes the activation gate
(``gate.py``) first, so ``current`` never names a bundle that cannot search.
A version that failed the gate, or that staff rolled back from, is recorded
in ``refused.json``; sync does not take it again until a newer version is
published or staff activate it by number.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from vitrina.runtime.bundle import MANIFEST, BundleError
from vitrina.runtime.files import fsync_dir, write_atomic
from vitrina.runtime.timeutil import iso, utc_now

from .gate import check_bundle_isolated

CURRENT = "current"
BUNDLES = "bundles"
STAGING = "staging"
REFUSED = "refused.json"
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


@dataclass(frozen=True)
class Refusal:
    """A version a plain sync must not activate.

    Attributes: catalog, version; by: ``"gate"`` (failed the activation gate)
    or ``"rollback"`` (staff rolled back from it); reason: the message; when: ISO-8601 UTC.
    """

    catalog: str
    version: int
    by: str
    reason: str
    when: str


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

    def activate(self, path: Path, gate: bool = True) -> None:
        """Point ``current`` at ``path`` (a folder under bundles/) atomically.

        ``gate`` runs the activation gate first (``gate.check_bundle_isolated``:
        every file hashed, every model loaded, one query of each kind); sync
        passes False for a bundle that passed the gate moments before.

        Raises:
            StoreError: ``path`` is not an installed bundle, or it failed the gate.
        """
        path = Path(path)
        if path.parent.resolve() != (self.root / BUNDLES).resolve():
            raise StoreError(f"{path} is not an installed bundle under {self.root / BUNDLES}")
        if gate:
            try:
                check_bundle_isolated(path)
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
        self.clear_refusal(matches[0].catalog, version)  # staff chose this version by number
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
        self.refuse(
            active.catalog,
            active.version,
            by="rollback",
            reason=f"staff rolled back from {active.catalog} v{active.version} to v{older[-1].version}",
        )
        return older[-1]

    # --- versions a plain sync must not activate ---------------------------
    def refusals(self) -> list[Refusal]:
        """Versions recorded in ``refused.json`` (a malformed file reads as none: it only ever holds sync back)."""
        try:
            entries = json.loads((self.root / REFUSED).read_text(encoding="utf-8"))["refused"]
            return [
                Refusal(str(e["catalog"]), int(e["version"]), str(e["by"]), str(e["reason"]), str(e["when"]))
                for e in entries
            ]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return []

    def refusal(self, catalog: str, version: int) -> Refusal | None:
        """Why ``catalog`` ``version`` must not be activated by a plain sync, or None."""
        return next((r for r in self.refusals() if (r.catalog, r.version) == (catalog, version)), None)

    def refuse(self, catalog: str, version: int, *, by: str, reason: str) -> None:
        """Record that a plain sync must not activate ``catalog`` ``version`` (``by``: gate or rollback)."""
        kept = [r for r in self.refusals() if (r.catalog, r.version) != (catalog, version)]
        self._write_refusals([*kept, Refusal(catalog, version, by, reason, iso(utc_now()))])

    def clear_refusal(self, catalog: str, version: int) -> None:
        """Forget a refusal (staff activated the version by number)."""
        kept = [r for r in self.refusals() if (r.catalog, r.version) != (catalog, version)]
        if len(kept) != len(self.refusals()):
            self._write_refusals(kept)

    def _write_refusals(self, refusals: list[Refusal]) -> None:
        doc = {"refused": [asdict(r) for r in refusals[-64:]]}  # bounded: the newest 64
        write_atomic(self.root / REFUSED, json.dumps(doc, indent=2).encode())

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
