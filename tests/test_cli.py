import json
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

from vitrina.runtime.cli import main


def test_search_strokes_json(tiny_bundle, strokes_file, capsys):
    assert main(["search", "--bundle", str(tiny_bundle), "--strokes", str(strokes_file), "-k", "5", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 5
    assert set(results[0]) == {"id", "title", "category", "color", "price", "in_stock", "score"}
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_search_png_text_output(tiny_bundle, tmp_path, capsys):
    image = Image.new("RGB", (3000, 2000), "white")
    ImageDraw.Draw(image).rectangle([800, 300, 2200, 1700], outline="black", width=30)
    image.save(tmp_path / "box.png")
    assert main(["search", "--bundle", str(tiny_bundle), "--sketch", str(tmp_path / "box.png"), "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].lstrip().startswith("1.")


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda p: (p / "e.json").write_text('{"strokes": []}'), "empty"),
        (lambda p: (p / "e.json").write_text('{"strokes": [[[0, 0]],'), "not valid JSON"),
        (lambda p: None, "cannot read strokes file"),
    ],
)
def test_bad_strokes_exit_2(tiny_bundle, tmp_path, capsys, setup, words):
    setup(tmp_path)
    assert main(["search", "--bundle", str(tiny_bundle), "--strokes", str(tmp_path / "e.json")]) == 2
    assert words in capsys.readouterr().err


def test_blank_png_exit_2(tiny_bundle, tmp_path, capsys):
    Image.new("L", (64, 64), 255).save(tmp_path / "blank.png")
    assert main(["search", "--bundle", str(tiny_bundle), "--sketch", str(tmp_path / "blank.png")]) == 2
    assert "blank" in capsys.readouterr().err


def test_k_below_one_exit_2(tiny_bundle, strokes_file, capsys):
    with pytest.raises(SystemExit) as info:
        main(["search", "--bundle", str(tiny_bundle), "--strokes", str(strokes_file), "-k", "0"])
    assert info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_missing_bundle_exit_2(tmp_path, strokes_file, capsys):
    assert main(["search", "--bundle", str(tmp_path / "none"), "--strokes", str(strokes_file)]) == 2
    assert "no bundle at" in capsys.readouterr().err


def test_info_json(tiny_bundle, capsys):
    assert main(["info", "--bundle", str(tiny_bundle), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["code_type"] == "float" and info["bytes_per_item"] == info["dims"] * 4
    assert info["items"] == info["images"] and info["models"] == {
        "detector": ["float", "int8"],
        "photo": ["float", "int8"],
        "sketch": ["float", "int8"],
        "textvisual": ["float", "int8"],
    }


def test_eval_json_shape(tiny_bundle, capsys):
    assert main(["eval", "--bundle", str(tiny_bundle), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["queries"] > 0 and report["gallery"] > 0
    for precision in ("float", "int8"):
        assert {"map", "mrr", "p_at_10", "acc_at_1", "acc_at_10"} <= set(report[precision])
        assert 0.0 <= report[precision]["map"] <= 1.0


def test_console_script_installed(tiny_bundle):
    proc = subprocess.run(
        [sys.executable, "-m", "vitrina.runtime.cli", "info", "--bundle", str(tiny_bundle)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "code_type: float" in proc.stdout


def test_build_with_a_broken_aliases_file_exits_2_naming_it(tmp_path, capsys):
    from tests.test_catalog import make_catalog

    catalog = make_catalog(tmp_path / "c", [["A1", "Bolso rojo", "Bag", "rojo", "9990", "ok1.png"]])
    (catalog / "aliases.json").write_text('{"colors": {"rojo": ["red"]}}', encoding="utf-8")
    out = tmp_path / "bundle"
    args = ["build", "--catalog", str(catalog), "--out", str(out), "--profile", "tiny", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "aliases.json" in err and "must be an object of language → phrases" in err
    assert not out.exists()
