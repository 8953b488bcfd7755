"""The kiosk's TOML config: the schema's types and ranges, one test per bad value,
and `vitrina kiosk --config bad.toml` failing before any window (Kivy) is imported."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vitrina.kiosk_app.config import SCHEMA, ConfigError, KioskConfig, hash_pin, load_config

KEY = "ab" * 32
PIN_HASH = hash_pin("1234", salt=b"0123456789abcdef")
KEYS = ("bundle", "idle_seconds", "admin_pin_hash", "language", "colors", "telemetry", "results")
KEYS += ("debounce_ms", "live_search_ms", "device_root", "sync_source", "trusted_root", "trusted_keys")


def test_schema_has_exactly_the_documented_keys():
    assert tuple(SCHEMA) == KEYS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def bad(tmp_path: Path, line: str, key: str | None, *words: str) -> ConfigError:
    """Load a config of one ``line``; the error names the file, the key and ``words``."""
    path = write(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith(f"kiosk config {path}: "), message
    assert caught.value.path == path and caught.value.key == key
    for word in ((f"{key} = ",) if key else ()) + words:
        assert word in message, message
    return caught.value


def to_toml(config: KioskConfig) -> str:
    """A config back as TOML (json's strings, numbers, bools and lists are TOML too)."""
    lines = []
    for key in KEYS:
        value = getattr(config, key)
        if value is not None:
            lines.append(f"{key} = {json.dumps(str(value) if isinstance(value, Path) else value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


FULL = f"""
bundle = "b"
idle_seconds = 45.5
admin_pin_hash = "{PIN_HASH}"
language = "en"
colors = ["negro", "azul marino", "café"]
telemetry = true
results = 200
debounce_ms = 0
device_root = "/var/lib/vitrina"
sync_source = "http://10.0.0.5:8765"
trusted_root = "/etc/vitrina/root.json"
trusted_keys = ["{KEY}\\n"]
"""


def test_valid_config_round_trip(tmp_path):
    config = load_config(write(tmp_path, FULL))
    assert config == KioskConfig(
        bundle=tmp_path / "b",
        idle_seconds=45.5,
        admin_pin_hash=PIN_HASH,
        language="en",
        colors=("negro", "azul marino", "café"),
        telemetry=True,
        results=200,
        debounce_ms=0,
        device_root=Path("/var/lib/vitrina"),
        sync_source="http://10.0.0.5:8765",
        trusted_root=Path("/etc/vitrina/root.json"),
        trusted_keys=(KEY,),  # the .pub file's newline stripped
    )
    assert config.source == tmp_path / "kiosk.toml" and type(config.results) is int
    again = load_config(write(tmp_path, to_toml(config)))
    assert again == config


def test_empty_config_is_the_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing\n")) == KioskConfig()


def test_relative_paths_and_device_root(tmp_path):
    config = load_config(
        write(
            tmp_path,
            f'device_root = "store"\ntrusted_root = "root.json"\ntrusted_keys = ["{KEY}"]\nidle_seconds = 10\n',
        )
    )
    assert config.device_root == tmp_path / "store" and config.bundle == tmp_path / "store" / "current"
    assert config.trusted_root == tmp_path / "root.json"
    assert config.idle_seconds == 10.0 and type(config.idle_seconds) is float


# --- one test per value that used to crash the app or be silently wrong --------------------


def test_bundle_must_be_a_string(tmp_path):  # was: Path(42) → TypeError, a crash
    bad(tmp_path, "bundle = 42", "bundle", "42", "a non-empty string")


def test_admin_pin_hash_must_be_a_string(tmp_path):  # was: 5.startswith → AttributeError, a crash
    bad(tmp_path, "admin_pin_hash = 5", "admin_pin_hash", "5", "pbkdf2_sha256$", "--hash-pin")


def test_results_must_be_an_integer(tmp_path):  # was: accepted, then every search failed on k = 20.5
    bad(tmp_path, "results = 20.5", "results", "20.5", "an integer from 1 to 200")


def test_idle_seconds_must_be_finite(tmp_path):  # was: accepted, and the privacy reset never came
    bad(tmp_path, "idle_seconds = inf", "idle_seconds", "inf", "a finite number of seconds from 10 to 3600")


def test_telemetry_must_be_a_boolean(tmp_path):  # was: accepted, "no" is truthy: drawings were written
    bad(tmp_path, 'telemetry = "no"', "telemetry", "'no'", "true or false")


@pytest.mark.parametrize(
    "line, key, words",
    [
        ("idle_seconds = nan", "idle_seconds", ("nan", "10 to 3600")),
        ("idle_seconds = 9.99", "idle_seconds", ("9.99", "10 to 3600")),
        ("idle_seconds = 3601", "idle_seconds", ("3601",)),
        ("idle_seconds = true", "idle_seconds", ("True",)),
        ("results = 0", "results", ("0", "1 to 200")),
        ("results = 201", "results", ("201",)),
        ("results = true", "results", ("True", "not a float or a boolean")),
        ("results = 20.0", "results", ("20.0",)),
        ('results = "20"', "results", ("'20'",)),
        ("results = 1" + "0" * 30, "results", ("1" + "0" * 30,)),
        ("debounce_ms = -1", "debounce_ms", ("-1", "0 to 5000")),
        ("debounce_ms = 5001", "debounce_ms", ("5001",)),
        ("debounce_ms = 2.5", "debounce_ms", ("2.5",)),
        ("live_search_ms = 20", "live_search_ms", ("20", "0 (off) or 50 to 2000")),
        ("live_search_ms = 2001", "live_search_ms", ("2001",)),
        ("live_search_ms = 100.0", "live_search_ms", ("100.0",)),
        ("telemetry = 0", "telemetry", ("0",)),
        ('language = "fr"', "language", ("'fr'", "['es', 'en']")),
        ('language = ["es"]', "language", ("['es']",)),
        ('colors = ["fucsia"]', "colors", ("fucsia", "palette names")),
        ("colors = []", "colors", ("[]", "non-empty")),
        ('colors = "negro"', "colors", ("'negro'",)),
        ("colors = [1]", "colors", ("[1]",)),
        ('trusted_keys = ["not-a-key"]', "trusted_keys", ("not-a-key", "64 hex digits")),
        (f'trusted_keys = "{KEY}"', "trusted_keys", ("a list of strings",)),
        ("trusted_keys = [64]", "trusted_keys", ("[64]",)),
        ('bundle = ""', "bundle", ("''",)),
        ('bundle = ["a"]', "bundle", ("['a']",)),
        ('bundle = "a\\u0000b"', "bundle", ("'a\\x00b'",)),
        ("device_root = 1", "device_root", ("1",)),
        ('sync_source = " "', "sync_source", ("' '",)),
        ("sync_source = {url = 'x'}", "sync_source", ("{'url': 'x'}",)),
        ("idle_seconds = 1979-05-27", "idle_seconds", ("datetime.date(1979, 5, 27)",)),
        ("pin = 1234", "pin", ("1234", "unknown key", "known keys: bundle,")),
        ("[kiosk]\nresults = 5", "kiosk", ("{'results': 5}", "unknown key")),
    ],
)
def test_bad_value_named(tmp_path, line, key, words):
    bad(tmp_path, line, key, *words)


def test_huge_integer_is_shown_by_size(tmp_path):
    error = bad(tmp_path, "results = 1" + "0" * 200, "results", "an integer of 665 bits")
    assert "0" * 100 not in str(error)


@pytest.mark.parametrize(
    "value, why",
    [
        ("1234", "a plain PIN"),
        (PIN_HASH.replace("$200000$", "$1000$"), "too few iterations"),
        (PIN_HASH.replace("$200000$", "$100000000$"), "too many iterations"),
        (PIN_HASH[:-1], "digest too short"),
        (PIN_HASH.replace("pbkdf2_sha256", "md5"), "another scheme"),
        (PIN_HASH + "\n", "a trailing newline"),
        (PIN_HASH.replace("$200000$", "$２００000$"), "non-ASCII digits"),
    ],
)
def test_admin_pin_hash_form_and_iterations(tmp_path, value, why):
    error = bad(tmp_path, f"admin_pin_hash = {json.dumps(value)}", "admin_pin_hash", "100,000 to 10,000,000")
    assert value.strip() not in str(error), f"{why}: the value is never echoed (it may be a plain PIN)"


@pytest.mark.parametrize(
    "content, words",
    [
        (b"idle_seconds = ", "not valid TOML"),
        (b"results = 1" + b"0" * 5000, "not valid TOML"),
        (b"a = " + b"[" * 5000 + b"]" * 5000, "not valid TOML"),
        (b'bundle = "\xff"', "not UTF-8"),
    ],
)
def test_unreadable_file_named(tmp_path, content, words):
    path = tmp_path / "kiosk.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=words) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"kiosk config {path}: ") and caught.value.key is None


def test_missing_file_and_folder(tmp_path):
    for path in (tmp_path / "missing.toml", tmp_path):
        with pytest.raises(ConfigError, match="cannot read it"):
            load_config(path)


def test_config_built_in_code_is_checked_too():
    with pytest.raises(ConfigError, match=r"^kiosk config: results = 20\.5: expected an integer"):
        KioskConfig(results=20.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="idle_seconds = 5"):
        KioskConfig(idle_seconds=5)
    assert KioskConfig(colors=["rojo"]).colors == ("rojo",)  # type: ignore[arg-type]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``vitrina <args>`` in a fresh interpreter that reports whether Kivy got imported."""
    code = (
        "import sys\nfrom vitrina.runtime.cli import main\nrc = main(sys.argv[1:])\n"
        "print('kivy imported' if any(m.split('.')[0] == 'kivy' for m in sys.modules) else 'no kivy')\n"
        "sys.exit(rc)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("extra", [(), ("--windowed",), ("--screenshot", "shots")])
def test_cli_reports_a_bad_config_before_the_window(tmp_path, extra):
    path = write(tmp_path, "results = 20.5\n")
    proc = run_cli("kiosk", "--config", str(path), *extra)
    assert proc.returncode == 2, proc.stderr
    assert f"vitrina kiosk: error: kiosk config {path}: results = 20.5: expected an integer" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == "no kivy"
