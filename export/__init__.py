"""vitrina's workstation side: catalog → trained encoders → TFLite → bundle.

Needs the ``export`` extra (TensorFlow, umap-learn, scikit-image).
Where each step lives: ``data/`` (catalog.py: input format and validation;
demo_catalog.py: Fashion-MNIST demo; sketch_synthesis.py: training sketches;
quickdraw.py: Quick, Draw! readers), models.py (MobileNet-style encoders),
``training/`` (encoders.py: the encoder training loop; hash_heads.py;
umap_distill.py), quantize.py (TFLite float/int8), ``codes/`` (the compact-code
fitters, ``fit_codes`` and the sweep), profiles.py (model sizes and step
counts), build.py (the pipeline).
"""
