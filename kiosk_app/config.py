"""Kiosk configuration: a TOML file.

```toml
bundle = "/var/lib/vitrina/active"   # bundle folder (or the pointer sync swaps)
idle_seconds = 60                      # shopper privacy: reset after this long untouched
admin_pin_hash = "pbkdf2_sha256$200000$<salt>$<hash>"   # `vitrina kiosk --hash-pin`
language = "es"                        # es or en
colors = ["negro", "rojo", "azul marino"]   # palette offered on the canvas
telemetry = false                      # never write shoppers' drawings unless true
results = 20                           # products shown per search
debounce_ms = 300                      # wait after a stroke ends before searching
# bundle sync from the admin screen (see README, field staff):
device_root = "/var/lib/vitrina"       # bundle store; bundle defaults to <device_root>/current
sync_source = "http://10.0.0.5:8765"   # repository URL or folder (USB stick)
trusted_keys = ["<64 hex digits>"]     # publishers' Ed25519 public keys (.pub contents)
```

The PIN is never stored or compiled in: only a salted PBKDF2 hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGES = ("es", "en")
_PIN_ITERATIONS = 200_000

#: Canvas palette: name → RGB 0-1. Black first; colour search uses the names.
PALETTE = {
    "negro": (0.08, 0.08, 0.09),
    "gris": (0.5, 0.5, 0.52),
    "azul marino": (0.1, 0.18, 0.43),
    "celeste": (0.37, 0.67, 0.9),
    "rojo": (0.78, 0.12, 0.18),
    "rosado": (0.92, 0.47, 0.67),
    "verde": (0.16, 0.55, 0.25),
    "amarillo": (0.92, 0.78, 0.16),
    "naranjo": (0.94, 0.51, 0.12),
    "morado": (0.47, 0.2, 0.59),
    "café": (0.47, 0.29, 0.16),
}


@dataclass(frozen=True)
class KioskConfig:
    """Attributes: see the module docstring; ``bundle`` may be None when only
    ``--bundle`` on the command line names it."""

    bundle: Path | None = None
    idle_seconds: float = 60.0
    admin_pin_hash: str | None = None
    language: str = "es"
    colors: tuple[str, ...] = tuple(PALETTE)
    telemetry: bool = False
    results: int = 20
    debounce_ms: int = 300
    device_root: Path | None = None
    sync_source: str | None = None
    trusted_keys: tuple[str, ...] = ()
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.idle_seconds < 5:
            raise ValueError(f"idle_seconds must be >= 5, got {self.idle_seconds}")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, got {self.language!r}")
        unknown = [c for c in self.colors if c not in PALETTE]
        if unknown:
            raise ValueError(f"unknown colour(s) {unknown}; choose from {list(PALETTE)}")
        if not 1 <= self.results <= 200:
            raise ValueError(f"results must be in [1, 200], got {self.results}")
        if not 0 <= self.debounce_ms <= 5000:
            raise ValueError(f"debounce_ms must be in [0, 5000], got {self.debounce_ms}")
        for key in self.trusted_keys:
            if len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
                raise ValueError(
                    f"trusted_keys entries must be 64 hex digits (the .pub file's contents), got {key[:20]!r}"
                )
        if self.admin_pin_hash is not None and not self.admin_pin_hash.startswith("pbkdf2_sha256$"):
            raise ValueError("admin_pin_hash must come from `vitrina kiosk --hash-pin` (pbkdf2_sha256$...)")


_KEYS = {
    "bundle",
    "idle_seconds",
    "admin_pin_hash",
    "language",
    "colors",
    "telemetry",
    "results",
    "debounce_ms",
    "device_root",
    "sync_source",
    "trusted_keys",
}


def load_config(path: str | Path) -> KioskConfig:
    """Read a TOML config. Raises ValueError naming the file and the bad key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read kiosk config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"kiosk config {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"kiosk config {path}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    if "bundle" in data:
        bundle = Path(data["bundle"])
        data["bundle"] = bundle if bundle.is_absolute() else (path.parent / bundle)
    if "colors" in data:
        data["colors"] = tuple(data["colors"])
    if "trusted_keys" in data:
        data["trusted_keys"] = tuple(str(k).strip() for k in data["trusted_keys"])
    if "device_root" in data:
        root = Path(data["device_root"])
        data["device_root"] = root if root.is_absolute() else (path.parent / root)
        data.setdefault("bundle", data["device_root"] / "current")
    try:
        return KioskConfig(**data, source=path)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"kiosk config {path}: {exc}") from None


def hash_pin(pin: str, salt: bytes | None = None, iterations: int = _PIN_ITERATIONS) -> str:
    """Salted PBKDF2-SHA256 of a PIN of 4-12 digits, as ``pbkdf2_sha256$iterations$salt$hash``."""
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("the admin PIN must be 4 to 12 digits")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str | None) -> bool:
    """True when ``pin`` matches the stored hash (constant-time compare); False without a hash."""
    if not stored:
        return False
    try:
        _, iterations, salt, expected = stored.split("$")
        digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)
