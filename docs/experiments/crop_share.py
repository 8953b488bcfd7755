"""A/B of the text-visual training's scene crops (README "Scene crops in training").

    python docs/experiments/crop_share.py CATALOG OUT SHARE

builds ``OUT`` from ``CATALOG`` with the ``small`` profile (the tiny encoders and
detector, the demo's text-visual training) with ``crop_share=SHARE`` and 400 held-out
scenes; then ``vitrina eval --bundle OUT --task identify|similar|text``.
"""

import sys
from dataclasses import replace
from pathlib import Path

from vitrina.export import profiles
from vitrina.export.build import BuildOptions, build_bundle

if __name__ == "__main__":  # the background trainings spawn processes that import this file
    catalog, out, share = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    small = profiles.PROFILES["small"]
    if small.text_visual is None or small.detector is None:
        raise SystemExit("the small profile lost its text-visual model or detector")
    text_visual = replace(small.text_visual, train=replace(small.text_visual.train, crop_share=share))
    name = f"crop_share_{share:g}"
    profiles.PROFILES[name] = replace(
        small, name=name, text_visual=text_visual, detector=replace(small.detector, eval_scenes=400)
    )
    result = build_bundle(catalog, out, BuildOptions(profile=name))
    print(f"{out}: {result.seconds:.0f} s")  # noqa: T201
