"""A/B of the sketch encoder's training styles (README "Drawing styles").

    python docs/experiments/train_styles.py CATALOG OUT STEPS [zoo]

builds ``OUT`` from ``CATALOG`` with the demo encoders trained ``STEPS`` steps on
the original silhouette sketches (or, with ``zoo``, on ``sketch_styles.ZOO_MIX``),
float codes, no detector and no text-visual model; then ``vitrina eval --bundle OUT --json``
(its ``styles`` entry is the per-style table).
"""

import sys
from dataclasses import replace
from pathlib import Path

from vitrina.export import profiles
from vitrina.export.build import BuildOptions, build_bundle
from vitrina.export.codes.fit import CodeOptions
from vitrina.export.data.sketch_styles import ZOO_MIX

if __name__ == "__main__":
    catalog, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    demo = profiles.PROFILES["demo"]
    styles = ZOO_MIX if sys.argv[4:] == ["zoo"] else ("silhouette",)
    name = "styles_" + ("zoo" if styles == ZOO_MIX else "silhouette")
    profiles.PROFILES[name] = replace(
        demo,
        name=name,
        detector=None,
        text_visual=None,
        codes="float",
        code_options=CodeOptions(),
        train=replace(demo.train, steps=steps),
        train_styles=styles,
    )
    result = build_bundle(catalog, out, BuildOptions(profile=name))
    print(f"{out}: {result.seconds:.0f} s, final loss {result.train.final_loss}")  # noqa: T201
