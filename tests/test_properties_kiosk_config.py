"""Property: whatever the config file holds, ``load_config`` returns a config inside
every range, or raises ConfigError, never another exception.

Documents mix the known keys and unknown ones, with values of every TOML type
(huge integers, nan and inf, strings of odd unicode, arrays, nested tables,
dates) and near-valid ones; a third hold only valid values and a third all
but one, so that loading succeeds often too and each bad value is met alone. They are written as TOML text here (``key =
value`` lines; ``tomli_w`` is not installed). Arbitrary bytes, and documents
with a few bytes overwritten, are tried as files too.
"""

import math
import re
import tempfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from vitrina.kiosk_app.config import PALETTE, ConfigError, KioskConfig, hash_pin, load_config

KNOWN = (
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
)
PIN_HASH = hash_pin("1234", salt=b"\x01" * 16)
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
PIN_FORM = re.compile(r"pbkdf2_sha256\$([0-9]+)\$([0-9a-fA-F]+)\$([0-9a-fA-F]{64})")

# --- TOML values and their text ------------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # no lone surrogates: not UTF-8
scalars = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    text,
    st.dates(),
    st.datetimes(),
    st.times(),
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)
#: Values one type or one step away from valid ones: every key is tried with each of them (exhaustively, below).
EDGE_VALUES = (math.nan, math.inf, -math.inf, True, False, 0, 1, -1, 20, 20.0, 20.5, 9.999, 10, 3600, 3600.001, 5000)
EDGE_VALUES += (5001, 10**30, -(10**30), 2**64, "20", "true", "no", "", " ", "a\u0000b", "es", "fr", [], [1], {})
EDGE_VALUES += (["negro"], ["negro", 1], [True], ["ab" * 32], ["ab" * 32, 64], {"results": 5})
near_valid = st.one_of(
    st.sampled_from(EDGE_VALUES),
    st.integers(min_value=-5, max_value=5100),
    st.floats(min_value=0, max_value=4000),
    st.sampled_from(["es", "en", "fr", "", " ", "b", "/abs/path", "http://10.0.0.5:8765", "no", "true"]),
    st.lists(st.sampled_from([*PALETTE, "fucsia"]), max_size=4),
    st.lists(st.sampled_from(["ab" * 32, "AB" * 32 + "\n", "ab" * 31, "xyz"]), max_size=3),
    st.sampled_from([PIN_HASH, PIN_HASH.replace("$200000$", "$99999$"), PIN_HASH.replace("$200000$", "$10000000$")]),
)
#: Values each key accepts, so that whole documents load too (and are checked against the ranges).
valid = {
    "bundle": st.sampled_from(["b", "/abs/bundle", "carpeta/ñandú 🧦"]),
    "idle_seconds": st.integers(10, 3600) | st.floats(10, 3600),
    "admin_pin_hash": st.just(PIN_HASH),
    "language": st.sampled_from(["es", "en"]),
    "colors": st.lists(st.sampled_from(list(PALETTE)), min_size=1, max_size=4),
    "telemetry": st.booleans(),
    "results": st.integers(1, 200),
    "debounce_ms": st.integers(0, 5000),
    "device_root": st.sampled_from(["store", "/var/lib/vitrina"]),
    "sync_source": st.sampled_from(["http://10.0.0.5:8765", "/media/usb", "x"]),
    "trusted_keys": st.lists(st.sampled_from(["ab" * 32, "AB" * 32 + "\n", "0" * 64]), max_size=3),
}
valid_documents = st.fixed_dictionaries({}, optional=valid)
mixed_documents = st.tuples(
    st.fixed_dictionaries({}, optional={key: st.one_of(v, near_valid, anything) for key, v in valid.items()}),
    st.dictionaries(st.one_of(st.sampled_from(KNOWN), text), st.one_of(anything, near_valid), max_size=3),
).map(lambda pair: {**pair[0], **pair[1]})
one_wild_value = st.tuples(valid_documents, st.one_of(st.sampled_from(KNOWN), text), st.one_of(near_valid, anything))
documents = st.one_of(valid_documents, one_wild_value.map(lambda t: {**t[0], t[1]: t[2]}), mixed_documents)


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # inf, -inf, 1e+300: TOML spells them so
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(document: dict[str, Any]) -> str:
    return "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in document.items())


# --- the property --------------------------------------------------------------------------


def load_from(content: bytes) -> KioskConfig | ConfigError:
    """``load_config`` of a temporary file holding ``content``: the config, or the ConfigError it raised."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kiosk.toml"
        path.write_bytes(content)
        try:
            return load_config(path)
        except ConfigError as error:
            assert str(error).startswith(f"kiosk config {path}: "), str(error)
            return error


def outcome(loaded: KioskConfig | ConfigError) -> KioskConfig | None:
    """The config, if any; notes for hypothesis's statistics which way it went."""
    if isinstance(loaded, ConfigError):
        event(f"ConfigError ({'the file' if loaded.key is None else 'a key'})")
        return None
    event("loaded")
    return loaded


def assert_in_ranges(config: KioskConfig) -> None:
    assert type(config.idle_seconds) is float and math.isfinite(config.idle_seconds)
    assert 10 <= config.idle_seconds <= 3600
    assert type(config.results) is int and 1 <= config.results <= 200
    assert type(config.debounce_ms) is int and 0 <= config.debounce_ms <= 5000
    assert type(config.telemetry) is bool
    assert config.language in ("es", "en")
    assert type(config.colors) is tuple and config.colors and all(c in PALETTE for c in config.colors)
    assert type(config.trusted_keys) is tuple and all(HEX64.fullmatch(k) for k in config.trusted_keys)
    if config.admin_pin_hash is not None:
        match = PIN_FORM.fullmatch(config.admin_pin_hash)
        assert match and 100_000 <= int(match.group(1)) <= 10_000_000
    for path in (config.bundle, config.device_root):
        assert path is None or (isinstance(path, Path) and path.is_absolute())
    assert config.sync_source is None or (type(config.sync_source) is str and config.sync_source.strip())


@given(documents)
def test_any_toml_document_gives_a_config_in_range_or_a_config_error(document):
    config = outcome(load_from(toml_document(document).encode("utf-8")))
    if config is None:
        return
    assert_in_ranges(config)
    assert set(document) <= set(KNOWN)
    for key in ("idle_seconds", "results", "debounce_ms", "telemetry", "language", "sync_source"):
        if key in document:  # taken as written (assert_in_ranges checked the types): never coerced
            assert getattr(config, key) == document[key]
    if "colors" in document:
        assert list(config.colors) == document["colors"]


def test_every_key_with_every_edge_value():
    for key in KNOWN:
        for value in EDGE_VALUES:
            config = load_from(toml_document({key: value}).encode("utf-8"))
            if isinstance(config, KioskConfig):
                assert_in_ranges(config)
                if key in ("idle_seconds", "results", "debounce_ms", "telemetry", "language", "sync_source"):
                    assert getattr(config, key) == value, (key, value)


@given(st.one_of(st.binary(max_size=200), documents.map(lambda d: toml_document(d).encode("utf-8"))), st.data())
def test_any_bytes_give_a_config_in_range_or_a_config_error(content, data):
    if content:  # also damage a document: overwrite a slice with arbitrary bytes
        start = data.draw(st.integers(0, len(content) - 1))
        content = content[:start] + data.draw(st.binary(max_size=8)) + content[start + 8 :]
    config = outcome(load_from(content))
    if config is not None:
        assert_in_ranges(config)
