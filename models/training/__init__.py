"""The training recipe of the ROI models and the denoiser (not installed).

Run from the repository root: ``python -m models.training.train`` (see train.py).
``corpus`` is its corpus and classical labels; ``benchmarks/bench_roi.py`` reuses
both to measure the shipped models.
"""
