"""The device has no TensorFlow, keras, umap-learn or numba: prove the runtime
(and a real search through LiteRT) works with those imports blocked."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import sys, importlib.abc
    BLOCKED = ("tensorflow", "keras", "tf_keras", "umap", "numba", "pynndescent", "sklearn")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked on the device: {name}")
            return None
    sys.meta_path.insert(0, Block())
    """
)


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_blocker_really_blocks():
    proc = run("import tensorflow")
    assert proc.returncode != 0 and "blocked on the device: tensorflow" in proc.stderr


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

    bundle = _compact_bundle(tiny_bundle, tmp_path / "umap8", "umap8", CodeOptions(umap=UMAPOptions(supervised=True), landmarks=300, rerank=True, progress=False))
    proc = run(
        f"""
        import json, sys
        import vitrina.runtime.sync.client, vitrina.export.publish.signing, vitrina.export.publish.serve, vitrina.export.publish.repository, vitrina.runtime.sync.store
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
    proc = run(
        f"""
        import sys
        from vitrina.runtime.cli import main
        sys.exit(main(["build", "--catalog", {str(demo_catalog)!r}, "--out", {str(tmp_path / "b")!r}, "--profile", "tiny"]))
        """
    )
    assert proc.returncode == 1
    assert "vitrina[export]" in proc.stderr


import json  # noqa: E402  (used above)
