"""Self-contained ``report.html`` for a benchmark report: tables plus embedded plots.

Plots (latency histograms per stage, PR curves, bundle bytes by part) are drawn
with matplotlib when it is installed (``pip install 'vitrina[bench]'``) and
embedded as base64 PNG, so the file can be mailed or archived alone. Without
matplotlib the report has the tables and says the plots were left out.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any


def _plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _latency_plot(qtype: str, samples: dict[str, list[float]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.6))
    for ax, name in zip(axes if len(names) > 1 else [axes], names):
        data = samples[name]
        ax.hist(data, bins=40, color="#3b6ea8" if name != "total" else "#b8522e")
        ax.set_title(f"{qtype}: {name}", fontsize=9)
        ax.set_xlabel("ms", fontsize=8)
        ax.tick_params(labelsize=7)
    return _png(fig)


def _pr_plot(curves: dict[str, list[float]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    for precision in ("float", "int8"):
        if precision in curves:
            ax.plot(curves["recall"], curves[precision], marker="o", markersize=3, label=precision)
    ax.set_xlabel("recall")
    ax.set_ylabel("interpolated precision")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Category PR curve (held-out sketches)", fontsize=9)
    return _png(fig)


def _memory_plot(parts: dict[str, int]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    names = sorted(parts, key=lambda n: parts[n], reverse=True)
    ax.barh(names, [parts[n] / 1e6 for n in names], color="#5a8f4e")
    ax.set_xlabel("MB on disk")
    ax.invert_yaxis()
    ax.set_title("Bundle size by part", fontsize=9)
    return _png(fig)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML page."""
    plots = _plots_available()
    b, env = report["bundle"], report["environment"]
    parts = [
        f"<h1>vitrina benchmark — {html.escape(str(b['catalog']))}</h1>",
        f"<p>{b['items']} products, codes {html.escape(str(b['code_type']))} × {b['dims']}; bundle built {html.escape(str(b['created']))}; "
        f"report {html.escape(str(report['created']))}.</p>",
    ]
    targets = report.get("targets", {})
    if targets:
        rows = [[name, t["value"], t["target"], "PASS" if t["ok"] else "FAIL"] for name, t in targets.items()]
        parts += ["<h2>Targets (1 thread)</h2>", _table(["figure", "measured", "target", "verdict"], rows)]
    parts.append("<h2>Latency (ms, after warm-up)</h2>")
    for threads, qtypes in report["latency"].items():
        rows = []
        for qtype, stages in qtypes.items():
            for stage, s in stages.items():
                if isinstance(s, dict):
                    rows.append([qtype, stage, s["p50"], s["p95"], s["p99"], s["max"], s["n"]])
            rows.append(
                [qtype, "Σ stage p50 / overhead", stages["stage_sum_p50"], f"{stages['overhead']:+.1%}", "", "", ""]
            )
        parts += [f"<h3>{threads} thread(s)</h3>", _table(["query", "stage", "p50", "p95", "p99", "max", "n"], rows)]
    if plots:
        for qtype, samples in report.get("raw_ms", {}).get(str(report["options"]["threads"][0]), {}).items():
            parts.append(_latency_plot(qtype, samples))
    cold = report.get("cold_start") or {}
    if cold.get("runs"):
        rows = [[r["wall_s"], r["import_s"], r["open_s"], r["first_query_s"]] for r in cold["runs"]]
        parts += [
            "<h2>Cold start (s)</h2>",
            f"<p>median {cold['median_s']} s, process start → first result.</p>",
            _table(["wall", "imports", "bundle open + models", "first query"], rows),
        ]
    mem = report["memory"]
    parts += [
        "<h2>Memory</h2>",
        f"<p>Peak resident memory serving 120 queries: <b>{mem['peak_rss_mb']} MB</b>.</p>",
        _table(["part", "bytes"], [[k, f"{v:,}"] for k, v in sorted(mem["bundle_bytes"].items())]),
    ]
    if plots:
        parts.append(_memory_plot(mem["bundle_bytes"]))
    acc = report.get("accuracy")
    if acc:
        names = ["map", "mrr", "p_at_1", "p_at_5", "p_at_10", "acc_at_1", "acc_at_10"]
        rows = [[p, *[acc[p][n] for n in names]] for p in ("float", "int8") if p in acc]
        parts += [
            "<h2>Accuracy</h2>",
            f"<p>{acc['queries']} held-out sketch queries, gallery of {acc['gallery']} products.</p>",
            _table(["encoders", *names], rows),
        ]
        if plots:
            parts.append(_pr_plot(acc["pr_curve"]))
    checks = report.get("cross_checks", {})
    if checks:
        rows = [
            [
                role,
                c["stage_p50_ms"],
                c["raw_invoke_p50_ms"],
                c["raw_invoke_hot_p50_ms"],
                c["benchmark_model_ms"] if c["benchmark_model_ms"] is not None else "not installed",
                c["ratio_stage_to_raw"],
            ]
            for role, c in checks.get("models", {}).items()
        ]
        parts += [
            "<h2>Cross-checks</h2>",
            "<p>Bare invoke after a search meets the caches as the pipeline does; 'hot' repeats invokes back to back. "
            "Our stage adds int8 quantisation, dequantisation and L2 normalisation.</p>",
            _table(
                [
                    "model",
                    "our stage p50",
                    "bare invoke p50 (after search)",
                    "bare invoke p50 (hot)",
                    "benchmark_model",
                    "ratio",
                ],
                rows,
            ),
        ]
        f = checks.get("faiss")
        parts.append(
            _table(
                ["search over rows", "ours p50 ms", "faiss p50 ms", "ratio", "score agreement"],
                [[f["rows"], f["ours_p50_ms"], f["faiss_p50_ms"], f["ratio_ours_to_faiss"], f["score_agreement"]]],
            )
            if f
            else "<p>faiss not installed.</p>"
        )
    parts += ["<h2>Environment</h2>", _table(["key", "value"], [[k, v] for k, v in env.items()])]
    if not plots:
        parts.append("<p><i>Plots left out: matplotlib is not installed (pip install 'vitrina[bench]').</i></p>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}th{background:#eee}img{margin:4px}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>vitrina benchmark</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
