"""The re-rank's shortlist and blend on a bundle's black-ink eval (README "Own-product recall").

    python docs/experiments/rerank_shortlist.py BUNDLE

Scores the bundle's held-out sketches (int8 encoder, the bundle's compact codes) with
each shortlist and blend in place of the manifest's, as ``vitrina eval`` and the
device rank them (``EvalInputs.scorer``: compact shortlist, int8 cosine re-rank).
"""

import sys
from dataclasses import replace

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.evaluate import encode_eval_set
from vitrina.runtime.metrics import scored_metrics

#: (shortlist, blend)
VARIANTS = [(200, 0.0), (300, 0.0), (500, 0.0), (500, 0.05), (1000, 0.0), (1000, 0.05), (1000, 0.2), (2000, 0.0)]


def main(path: str) -> None:
    """Print one row of figures per variant."""
    inputs = encode_eval_set(Bundle.open(path), "int8", 2)
    print(f"manifest: shortlist {inputs.shortlist}, blend {inputs.blend}")  # noqa: T201
    print("shortlist  blend |   mAP  P@10   MRR  acc@1  acc@10")  # noqa: T201
    for shortlist, blend in VARIANTS:
        variant = replace(inputs, shortlist=shortlist, blend=blend)
        m = scored_metrics(
            variant.scorer(), len(variant.queries), variant.query_labels, variant.gallery_labels, variant.targets
        )
        print(  # noqa: T201
            f"{shortlist:>9}  {blend:5.2f} | {m.map:.3f} {m.p_at_10:.3f} {m.mrr:.3f} {m.acc_at_1:.3f}  {m.acc_at_10:.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1])
