"""Export side of the compact catalog codes: the fitters and what the build and the sweep run.

One module per code family, named like its device twin in ``vitrina.runtime.codes``:

================  ==========================  =====================================
module            fitter (export)             device twin (``vitrina.runtime.codes``)
================  ==========================  =====================================
``pca.py``        :class:`PCAReducer`         ``pca.LinearReducer``
``umap.py``       :class:`UMAPReducer`        ``umap.LandmarkReducer``
``binary.py``     :class:`ITQHasher`          ``binary.SignHasher``
================  ==========================  =====================================

``fit.py`` fits the bundle's code type (``fit_codes``); ``sweep.py`` is ``vitrina eval --sweep``.
The CBS / DSH hash heads and the distilled UMAP reducer are training loops:
``vitrina.export.training.hash_heads`` and ``vitrina.export.training.umap_distill``.
"""
