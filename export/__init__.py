"""vitrina's workstation side: catalog → trained encoders → TFLite → bundle.

Needs the ``export`` extra (TensorFlow, umap-learn, tqdm, scikit-image).
Where each step lives: catalog.py (input format and validation),
demo_catalog.py (Fashion-MNIST demo), sketch_synthesis.py (training sketches),
models.py (MobileNet-style encoders), train_encoders.py (training loop),
quantize.py (TFLite float/int8), build.py (the pipeline), quickdraw.py
(Quick, Draw! readers).
"""
