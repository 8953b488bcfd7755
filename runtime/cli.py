"""The ``vitrina`` command.

Device commands (``search``, ``eval``, ``info``) need only numpy, pillow and
LiteRT. Export commands (``demo-catalog``, ``build``) are registered from
``vitrina.export.cli`` and import TensorFlow only when they run.

Exit codes: 0 success, 2 bad input (unreadable or empty sketch, bad options,
unusable bundle or catalog), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from .bundle import Bundle, BundleError

EXIT_BAD_INPUT = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitrina", description="On-device product search: sketches, photos and words.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("search", help="search a bundle with a sketch")
    p.add_argument("--bundle", required=True, type=Path)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sketch", type=Path, help="sketch image (PNG, JPEG...), dark ink on light paper")
    src.add_argument("--strokes", type=Path, help='strokes JSON: {"strokes": [[[x, y], ...], ...], "canvas": [w, h]}')
    p.add_argument("-k", type=_positive_int, default=10, help="products to return (>= 1)")
    p.add_argument("--precision", choices=("int8", "float"), default="int8")
    p.add_argument("--threads", type=_positive_int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_search)

    p = sub.add_parser("eval", help="retrieval quality on the bundle's held-out sketch queries")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--threads", type=_positive_int, default=2)
    p.add_argument("--json", action="store_true", help="print JSON")
    sweep = p.add_argument_group("compact-code sweep (export side: needs vitrina[export])")
    sweep.add_argument("--sweep", action="store_true", help="compare PCA / UMAP / binary codes and two-stage search on a float bundle")
    sweep.add_argument("--catalog", type=Path, help="the bundle's catalog folder (train-split sketches for hash heads and distillation)")
    sweep.add_argument("--out", type=Path, default=Path("build/sweep"), help="folder for sweep.json, sweep.md and the plots")
    sweep.add_argument("--pca-dims", default="4,8,16,32,64", help="PCA sizes, comma-separated")
    sweep.add_argument("--umap-dims", default="4,8,16", help="UMAP sizes, comma-separated")
    sweep.add_argument("--bits", default="64,128,256", help="binary code sizes, comma-separated multiples of 64")
    sweep.add_argument("--umap-fit-sample", type=_positive_int, default=None, help="fit UMAP on N catalog photos (default: all)")
    sweep.add_argument("--train-sketches", type=_positive_int, default=20000, help="train-split sketches rendered for the heads")
    sweep.add_argument("--hash-steps", type=_positive_int, default=2000, help="training steps per hash head")
    sweep.add_argument("--cold-runs", type=int, default=3, help="fresh processes per cold-start figure (0 skips)")
    p.set_defaults(handler=_eval)

    p = sub.add_parser("info", help="describe a bundle")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_info)

    p = sub.add_parser("bench", help="QA device benchmark: run, compare, soak")
    bench = p.add_subparsers(dest="bench_command", required=True, metavar="BENCH_COMMAND")
    b = bench.add_parser("run", help="latency per stage, cold start, memory, accuracy → report.json + report.html")
    b.add_argument("--bundle", required=True, type=Path)
    b.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    b.add_argument("--queries", type=_positive_int, default=200, help="timed queries per query type")
    b.add_argument("--cold-runs", type=int, default=3, help="fresh processes for cold start (0 skips)")
    b.add_argument("--no-accuracy", action="store_true", help="skip the eval-set accuracy")
    b.add_argument("--out", required=True, type=Path, help="folder for report.json and report.html")
    b.set_defaults(handler=_bench_run)
    b = bench.add_parser("compare", help="differences between two report.json; exit 1 on a regression")
    b.add_argument("old", type=Path)
    b.add_argument("new", type=Path)
    b.add_argument("--max-latency-regression", default="10%", help="relative p50 growth allowed (default 10%%)")
    b.add_argument("--max-map-drop", default="0.01", help="absolute mAP drop allowed (default 0.01)")
    b.set_defaults(handler=_bench_compare)
    b = bench.add_parser("soak", help="mixed queries for minutes: qps, latency drift, memory growth")
    b.add_argument("--bundle", required=True, type=Path)
    b.add_argument("--minutes", type=float, required=True)
    b.add_argument("--threads", type=_positive_int, default=1)
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=_bench_soak)
    b = bench.add_parser("sync", help="delta bytes after a 1%% catalog change, sync time over loopback, kill -9 crash loop")
    b.add_argument("--bundle", required=True, type=Path)
    b.add_argument("--kills", type=int, default=0, help="crash-loop iterations (kill -9 at random moments), e.g. 200")
    b.add_argument("--fraction", type=float, default=0.01, help="share of products changed in v2 (default 0.01)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=_bench_sync)
    from vitrina.kiosk_app.cli import register_bench as register_kiosk_bench

    register_kiosk_bench(bench)

    from vitrina.export.cli import register as register_export
    from vitrina.kiosk_app.cli import register as register_kiosk

    from .sync_cli import register as register_sync

    register_export(sub)
    register_kiosk(sub)
    register_sync(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (BundleError, ValueError) as exc:
        print(f"vitrina {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ImportError as exc:
        print(f"vitrina {args.command}: error: {exc} (the export commands need `pip install 'vitrina[export]'`)", file=sys.stderr)
        return 1


def _search(args: argparse.Namespace) -> int:
    from .product_search import ProductSearch, ProductSearchOptions
    from .rasterize import load_sketch_image, load_strokes_json

    engine = ProductSearch(Bundle.open(args.bundle), ProductSearchOptions(args.precision, args.threads))
    try:
        if args.strokes:
            result = engine.by_strokes(load_strokes_json(args.strokes), args.k)
        else:
            result = engine.by_sketch_pixels(load_sketch_image(args.sketch, engine.raster), args.k)
    finally:
        engine.close()
    if args.json:
        print(json.dumps({"results": [m.to_json() for m in result.matches]}, ensure_ascii=False))
        return 0
    for rank, m in enumerate(result.matches, start=1):
        print(f"{rank:3d}. {m.score:6.3f}  {m.id:<14} {m.title}  [{m.category}, {m.color}]  ${m.price:,.0f}")
    return 0


def _sizes(text: str, flag: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated whole numbers such as 8,16; got {text!r}") from None
    if min(sizes, default=1) < 1:
        raise ValueError(f"{flag} sizes must be >= 1, got {text!r}")
    return sizes


def _eval_sweep(args: argparse.Namespace) -> int:
    if args.catalog is None:
        raise ValueError("--sweep needs --catalog: the catalog folder the bundle was built from")
    from vitrina.export.code_sweep import SweepOptions, run_sweep

    bits = _sizes(args.bits, "--bits")
    if any(b % 64 for b in bits):
        raise ValueError(f"--bits must be multiples of 64, got {args.bits!r}")
    options = SweepOptions(
        pca_dims=_sizes(args.pca_dims, "--pca-dims"), umap_dims=_sizes(args.umap_dims, "--umap-dims"), bits=bits,
        umap_fit_sample=args.umap_fit_sample, train_sketches=args.train_sketches, hash_steps=args.hash_steps,
        cold_runs=max(0, args.cold_runs), progress=not args.json,
    )
    report = run_sweep(args.bundle, args.catalog, args.out, options)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    from vitrina.export.code_sweep import markdown_table

    print(markdown_table(report))
    print(f"wrote {args.out}/sweep.json, sweep.md, map_vs_dims.png, pr_curves.png")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_bundle

    if args.sweep:
        return _eval_sweep(args)

    report = evaluate_bundle(Bundle.open(args.bundle), num_threads=args.threads)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    print(f"{report.queries} held-out sketch queries, gallery of {report.gallery} products")
    names = ("map", "mrr", "p_at_1", "p_at_5", "p_at_10", "acc_at_1", "acc_at_10")
    print(f"{'':8}" + "".join(f"{n:>10}" for n in names))
    for precision, metrics in report.metrics.items():
        values = metrics.to_json()
        print(f"{precision:8}" + "".join(f"{values[n]:>10.4f}" for n in names))
    return 0


def _info(args: argparse.Namespace) -> int:
    bundle = Bundle.open(args.bundle)
    m = bundle.manifest
    codes = m["codes"]
    sizes = bundle.size_by_part()
    info = {
        "path": str(bundle.path),
        "catalog": m["catalog"]["name"],
        "format_version": m["format_version"],
        "vitrina_version": m["vitrina_version"],
        "created": m["created"],
        "items": m["catalog"]["items"],
        "images": m["catalog"]["images"],
        "code_type": codes["type"],
        "dims": codes["dims"],
        "metric": codes.get("metric", "cosine"),
        "bytes_per_item": codes.get("bytes_per_item", int(codes["dims"]) * np.dtype(codes["dtype"]).itemsize),
        "reducer": (codes.get("reducer") or {}).get("about", "encoder embedding, no reduction"),
        "rerank": codes.get("rerank"),
        "inputs": m["inputs"],
        "models": {role: sorted(p) for role, p in m["models"].items()},
        "categories": list(bundle.categories),
        "eval_set": bool(m.get("eval")),
        "bytes_by_part": sizes,
    }
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    for key, value in info.items():
        print(f"{key:>16}: {value}")
    return 0


def _parse_threads(text: str) -> tuple[int, ...]:
    try:
        threads = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"--threads must be comma-separated whole numbers such as 1,2; got {text!r}") from None
    if not threads or min(threads) < 1:
        raise ValueError(f"--threads must list counts >= 1, got {text!r}")
    return threads


def _bench_run(args: argparse.Namespace) -> int:
    from .benchmark import BenchOptions, run_benchmark, write_report

    options = BenchOptions(threads=_parse_threads(args.threads), queries=args.queries, cold_runs=args.cold_runs, accuracy=not args.no_accuracy)
    report = run_benchmark(args.bundle, options, progress=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    json_path, html_path = write_report(report, args.out)
    for threads, qtypes in report["latency"].items():
        for qtype, stages in qtypes.items():
            t = stages["total"]
            print(f"{qtype:>8} ({threads} thr): p50 {t['p50']:.2f} ms  p95 {t['p95']:.2f} ms  (Σ stage p50 {stages['stage_sum_p50']:.2f} ms, overhead {stages['overhead']:+.1%})")
    if report["cold_start"].get("runs"):
        print(f"cold start: median {report['cold_start']['median_s']:.3f} s")
    print(f"peak RSS: {report['memory']['peak_rss_mb']} MB")
    if report["accuracy"]:
        print("accuracy: " + ", ".join(f"{p} mAP {report['accuracy'][p]['map']}" for p in ("float", "int8")))
    for name, t in report["targets"].items():
        print(f"target {name}: {t['value']} (<= {t['target']}) {'PASS' if t['ok'] else 'FAIL'}")
    print(f"wrote {json_path} and {html_path}")
    return 0


def _bench_compare(args: argparse.Namespace) -> int:
    from .bench_compare import compare_reports, parse_fraction

    reports = []
    for path in (args.old, args.new):
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read benchmark report {path}: {exc}") from None
    result = compare_reports(*reports, parse_fraction(args.max_latency_regression), parse_fraction(args.max_map_drop))
    print(result.table())
    if result.regressions:
        print(f"{len(result.regressions)} regression(s)")
        return 1
    print("no regression")
    return 0


def _bench_sync(args: argparse.Namespace) -> int:
    from .bench_sync import run_sync_bench

    if args.kills < 0:
        raise ValueError(f"--kills must be >= 0, got {args.kills}")
    r = run_sync_bench(args.bundle, args.kills, args.fraction, progress=lambda msg: print(f"bench sync: {msg}", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(r.to_json()))
        return 0
    mb = lambda n: f"{n / 1e6:.2f} MB"  # noqa: E731
    print(f"bundle: {mb(r.bundle_bytes)}; {r.changed_products} products changed in v2")
    print(f"full sync (v1, empty device): {mb(r.full_sync_bytes)} in {r.full_sync_s:.2f} s ({r.full_sync_bytes / 1e6 / max(r.full_sync_s, 1e-9):.0f} MB/s)")
    print(f"delta sync (v1 → v2): {mb(r.delta_sync_bytes)} in {r.delta_sync_s:.2f} s = {r.delta_ratio:.2%} of the full transfer (target <= 5%)")
    if r.crash_kills:
        print(f"crash loop: {r.crash_kills} kill -9: {r.crash_outcomes} (other must be 0); {r.crash_resumed_runs} runs resumed a partial sync")
    ok = r.delta_ratio <= 0.05 and r.crash_outcomes.get("other", 0) == 0
    return 0 if ok else 1


def _bench_soak(args: argparse.Namespace) -> int:
    from .bench_soak import soak

    result = soak(args.bundle, args.minutes, args.threads, progress=lambda t: print(f"\rsoak: {t:6.0f} s", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        for key, value in result.to_json().items():
            print(f"{key:>18}: {value}")
    return 0 if result.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
