"""The sync repository's layout, shared by the publisher (writes it) and the device client (reads it).

::

    index.json                                 {"format": "vitrina-repo", "format_version": 1,
                                                "catalogs": {NAME: {"version": N, "path": "catalogs/NAME/N"}},
                                                "keys": [endorsement, ...]}
    catalogs/<name>/<version>/manifest.json    the bundle's signed manifest, byte for byte
    catalogs/<name>/<version>/signature.json
    catalogs/<name>/<version>/patches.json     deltas from the previous version (optional)
    blobs/<sha256>                             every bundle file, named by its hash
    patches/<sha256>                           bsdiff patches
"""

from __future__ import annotations

INDEX = "index.json"
REPO_FORMAT = "vitrina-repo"
REPO_FORMAT_VERSION = 1
PATCHES = "patches.json"
BLOBS = "blobs"


def catalog_path(name: str, version: int) -> str:
    """Folder of one published version, relative to the repository root."""
    return f"catalogs/{name}/{version}"
