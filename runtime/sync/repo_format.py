"""The sync repository's layout, shared by the publisher (writes it) and the device client (reads it).

A TUF repository (The Update Framework, python-tuf) with consistent snapshots, plus the
content-addressed bundle files the signed manifests point at::

    metadata/<N>.root.json          root, every version kept (devices walk the chain)
    metadata/timestamp.json         the only file without a version in its name (expires in ~1 day)
    metadata/<N>.snapshot.json
    metadata/<N>.targets.json
    targets/catalogs.json           target: {"catalogs": [NAME, ...]}  (stored as <sha256>.catalogs.json)
    targets/<NAME>/manifest.json    target: the bundle's manifest, signature-free; custom:
                                    {"version": N, "patches": {REL: {"from", "to", "target"}}}
    targets/<NAME>/patches/<FROM16>-<TO16>.bsdiff   target: a bsdiff patch between two files
    blobs/<sha256>                  every bundle file, named by its hash (authenticated by the manifest)
    migration.json                  optional: the TUF root signed by the pre-TUF Ed25519 key

Target files are stored under their sha256 (``targets/<NAME>/<sha256>.manifest.json``), so a
device that read the old metadata still finds the old files while a new version is published.
"""

from __future__ import annotations

import re

METADATA = "metadata"
TARGETS = "targets"
BLOBS = "blobs"
MIGRATION = "migration.json"
CATALOGS_TARGET = "catalogs.json"
CATALOG_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


def manifest_target(catalog: str) -> str:
    """The TUF target path of a catalog's latest manifest."""
    return f"{catalog}/manifest.json"


def patch_target(catalog: str, from_sha: str, to_sha: str) -> str:
    """The TUF target path of the bsdiff patch turning the file ``from_sha`` into ``to_sha``."""
    return f"{catalog}/patches/{from_sha[:16]}-{to_sha[:16]}.bsdiff"
