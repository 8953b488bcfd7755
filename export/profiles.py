"""Build profiles: model sizes and training lengths.

Every profile trains a fixed number of steps from a fixed seed, with
TensorFlow's deterministic ops, so the same catalog gives the same model on any
machine; a slower one takes longer (the build reports the time and pairs/s).

``tiny`` is for tests (seconds of training, tiny models: the results only have
to beat chance). ``demo`` trains the demo bundle in about 20 minutes of CPU on
2 cores (5,800 steps). Input 48 px: the demo photos are 28 px, so 96 px costs ~4× the
compute for no extra detail (measured: 48 px with 5 strides ran ~3.5× the
pairs/s of 32 px with full-resolution early stages).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .build_detector import DetectorProfile
from .build_text_visual import TextVisualProfile
from .codes.fit import CodeOptions
from .codes.umap import UMAPOptions
from .data.scenes import SceneOptions
from .data.sketch_synthesis import SynthesisOptions
from .models import EncoderSpec
from .training.detector import DetectorTrainOptions
from .training.encoders import TrainOptions
from .training.photo_crops import CropTuneOptions
from .training.text_visual import TextVisualTrainOptions


@dataclass(frozen=True, kw_only=True)
class Profile:
    """Attributes:
    name: profile name.
    input_size: side of sketch and photo inputs, pixels.
    alpha, depth, embedding_dims, strides: encoder architecture (see EncoderSpec).
    sketch_variants: synthetic sketches rendered per training product.
    train: training options.
    calibration_samples: representative samples for int8 (>= 200).
    thumbnail_size: side of the bundle's thumbnails, pixels.
    max_eval_queries: cap on held-out queries (None: one per test product).
    synthesis: how training and eval sketches are synthesised.
    bn_momentum: BatchNorm momentum of both encoders (see EncoderSpec).
    codes, code_options: catalog code type and how it is fitted (see codes/fit.py).
    train_styles: sketch styles the training sketches are drawn in (``data/sketch_styles.py``);
        ``("silhouette",)`` is the original single style, drawn with ``synthesis``.
    style_eval_queries: held-out sketches per style in the bundle's per-style eval set.
    detector: the product detector and the photo encoder's crop tuning (None: no detector).
    text_visual: the text-visual model (None: none; text search stays keyword search).
    """

    name: str
    input_size: int
    alpha: float
    depth: float
    embedding_dims: int
    strides: int | None
    sketch_variants: int
    train: TrainOptions
    calibration_samples: int = 500
    thumbnail_size: int = 64
    max_eval_queries: int | None = None
    synthesis: SynthesisOptions = SynthesisOptions()
    bn_momentum: float = 0.99
    codes: str = "float"
    code_options: CodeOptions = CodeOptions()
    train_styles: tuple[str, ...] = ("silhouette",)
    style_eval_queries: int = 300
    detector: DetectorProfile | None = None
    text_visual: TextVisualProfile | None = None

    def sketch_spec(self) -> EncoderSpec:
        """The sketch encoder: (batch, input_size, input_size, 1) grayscale pixels 0-255."""
        return self._spec(channels=1)

    def photo_spec(self) -> EncoderSpec:
        """The photo encoder: (batch, input_size, input_size, 3) RGB pixels 0-255."""
        return self._spec(channels=3)

    def _spec(self, channels: int) -> EncoderSpec:
        return EncoderSpec(
            input_size=self.input_size,
            channels=channels,
            alpha=self.alpha,
            depth=self.depth,
            embedding_dims=self.embedding_dims,
            strides=self.strides,
            bn_momentum=self.bn_momentum,
        )


# Text-visual model: 1500 steps of 128 triplets (plus in-batch negatives), mining a pool of 2048
# products every 100 steps; the visual branch from scratch. Measured 0.27 s a step at 48 px on
# the shared 2 cores: ~7 minutes (over the issue's ~5: on 10,000 products text mAP was 0.61
# after 1100 steps and 0.93 after 1500, so the steps stay).
# Half the images are shown as crops out of the detector's training scenes (crop_share 0.5):
# on 10,000 + 2,000 demo products (`small` profile, 1500 steps, one run each) identification with
# ground-truth boxes 0.703 -> 0.896, similar P@10 0.618 -> 0.688, text P@10 0.478 -> 0.540 (int8).
DEMO_TEXT_VISUAL = TextVisualProfile(
    train=TextVisualTrainOptions(steps=1500, batch_size=128, mine_every=100, pool=2048, crop_share=0.5),
    calibration_samples=300,
    init_from_photo=False,
    validation_products=1500,
    validation_scenes=300,
)

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        input_size=32,
        alpha=0.35,
        depth=0.34,
        embedding_dims=32,
        strides=4,
        sketch_variants=2,
        train=TrainOptions(steps=60, batch_size=32, learning_rate=3e-3, warmup_steps=5, checkpoint_every=20, seed=0),
        calibration_samples=200,
        thumbnail_size=28,
        max_eval_queries=200,
        bn_momentum=0.8,
        style_eval_queries=40,
        detector=DetectorProfile(
            scenes=SceneOptions(size=64, max_products=3, min_scale=0.25),
            train_scenes=600,
            eval_scenes=60,
            alpha=0.35,
            depth=0.34,
            fpn_channels=24,
            train=DetectorTrainOptions(
                steps=400, batch_size=16, learning_rate=4e-3, warmup_steps=20, checkpoint_every=100
            ),
            crops=CropTuneOptions(steps=10, batch_size=16),
            calibration_samples=200,
            # a model trained for seconds is unsure of itself: its peaks are low
            score_threshold=0.05,
        ),
        text_visual=TextVisualProfile(
            train=TextVisualTrainOptions(steps=40, batch_size=32, warmup_steps=5, mine_every=10, pool=256),
            calibration_samples=200,
            validation_products=48,
            validation_scenes=20,
        ),
    ),
    "demo": Profile(
        name="demo",
        input_size=48,
        alpha=0.5,
        depth=0.5,
        embedding_dims=128,
        strides=5,
        sketch_variants=3,
        # Run 1 (nce 1.0, ce 0.5, 5000 steps) reached mAP 0.713 / acc@10 0.723:
        # instance matching had headroom, category ranking did not, so InfoNCE
        # weighs less. Run 2 (nce 0.5, ce 1.0, 5000 steps, 15.5 min) reached
        # mAP 0.759, P@10 0.820; a 20-minute budget on 2 cores allows ~5800 steps.
        # Fixed steps, no wall-clock cap: a slower machine trains longer, not less.
        train=TrainOptions(
            steps=5800,
            batch_size=128,
            learning_rate=2e-3,
            warmup_steps=150,
            nce_weight=0.5,
            triplet_weight=1.0,
            ce_weight=1.0,
            checkpoint_every=250,
            seed=0,
        ),
        calibration_samples=500,
        thumbnail_size=28,
        # `vitrina eval --sweep` (docs/compact-codes.md): UMAP-8 fitted with the catalog's
        # categories, reduced on the device by landmark interpolation, re-ranked with int8
        # full embeddings had the best mAP and P@10 of every method. A shortlist of 500
        # instead of 200 keeps mAP and P@10 and lifts own-product acc@10 0.533 -> 0.566
        # (README "Own-product recall"; docs/experiments/rerank_shortlist.py); 1,000 costs mAP.
        # The instance check (the 5 best cosines among 4,000 compact rows join the shortlist)
        # lifts own acc@10 0.566 -> 0.624 and MRR 0.843 -> 0.886, mAP and P@10 as they were.
        codes="umap8",
        code_options=CodeOptions(
            umap=UMAPOptions(supervised=True), rerank=True, shortlist=500, instance_depth=4000, instance_top=5
        ),
        # Detector (README "Detector"): 192 px input, stride 8, gradients clipped to norm 10, 2,400
        # steps of 16 scenes. Measured on the held-out scenes (float, NMS IoU 0.5, score 0.05):
        # 128 px / 1,400 steps AP50 0.695, recall 0.835; 160 px 0.828 / 0.905; 192 px 0.867 /
        # 0.920; 192 px clipped 0.941 / 0.959; 192 px clipped, stride 4 0.926 / 0.948; 192 px
        # clipped, 2,400 steps 0.958 / 0.969. It trains in its own process beside the encoders.
        detector=DetectorProfile(
            scenes=SceneOptions(size=192),
            train_scenes=4000,
            eval_scenes=500,
            train=DetectorTrainOptions(steps=2400, batch_size=16, learning_rate=3e-3, warmup_steps=100, clip_norm=10.0),
            crops=CropTuneOptions(steps=200, batch_size=64),
        ),
        text_visual=DEMO_TEXT_VISUAL,
    ),
}

#: ``small``: the tiny profile's encoders and detector with the demo's text-visual training, to
#: measure the text-visual model on a catalog of a few thousand products in minutes.
PROFILES["small"] = replace(PROFILES["tiny"], name="small", text_visual=DEMO_TEXT_VISUAL)


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ValueError naming the choices otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
