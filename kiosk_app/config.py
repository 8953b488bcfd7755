"""Kiosk configuration: a TOML file, checked against a typed schema before the window opens.

```toml
bundle = "/var/lib/vitrina/active"   # bundle folder (or the pointer sync swaps)
idle_seconds = 60                      # shopper privacy: reset after this long untouched (10-3600 s)
admin_pin_hash = "pbkdf2_sha256$200000$<salt>$<hash>"   # `vitrina kiosk --hash-pin`
language = "es"                        # es or en
colors = ["negro", "rojo", "azul marino"]   # palette offered on the canvas
telemetry = false                      # never write shoppers' drawings unless true
results = 20                           # products shown per search (1-200)
debounce_ms = 0                        # wait after a stroke ends before searching (0-5000 ms; 0: at once)
live_search_ms = 100                   # while a stroke is drawn, search at most this often (0: off; 50-2000 ms)
# bundle sync from the admin screen (see README, field staff):
device_root = "/var/lib/vitrina"       # bundle store; bundle defaults to <device_root>/current
sync_source = "http://10.0.0.5:8765"   # repository URL or folder (USB stick)
trusted_root = "/etc/vitrina/root.json"   # TUF root.json from headquarters (provisioned on the first sync)
trusted_keys = ["<64 hex digits>"]     # pre-TUF kiosks only: the old .pub key, to accept migration.json once
```

Every key is optional; unknown keys are refused. Each value is checked by its
entry in :data:`SCHEMA` (type and range: ``results = 20.5``, ``telemetry =
"no"`` or ``idle_seconds = inf`` are errors, never coerced), and any violation
raises :class:`ConfigError` naming the file, the key, the value and what was
expected. Relative paths are relative to the config file's folder.

The PIN is never stored or compiled in: only a salted PBKDF2 hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

LANGUAGES = ("es", "en")
_PIN_ITERATIONS = 200_000
#: Accepted PBKDF2 iteration counts of ``admin_pin_hash``: fewer is too cheap to
#: guess offline, more makes the admin unlock take seconds on a kiosk CPU.
PIN_ITERATIONS_RANGE = (100_000, 10_000_000)
_PIN_HASH = re.compile(r"pbkdf2_sha256\$([0-9]{1,9})\$((?:[0-9a-fA-F]{2}){8,64})\$([0-9a-fA-F]{64})")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")

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
    "beige": (0.8, 0.73, 0.57),
}


class ConfigError(ValueError):
    """A kiosk config that cannot be used. ``path``: the file (None for a config built
    in code); ``key``: the offending key (None when the file as a whole is unreadable)."""

    def __init__(self, path: Path | None, key: str | None, problem: str):
        where = f"kiosk config {path}" if path is not None else "kiosk config"
        super().__init__(f"{where}: {key} = {problem}" if key is not None else f"{where}: {problem}")
        self.path = path
        self.key = key


class _Invalid(Exception):
    """Raised by a schema converter: the value does not fit (the rule's ``expected`` says why)."""


@dataclass(frozen=True)
class Rule:
    """How one key is checked. ``expected``: what the error message asks for;
    ``convert``: TOML value → attribute value (raises when it does not fit);
    ``optional``: the attribute may be None (the key is absent)."""

    expected: str
    convert: Callable[[Any], Any]
    optional: bool = False


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if type(value) is not int or not low <= value <= high:  # type(): a bool is not an int here
            raise _Invalid
        return value

    return convert


def _finite_in(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if type(value) not in (int, float) or not low <= value <= high:  # nan fails the comparison
            raise _Invalid
        return float(value)

    return convert


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise _Invalid
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise _Invalid
    return value


def _path(value: Any) -> Path:
    return Path(_text(str(value) if isinstance(value, Path) else value))


def _language(value: Any) -> str:
    if type(value) is not str or value not in LANGUAGES:
        raise _Invalid
    return value


def _colors(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _Invalid
    if not all(type(name) is str and name in PALETTE for name in value):
        raise _Invalid
    return tuple(value)


def _live_ms(value: Any) -> int:
    value = _int_in(0, 2000)(value)
    if 0 < value < 50:
        raise _Invalid
    return value


def _trusted_keys(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(key, str) for key in value):
        raise _Invalid
    keys = tuple(key.strip() for key in value)  # a pasted .pub file ends with a newline
    if not all(_HEX_KEY.fullmatch(key) for key in keys):
        raise _Invalid
    return keys


def _pin_hash(value: Any) -> str:
    match = _PIN_HASH.fullmatch(value) if isinstance(value, str) else None
    low, high = PIN_ITERATIONS_RANGE
    if match is None or not low <= int(match.group(1)) <= high:
        raise _Invalid
    return value


#: Config key → its rule; the order of the module docstring's example.
SCHEMA: dict[str, Rule] = {
    "bundle": Rule("a non-empty string: the bundle folder", _path, optional=True),
    "idle_seconds": Rule("a finite number of seconds from 10 to 3600", _finite_in(10, 3600)),
    "admin_pin_hash": Rule(
        "a string pbkdf2_sha256$<iterations {:,} to {:,}>$<hex salt>$<64 hex digits>, "
        "as printed by `vitrina kiosk --hash-pin`".format(*PIN_ITERATIONS_RANGE),
        _pin_hash,
        optional=True,
    ),
    "language": Rule(f"one of the strings {list(LANGUAGES)}", _language),
    "colors": Rule(f"a non-empty list of palette names from {list(PALETTE)}", _colors),
    "telemetry": Rule("true or false (a TOML boolean, not a string)", _boolean),
    "results": Rule("an integer from 1 to 200 (not a float or a boolean)", _int_in(1, 200)),
    "debounce_ms": Rule("an integer number of milliseconds from 0 to 5000", _int_in(0, 5000)),
    "live_search_ms": Rule("an integer number of milliseconds: 0 (off) or 50 to 2000", _live_ms),
    "device_root": Rule("a non-empty string: the bundle store folder", _path, optional=True),
    "sync_source": Rule("a non-empty string: a repository URL or folder", _text, optional=True),
    "trusted_root": Rule("a non-empty string: the TUF root.json file from headquarters", _path, optional=True),
    "trusted_keys": Rule("a list of strings of 64 hex digits each (the .pub files' contents)", _trusted_keys),
}


def show_value(value: Any, limit: int = 60) -> str:
    """``value`` for an error message: its repr, cut to ``limit`` characters; huge ints by size."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"<an integer of {value.bit_length()} bits>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_value(key: str, value: Any, path: Path | None = None) -> Any:
    """The attribute value of config ``key`` for the TOML ``value``; raises
    :class:`ConfigError` naming ``path``, the key, the value and what was expected."""
    rule = SCHEMA.get(key)
    if rule is None:
        raise ConfigError(path, key, f"{show_value(value)}: unknown key; known keys: {', '.join(SCHEMA)}")
    try:
        return rule.convert(value)
    except _Invalid:
        secret = key == "admin_pin_hash" and isinstance(value, str)  # maybe a plain PIN: never echo it
        shown = f"<a string of {len(value)} characters, not shown>" if secret else show_value(value)
        raise ConfigError(path, key, f"{shown}: expected {rule.expected}") from None


@dataclass(frozen=True)
class KioskConfig:
    """A checked kiosk config: see the module docstring for the keys, units and
    ranges. ``bundle`` may be None when only ``--bundle`` on the command line names
    it; ``source`` is the file it came from. Construction checks every value the
    way :func:`load_config` does (raises :class:`ConfigError`) and stores lists as tuples."""

    bundle: Path | None = None
    idle_seconds: float = 60.0
    admin_pin_hash: str | None = None
    language: str = "es"
    colors: tuple[str, ...] = tuple(PALETTE)
    telemetry: bool = False
    results: int = 20
    debounce_ms: int = 0
    live_search_ms: int = 100
    device_root: Path | None = None
    sync_source: str | None = None
    trusted_root: Path | None = None
    trusted_keys: tuple[str, ...] = ()
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            rule, value = SCHEMA.get(f.name), getattr(self, f.name)
            if rule is not None and not (value is None and rule.optional):
                object.__setattr__(self, f.name, check_value(f.name, value, self.source))


def load_config(path: str | Path) -> KioskConfig:
    """Read and check the TOML config at ``path``.

    Raises:
        ConfigError: the file cannot be read, is not UTF-8 TOML, has an unknown
            key, or a value of the wrong type or out of range; the message names
            the file, the key, the value and what was expected.
    """
    path = Path(path)
    data = _read_toml(path)
    values = {key: check_value(key, value, path) for key, value in data.items()}
    for key in ("bundle", "device_root", "trusted_root"):
        if key in values and not values[key].is_absolute():
            values[key] = path.parent / values[key]
    if "device_root" in values:
        values.setdefault("bundle", values["device_root"] / "current")
    return KioskConfig(**values, source=path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:  # UnicodeDecodeError
        raise ConfigError(path, None, f"not UTF-8 text: {exc}") from None
    try:
        return tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError; an integer over 4300 digits; deep nesting
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None


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
