"""Diagnostic-importance maps: automatic (CNN features + SVM), DICOM SEG masks, denoising.

One job a module:

* :mod:`~codec_core.roi.model_files`: where the bundled models are, their SHA-256
  check (``SHA256SUMS``), loading them once;
* :mod:`~codec_core.roi.features`: cell statistics and the CNN's features per block;
* :mod:`~codec_core.roi.classify`: :func:`auto_importance_map`, the classifier and
  the rules that make its map safe;
* :mod:`~codec_core.roi.denoiser`: the CNN denoiser (``preprocess="denoise"``);
* :mod:`~codec_core.roi.seg`: masks from DICOM Segmentation objects;
* :mod:`~codec_core.roi.mask`: the importance map a hybrid stream stores, from
  ``roi="auto"`` or a boolean mask.

The models are described in ``models/MODEL_CARD.md``. Model files are verified
against ``SHA256SUMS`` before they are loaded; a missing or altered file raises
:class:`ModelIntegrityError`. onnxruntime, scikit-learn and scipy are imported only
when a model is used, never at ``import codec_core``.
"""
from __future__ import annotations

from .classify import BACKGROUND, BODY, DETAIL, ROI_BLOCK, auto_importance_map
from .denoiser import denoise
from .features import CELL, CLASS_BLOCK, FEATURE_CHANNELS, block_features, cell_features
from .model_files import (
                          DENOISER_FILE,
                          FEATURES_FILE,
                          MODEL_FILES,
                          SUMS_FILE,
                          SVM_FILE,
                          ModelIntegrityError,
                          model_dir,
                          set_model_dir,
                          verify_models,
)
from .seg import mask_from_seg

__all__ = [
    "BACKGROUND", "BODY", "DETAIL", "ROI_BLOCK", "CELL", "CLASS_BLOCK", "FEATURE_CHANNELS", "ModelIntegrityError",
    "auto_importance_map", "block_features", "cell_features", "denoise", "mask_from_seg", "model_dir",
    "set_model_dir", "verify_models", "FEATURES_FILE", "SVM_FILE", "DENOISER_FILE", "SUMS_FILE", "MODEL_FILES",
]
