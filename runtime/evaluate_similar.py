"""``vitrina eval --task similar``: "more like this" on held-out products, visual against text-visual.

Every test-split product is a query once; the gallery is the other test-split
products; a product is relevant when it has the query's category and colour.
Metrics (means over queries that have at least one relevant product):
R@5, R@10, R@20 (share of the relevant products within the top k) and P@5,
P@10 (share of the top k that is relevant; missing places count as misses).

Methods:

* ``visual float``: the float photo encoder's codes of the held-out products
  (the bundle's eval gallery, ``eval/gallery_float.npy``);
* ``visual int8`` (bundles with float catalog codes): the shipped int8 photo codes;
* ``text-visual int8`` / ``text-visual float``: the text-visual codes (title +
  main image) made by the int8 / float model.

A bundle built from a catalog with outfit photos (``eval/outfits/``, see
``vitrina eval --task outfit``) encodes each outfit photo by one representative
crop, the one main-product identification picked. Its table has each method
twice: ``… (whole image)``, the outfit products' codes made from the whole photo,
and ``…, one crop``, the codes the bundle ships.

Only this bundle's own store is measured here: the device cannot encode another
catalog. ``vitrina eval --task similar --store-catalog DIR`` (export side,
``export/second_store.py``) measures the bundle's models on another store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bundle import Bundle
from .text_visual import catalog_codes, has_text_visual

KS_RECALL = (5, 10, 20)
KS_PRECISION = (5, 10)


@dataclass(frozen=True)
class SimilarMetrics:
    """Means over queries: ``recall`` {k: R@k}, ``precision`` {k: P@k}; ``queries`` counted."""

    recall: dict[int, float]
    precision: dict[int, float]
    queries: int

    def to_json(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {f"r_at_{k}": round(v, 4) for k, v in self.recall.items()}
        out |= {f"p_at_{k}": round(v, 4) for k, v in self.precision.items()}
        return out | {"queries": self.queries}


@dataclass(frozen=True)
class SimilarReport:
    """Attributes: gallery (held-out products), methods → :class:`SimilarMetrics`, store (which store), notes."""

    gallery: int
    methods: dict[str, SimilarMetrics]
    store: str
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "gallery": self.gallery,
            "store": self.store,
            "methods": {m: v.to_json() for m, v in self.methods.items()},
            "notes": list(self.notes),
        }


def neighbour_metrics(codes: np.ndarray, labels: np.ndarray) -> SimilarMetrics:
    """R@k and P@k of each row's nearest rows by cosine (itself excluded).

    Args:
        codes: (M, D) float32 unit rows; labels: (M,) int, equal labels are relevant to each other.
    """
    codes = np.asarray(codes, np.float32)
    sims = codes @ codes.T
    np.fill_diagonal(sims, -np.inf)
    relevant = labels[:, None] == labels[None, :]
    np.fill_diagonal(relevant, False)
    totals = relevant.sum(axis=1)
    rows = np.flatnonzero(totals > 0)
    k_max = min(max(KS_RECALL), len(codes) - 1)
    order = np.argsort(-sims[rows], axis=1, kind="stable")[:, :k_max]
    hits = np.take_along_axis(relevant[rows], order, axis=1)
    recall = {k: float(np.mean(hits[:, :k].sum(axis=1) / totals[rows])) if len(rows) else 0.0 for k in KS_RECALL}
    precision = {k: float(np.mean(hits[:, :k].sum(axis=1) / k)) if len(rows) else 0.0 for k in KS_PRECISION}
    return SimilarMetrics(recall, precision, len(rows))


def evaluate_similar(bundle: Bundle) -> SimilarReport:
    """The table of the module docstring.

    Raises:
        ValueError: the bundle has no test-split products, no eval set or no text-visual model.
    """
    test = np.array([i for i, item in enumerate(bundle.items) if item.split == "test"], dtype=np.int64)
    if len(test) < 2:
        raise ValueError(f"bundle {bundle.path} has fewer than two test-split products to evaluate similar products on")
    if not has_text_visual(bundle):
        raise ValueError(f"bundle {bundle.path} has no text-visual model: --task similar compares it with visual codes")
    _, labels = np.unique([f"{bundle.items[i].category}\t{bundle.items[i].color}" for i in test], return_inverse=True)
    methods: dict[str, SimilarMetrics] = {}
    notes = []
    whole = _whole_image_rows(bundle, test)
    crop = ", one crop" if whole is not None else ""
    if bundle.manifest.get("eval"):
        eval_set = bundle.eval_set()
        position = {int(item): row for row, item in enumerate(eval_set.gallery_items)}
        if all(int(i) in position for i in test):
            codes = eval_set.gallery_float[[position[int(i)] for i in test]]
            if whole is not None:
                methods["visual float (whole image)"] = neighbour_metrics(
                    _replaced(codes, whole, "whole_float"), labels
                )
            methods["visual float" + crop] = neighbour_metrics(codes, labels)
    if bundle.code_spec.family == "float":
        rows = bundle.first_code_rows[test]
        if (rows >= 0).all():
            methods["visual int8" + crop] = neighbour_metrics(np.asarray(bundle.codes[rows], np.float32), labels)
    else:
        notes.append(
            f"visual int8 left out: the shipped codes are {bundle.code_spec.name}, not the encoder's embedding"
        )
    for precision in ("int8", "float"):
        codes = catalog_codes(bundle, precision)[test]
        if whole is not None:
            methods[f"text-visual {precision} (whole image)"] = neighbour_metrics(
                _replaced(codes, whole, f"tv_whole_{precision}"), labels
            )
        methods[f"text-visual {precision}" + crop] = neighbour_metrics(codes, labels)
    notes.append("own store only: another store is measured with --store-catalog DIR (export side)")
    if whole is None:
        notes.append("one representative crop per image: not measured (the catalog had no outfit photos)")
    return SimilarReport(gallery=len(test), methods=methods, store=bundle.name, notes=tuple(notes))


@dataclass(frozen=True)
class _WholeImages:
    """The bundle's outfit products among the queries: ``positions`` (n,) in the query order,
    ``bundle`` to read the whole-image codes from (``eval/outfits/<name>.npy``, n rows)."""

    positions: np.ndarray
    bundle: Bundle


def _whole_image_rows(bundle: Bundle, test: np.ndarray) -> _WholeImages | None:
    """Where the outfit products sit among ``test`` (None: the bundle has no whole-image codes)."""
    outfits = bundle.manifest.get("eval_outfits")
    if not outfits or "eval/outfits/tv_whole_int8.npy" not in bundle.manifest.get("files", {}):
        return None
    position = {int(item): row for row, item in enumerate(test)}
    items = bundle.array("eval/outfits/items.npy")
    return _WholeImages(np.array([position[int(i)] for i in items], np.int64), bundle)


def _replaced(codes: np.ndarray, whole: _WholeImages, name: str) -> np.ndarray:
    """``codes`` (M, D) with the outfit products' rows replaced by their whole-image codes ``name``."""
    out = np.array(codes, np.float32, copy=True)
    out[whole.positions] = whole.bundle.array(f"eval/outfits/{name}.npy")
    return out


def format_similar(report: SimilarReport) -> str:
    """The table as plain text."""
    lines = [
        f"similar products on {report.gallery} held-out products of {report.store!r} (relevant = same category and colour)"
    ]
    head = "".join(f"{'R@' + str(k):>8}" for k in KS_RECALL) + "".join(f"{'P@' + str(k):>8}" for k in KS_PRECISION)
    width = max(20, *(len(name) + 2 for name in report.methods))
    lines.append(f"{'method':{width}}{head}{'queries':>9}")
    for name, m in report.methods.items():
        row = "".join(f"{m.recall[k]:8.4f}" for k in KS_RECALL) + "".join(
            f"{m.precision[k]:8.4f}" for k in KS_PRECISION
        )
        lines.append(f"{name:{width}}{row}{m.queries:9d}")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
