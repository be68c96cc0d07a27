"""The bundled model files, installed as the data of :mod:`codec_core.models`.

``roi_features.onnx``, ``roi_svm.pkl``, ``denoiser.onnx``, their ``SHA256SUMS`` and
``MODEL_CARD.md`` (see :mod:`codec_core.roi.model_files`). The recipe that made them,
``training/``, stays in the repository: ``python -m models.training.train``.
"""
