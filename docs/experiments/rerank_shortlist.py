"""The re-rank's shortlist, blend and instance check on a bundle's black-ink eval (README "Own-product recall").

    python docs/experiments/rerank_shortlist.py BUNDLE

Scores the bundle's held-out sketches (int8 encoder, the bundle's compact codes) with
each shortlist, blend and instance check (depth, top) in place of the manifest's, as
``vitrina eval`` and the device rank them (``EvalInputs.scorer``: compact shortlist,
int8 cosine re-rank).
"""

import sys
from dataclasses import replace

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.evaluate import encode_eval_set
from vitrina.runtime.metrics import scored_metrics

#: (shortlist, blend, instance check (depth, top))
VARIANTS = [
    *((n, 0.0, (0, 0)) for n in (200, 300, 500, 1000, 2000)),
    (500, 0.05, (0, 0)),
    (1000, 0.05, (0, 0)),
    (1000, 0.2, (0, 0)),
    *((500, 0.0, check) for check in ((1000, 3), (2000, 3), (4000, 3), (4000, 5), (4000, 8), (10000, 5))),
]


def main(path: str) -> None:
    """Print one row of figures per variant."""
    inputs = encode_eval_set(Bundle.open(path), "int8", 2)
    manifest = (inputs.shortlist, inputs.blend, (inputs.instance_depth, inputs.instance_top))
    print(f"manifest: shortlist {manifest[0]}, blend {manifest[1]}, instance check {manifest[2]}")  # noqa: T201
    print("shortlist  blend  instance |   mAP  P@10   MRR  acc@1  acc@10")  # noqa: T201
    for shortlist, blend, (depth, top) in VARIANTS:
        variant = replace(inputs, shortlist=shortlist, blend=blend, instance_depth=depth, instance_top=top)
        m = scored_metrics(
            variant.scorer(), len(variant.queries), variant.query_labels, variant.gallery_labels, variant.targets
        )
        print(  # noqa: T201
            f"{shortlist:>9}  {blend:5.2f}  {f'{depth}/{top}':>8} | {m.map:.3f} {m.p_at_10:.3f} {m.mrr:.3f} {m.acc_at_1:.3f}  {m.acc_at_10:.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1])
