"""The device has no TensorFlow, keras, umap-learn, numba or faiss, and needs nothing of
vitrina's export side or kiosk: prove the runtime (and a real search through LiteRT)
works with those imports blocked."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import sys, importlib.abc
    BLOCKED = ("tensorflow", "keras", "tf_keras", "umap", "numba", "pynndescent", "sklearn", "faiss", "skimage", "kivy")
    BLOCKED_OWN = ("vitrina.export", "vitrina.kiosk_app")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED or any(name == p or name.startswith(p + ".") for p in BLOCKED_OWN):
                raise ImportError(f"blocked on the device: {name}")
            return None
    sys.meta_path.insert(0, Block())
    """
)


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_blocker_really_blocks():
    proc = run("import tensorflow")
    assert proc.returncode != 0 and "blocked on the device: tensorflow" in proc.stderr
    proc = run("import vitrina.export.build")
    assert proc.returncode != 0 and "blocked on the device: vitrina.export" in proc.stderr


def test_runtime_imports_and_searches_without_export_stack(tiny_bundle, strokes_file):
    proc = run(
        f"""
        import json, sys
        import vitrina.runtime
        from vitrina.runtime.cli import main
        code = main(["search", "--bundle", {str(tiny_bundle)!r}, "--strokes", {str(strokes_file)!r}, "-k", "3", "--json"])
        assert code == 0, code
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "umap", "numba", "sklearn"))
        print("HEAVY", heavy)
        """
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[0])["results"]
    assert len(results) == 3
    assert "HEAVY []" in proc.stdout


def test_compact_bundle_and_sync_modules_need_no_export_stack(tiny_bundle, strokes_file, tmp_path):
    """The shipped code type (UMAP-8 via landmarks, int8 re-rank) searches with umap-learn,
    numba and TensorFlow blocked; the sync modules import without them too."""
    from tests.test_compact_codes import _compact_bundle
    from vitrina.export.codes.fit import CodeOptions
    from vitrina.export.codes.umap import UMAPOptions

    bundle = _compact_bundle(
        tiny_bundle,
        tmp_path / "umap8",
        "umap8",
        CodeOptions(umap=UMAPOptions(supervised=True), landmarks=300, rerank=True, progress=False),
    )
    proc = run(
        f"""
        import json, sys
        import vitrina.runtime.sync.client, vitrina.runtime.sync.store, vitrina.runtime.sync.trust, vitrina.runtime.bench.benchmark
        from vitrina.runtime.cli import main
        code = main(["search", "--bundle", {str(bundle)!r}, "--strokes", {str(strokes_file)!r}, "-k", "3", "--json"])
        assert code == 0, code
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "umap", "numba", "sklearn", "pynndescent"))
        print("HEAVY", heavy)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout.splitlines()[0])["results"]) == 3
    assert "HEAVY []" in proc.stdout


def test_export_command_without_tensorflow_says_what_to_install(demo_catalog, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_without("tensorflow", "keras", "umap"))
            + "import sys\nfrom vitrina.runtime.cli import main\n"
            f"sys.exit(main(['build', '--catalog', {str(demo_catalog)!r}, '--out', {str(tmp_path / 'b')!r}, '--profile', 'tiny']))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "`vitrina build` needs tensorflow" in proc.stderr and "vitrina[export]" in proc.stderr
    assert "Traceback" not in proc.stderr


def _without(*modules: str) -> str:
    """A child preamble that hides top-level modules, as on a device where they are not installed."""
    return f"""
        import importlib.abc, sys
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {modules!r}:
                    raise ImportError(f"not installed: {{name}}")
                return None
        sys.meta_path.insert(0, Hide())
        """


def test_a_device_install_lists_only_the_commands_it_can_run():
    proc = run("""
        import contextlib, io
        from vitrina.runtime.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                main(["--help"])
            except SystemExit:
                pass
        listed = [line.split()[0] for line in out.getvalue().splitlines() if line.startswith("    ") and line.split()]
        print("LISTED", sorted(listed))
        """)
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split("LISTED", 1)[1]
    for command in ("search", "eval", "info", "bench", "sync", "bundles"):
        assert f"'{command}'" in listed
    for command in ("build", "demo-catalog", "kiosk"):
        assert f"'{command}'" not in listed


def test_a_kiosk_command_without_kivy_names_the_kiosk_extra(tiny_bundle):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_without("kivy")) + "import sys\nfrom vitrina.runtime.cli import main\n"
            f"sys.exit(main(['kiosk', '--bundle', {str(tiny_bundle)!r}]))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'vitrina[kiosk]'" in proc.stderr
    assert "vitrina[export]" not in proc.stderr


import json  # noqa: E402  (used above)
