"""QA benchmark subcommands of ``vitrina``: ``bench run``, ``bench compare`` and ``bench soak``.

They run on the device with the base install; ``bench run`` embeds plots in
its HTML report when matplotlib (``vitrina[bench]``) is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..commands import CommandPlugin, Commands, positive_int


def register(commands: Commands) -> None:
    """Add the ``bench`` group with ``run``, ``compare`` and ``soak``."""
    bench = commands.group("bench", help="QA device benchmark: run, compare, soak")
    b = bench.add_parser("run", help="latency per stage, cold start, memory, accuracy → report.json + report.html")
    b.add_argument("--bundle", required=True, type=Path)
    b.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    b.add_argument("--queries", type=positive_int, default=200, help="timed queries per query type")
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
    b = bench.add_parser(
        "search", help="search at catalog scale (100k, 1M) side by side with faiss; open and sketch at 1M"
    )
    b.add_argument("--sizes", default="100000,1000000", help="synthetic catalog sizes (default 100000,1000000)")
    b.add_argument(
        "--kinds", default="hamming64,hamming256,l2_8,l2_8f32,l2_8i8,l2_64,twostage", help="case kinds to run"
    )
    b.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    b.add_argument("--batches", default="1,64", help="queries per call (default 1,64)")
    b.add_argument("--budget", type=float, default=1.0, help="seconds each case is timed, about (default 1)")
    b.add_argument(
        "--bundle", type=Path, default=None, help="a real bundle: demo-catalog cases, and the 1M bundle grown from it"
    )
    b.add_argument("--work", type=Path, default=Path("build/bench-search"), help="cache of synthetic catalogs")
    b.add_argument("--out", type=Path, default=None, help="folder for report.json and report.html")
    b.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    b.set_defaults(handler=_bench_search)
    b = bench.add_parser("soak", help="mixed queries for minutes: qps, latency drift, memory growth")
    b.add_argument("--bundle", required=True, type=Path)
    b.add_argument("--minutes", type=float, required=True)
    b.add_argument("--threads", type=positive_int, default=1)
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=_bench_soak)


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

    options = BenchOptions(
        threads=_parse_threads(args.threads),
        queries=args.queries,
        cold_runs=args.cold_runs,
        accuracy=not args.no_accuracy,
    )
    report = run_benchmark(
        args.bundle, options, progress=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True)
    )
    json_path, html_path = write_report(report, args.out)
    for threads, qtypes in report["latency"].items():
        for qtype, stages in qtypes.items():
            t = stages["total"]
            print(
                f"{qtype:>11} ({threads} thr): p50 {t['p50']:.2f} ms  p95 {t['p95']:.2f} ms  (Σ stage p50 {stages['stage_sum_p50']:.2f} ms, overhead {stages['overhead']:+.1%})"
            )
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
    from .compare import compare_reports, parse_fraction

    reports = []
    for path in (args.old, args.new):
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read benchmark report {path}: {exc}") from None
    old, new = reports
    result = compare_reports(
        old,
        new,
        max_latency_regression=parse_fraction(args.max_latency_regression),
        max_map_drop=parse_fraction(args.max_map_drop),
    )
    print(result.table())
    if result.regressions:
        print(f"{len(result.regressions)} regression(s)")
        return 1
    print("no regression")
    return 0


def _bench_search(args: argparse.Namespace) -> int:
    from .search_bench import (
        ALL_KINDS,
        SearchBenchOptions,
        parse_list,
        parse_sizes,
        run_search_bench,
        table,
        write_search_report,
    )

    options = SearchBenchOptions(
        sizes=parse_sizes(args.sizes),
        kinds=parse_list(args.kinds, ALL_KINDS, "kinds"),
        threads=_parse_threads(args.threads),
        batches=_parse_threads(args.batches),
        budget_s=args.budget,
        bundle=args.bundle,
        work=args.work,
    )
    report = run_search_bench(options, progress=lambda msg: print(f"bench search: {msg}", file=sys.stderr, flush=True))
    if args.out is not None:
        json_path, html_path = write_search_report(report, args.out)
        print(f"wrote {json_path} and {html_path}", file=sys.stderr)
    if args.json:
        flat = {
            key: {k: row.get(k) for k in ("median_ms", "p95_ms", "faiss_median_ms", "ratio")}
            for key, row in report["cases"].items()
        }
        flat.update(
            {
                k: v
                for k, v in report.items()
                if k.startswith(("rss_", "sketch_1m_")) or k in ("open_1m_ms", "memory_bandwidth_gbs")
            }
        )
        print(json.dumps(flat))
        return 0
    print(table(report))
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    from .soak import soak

    result = soak(
        args.bundle,
        args.minutes,
        args.threads,
        progress=lambda t: print(f"\rsoak: {t:6.0f} s", end="", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        for key, value in result.to_json().items():
            print(f"{key:>18}: {value}")
    return 0 if result.ok else 1


PLUGIN = CommandPlugin(
    name="bench", commands=("bench run", "bench compare", "bench search", "bench soak"), register=register, order=10
)
