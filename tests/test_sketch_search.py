"""Behaviour of the whole device path with real (tiny) trained models: a sketch
of a product finds products of its category far above chance."""

import numpy as np

from vitrina.runtime import Searcher, SearcherOptions, SketchEncoder, SketchEncoderOptions
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.evaluate import evaluate_bundle
from vitrina.runtime.search import to_results


def test_held_out_sketches_find_their_category(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    eval_set = bundle.eval_set()
    with SketchEncoder.create_from_bundle(bundle, SketchEncoderOptions(precision="int8", batch_size=16)) as encoder:
        queries = encoder.embed(eval_set.sketches).embeddings
    gallery = Searcher(bundle.codes[eval_set.gallery_items], eval_set.gallery_items, len(bundle.items))
    _, ids = gallery.search(queries, SearcherOptions(k=10))
    labels = bundle.item_categories
    hit_rate = (labels[ids] == labels[eval_set.query_items][:, None]).mean()
    chance = np.bincount(labels[eval_set.gallery_items]).max() / len(eval_set.gallery_items)
    assert hit_rate > 2 * chance


def test_sketch_of_trousers_finds_trousers(tiny_bundle):
    """The most distinctive class: held-out trouser sketches put a trouser first."""
    bundle = Bundle.open(tiny_bundle)
    eval_set = bundle.eval_set()
    trousers = [q for q, item in enumerate(eval_set.query_items) if bundle.items[item].category == "Trouser"]
    with (
        Searcher.create_from_bundle(bundle, SearcherOptions(k=5)) as searcher,
        SketchEncoder.create_from_bundle(bundle) as encoder,
    ):
        top = [
            to_results(*searcher.search(encoder.embed(eval_set.sketches[q][None]).embeddings), bundle.items)[0]
            for q in trousers
        ]
    share = np.mean([any(m.category == "Trouser" for m in r.matches) for r in top])
    assert len(trousers) >= 5 and share >= 0.8


def test_int8_close_to_float(tiny_bundle):
    report = evaluate_bundle(Bundle.open(tiny_bundle))
    assert abs(report.metrics["int8"].map - report.metrics["float"].map) < 0.05
    assert report.metrics["int8"].map > 0.15
