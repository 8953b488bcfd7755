"""The sketch encoder's input size against accuracy on held-out drawing styles (README "Input size").

    python docs/experiments/input_size.py CATALOG OUT STEPS SIZE

builds ``OUT`` from ``CATALOG`` with the demo encoders at ``SIZE`` × ``SIZE`` pixels
(sketches, photos and the rasteriser alike), trained ``STEPS`` steps on the
silhouette sketches, float codes, no detector and no text-visual model; then
``vitrina eval --bundle OUT --json`` (its ``styles`` entry has the in-style and
held-out-style mAP). The query cost of each size is timed apart, all sizes in one
process (the machine is shared: only ratios within one run compare).
"""

import sys
from dataclasses import replace
from pathlib import Path

from vitrina.export import profiles
from vitrina.export.build import BuildOptions, build_bundle
from vitrina.export.codes.fit import CodeOptions

if __name__ == "__main__":
    catalog, out, steps, size = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    demo = profiles.PROFILES["demo"]
    name = f"input_{size}"
    profiles.PROFILES[name] = replace(
        demo,
        name=name,
        input_size=size,
        detector=None,
        text_visual=None,
        codes="float",
        code_options=CodeOptions(),
        train=replace(demo.train, steps=steps),
    )
    result = build_bundle(catalog, out, BuildOptions(profile=name, progress=False))
    print(f"{out}: {result.seconds:.0f} s, final loss {result.train.final_loss}")  # noqa: T201
