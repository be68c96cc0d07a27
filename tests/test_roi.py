"""codec_core.roi: model integrity, the automatic map on real and odd images, DICOM SEG masks."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from codec_core import roi
from codec_core.roi import classify, features, model_files

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def model_copy(tmp_path: Path):
    """A private copy of the bundled models that the loader is pointed at."""
    for name in (*roi.MODEL_FILES, roi.SUMS_FILE):
        shutil.copy(roi.model_dir() / name, tmp_path / name)
    roi.set_model_dir(tmp_path)
    yield tmp_path
    roi.set_model_dir(None)


def _ct_image() -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("693_UNCR.dcm")).pixel_array


def test_bundled_models_pass_their_checksums():
    sums = roi.verify_models()
    assert set(sums) == set(roi.MODEL_FILES)


@pytest.mark.parametrize("name", roi.MODEL_FILES)
def test_altered_model_byte_raises_integrity_error_naming_the_file(model_copy: Path, name: str):
    data = bytearray((model_copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (model_copy / name).write_bytes(bytes(data))
    call = roi.denoise if name == roi.DENOISER_FILE else roi.auto_importance_map
    with pytest.raises(roi.ModelIntegrityError, match=name):
        call(np.zeros((32, 32), np.uint8) + np.arange(32, dtype=np.uint8))


def test_classifier_saved_by_another_scikit_learn_loads_without_a_warning():
    # scikit-learn warns (InconsistentVersionWarning) on every estimator unpickled under
    # another version than the one that saved it: the shipped pickle, relabelled as saved
    # by another version, loads with no warning at all and classifies as before.
    import pickle
    import warnings

    path, data = model_files.verified_bytes(model_files.SVM_FILE)
    saved = model_files._saved_version(data).encode()  # (the version that saved it)
    other = b"0." + b"9" * (len(saved) - 2)  # (no scikit-learn release: never the running one)
    assert data.count(saved) == 1 and len(other) == len(saved)
    relabelled = data.replace(saved, other)
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        pickle.loads(relabelled)
    assert any(type(w.message).__name__ == "InconsistentVersionWarning" for w in raw)  # (what users saw)
    probe = np.random.default_rng(1).normal(size=(200, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = model_files.load_svm(path, relabelled)
    assert np.array_equal(model.predict(probe), model_files.load_svm(path, data).predict(probe))


def test_classifier_that_does_not_classify_as_its_arrays_say_is_refused():
    # What a scikit-learn that reads the saved state otherwise would give: a scaler that
    # keeps its mean but no longer subtracts it.
    import pickle

    path, data = model_files.verified_bytes(model_files.SVM_FILE)
    model = pickle.loads(data)
    model.steps[0][1].with_mean = False
    with pytest.raises(RuntimeError, match="does not load as the classifier it stores"):
        model_files.load_svm(path, pickle.dumps(model))


@pytest.mark.parametrize("name", [*roi.MODEL_FILES, roi.SUMS_FILE])
def test_missing_model_file_raises_integrity_error_naming_the_file(model_copy: Path, name: str):
    (model_copy / name).unlink()
    with pytest.raises(roi.ModelIntegrityError, match=name):
        roi.verify_models()


def test_map_on_ct_has_all_three_classes_and_background_in_corners():
    img = _ct_image()
    m = roi.auto_importance_map(img)
    k = 16 // roi.ROI_BLOCK
    assert m.shape == (32 * k, 32 * k) and m.dtype == np.uint8
    assert set(np.unique(m)) == {roi.BACKGROUND, roi.BODY, roi.DETAIL}
    assert m[0, 0] == m[0, -1] == m[-1, 0] == m[-1, -1] == roi.BACKGROUND
    assert (m[12 * k:20 * k, 12 * k:20 * k] != roi.BACKGROUND).all()   # the head's centre


def test_map_is_deterministic_and_ignores_the_storage_offset():
    img = _ct_image()
    shifted = (img.astype(np.int32) + 2000).astype(np.uint16)
    assert np.array_equal(roi.auto_importance_map(img), roi.auto_importance_map(img))
    agree = (roi.auto_importance_map(img) == roi.auto_importance_map(shifted)).mean()
    assert agree > 0.97


@pytest.mark.parametrize("shape, dtype", [
    ((1, 1), np.uint8), ((3, 5), np.int16), ((17, 33), np.uint16), ((1, 300), np.int8),
    ((300,), np.uint8), ((64, 48, 3), np.uint8), ((31, 31, 3), np.uint16), ((0, 5), np.uint8),
])
def test_map_shape_on_odd_inputs(shape, dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    img = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    m = roi.auto_importance_map(img)
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape[:2]
    assert m.shape == (-(-rows // roi.ROI_BLOCK), -(-cols // roi.ROI_BLOCK))
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1, 2}


def test_one_value_and_one_bit_images():
    assert (roi.auto_importance_map(np.full((40, 40), 7, np.uint16)) == roi.BODY).all()
    bits = np.zeros((64, 64), np.uint8)
    bits[16:48, 16:48] = 1
    m = roi.auto_importance_map(bits, bits_stored=1)
    k = 16 // roi.ROI_BLOCK
    assert m.shape == (4 * k, 4 * k) and (m[k:3 * k, k:3 * k] != roi.BACKGROUND).all()


def test_cell_features_do_not_depend_on_gain_or_offset():
    rng = np.random.default_rng(2)
    x = np.clip(rng.normal(100, 5, (64, 80)), 0, None)
    x[16:48, 20:60] += 400 + rng.normal(0, 40, (32, 40))
    f = roi.cell_features(x)
    assert f.shape == (1, roi.FEATURE_CHANNELS, 16, 20) and f.dtype == np.float32
    assert np.allclose(f, roi.cell_features(3.0 * x - 500.0), atol=1e-4)


def test_background_must_sit_at_its_border_level():
    # A bright flat patch the classifier called background, inside dark background
    # that reaches the border, is something: the post-rules make it BODY.
    labels = np.zeros((6, 6), np.uint8)
    level = np.zeros((6, 6))
    level[2:4, 2:4] = 1.0
    level[0, :] = 0.3          # within tolerance of the border level: stays background
    out = classify.post_rules(labels.copy(), None, np.zeros((96, 96), np.uint8), level, np.zeros((6, 6), bool))
    assert (out[2:4, 2:4] == roi.BODY).all()
    assert (out[0] == roi.BACKGROUND).all() and out[5, 5] == roi.BACKGROUND


def test_air_above_the_scanner_padding_stays_background():
    # A padded CT: -2000 padding (one value, the image minimum) around the
    # reconstruction circle, air at -1000 inside it, far above the padding's level.
    # The field of view ends at the padding, so the air's reference level is the
    # air next to the padding, not the padding: the air stays background, a bright
    # patch in it becomes BODY, and the padding is never made BODY.
    labels = np.zeros((8, 8), np.uint8)
    padding = np.zeros((8, 8), bool)
    padding[:2], padding[-2:], padding[:, :2], padding[:, -2:] = True, True, True, True
    level = np.where(padding, 0.0, 0.5)
    level[3:5, 3:5] = 1.0
    image = np.zeros((128, 128), np.int16)
    out = classify.post_rules(labels.copy(), None, image, level, padding)   # padding: one value
    assert (out[3:5, 3:5] == roi.BODY).all()
    assert (out[padding] == roi.BACKGROUND).all() and out[2, 2] == roi.BACKGROUND and out[5, 6] == roi.BACKGROUND
    # Without the padding the border level is the padding's: the air would be BODY.
    old = classify.post_rules(labels.copy(), None, image, level, np.zeros((8, 8), bool))
    assert (old[2:6, 2:6] == roi.BODY).all()


def test_background_grows_through_air_only():
    # Noisy air everywhere, tissue in blocks 2..5, an air pocket (block 4, 4) enclosed
    # by tissue. The classifier called only the top block row background: growth takes
    # every block of air connected to it, never a block with a tissue cell, never the
    # enclosed pocket.
    rng = np.random.default_rng(7)
    img = rng.normal(100, 5, (128, 128))
    img[32:96, 32:96] = rng.normal(2000, 40, (64, 64))   # CT-like: air noise small against the range
    img[64:80, 64:80] = rng.normal(100, 5, (16, 16))
    labels = np.full((8, 8), roi.BODY, np.uint8)
    labels[0] = roi.BACKGROUND
    labels[3, 3] = roi.DETAIL
    out = classify.grow_background(labels.copy(), features.cell_stats(img.astype(np.float32)), None, img)
    tissue = np.zeros((8, 8), bool)
    tissue[2:6, 2:6] = True
    assert (out[~tissue] == roi.BACKGROUND).all()
    assert (out[tissue] != roi.BACKGROUND).all() and out[3, 3] == roi.DETAIL and out[4, 4] == roi.BODY


def test_only_the_largest_background_regions_grow():
    # 70 background regions, each over its own column of air (tissue between them):
    # the work is bounded, so only the GROW_MAX_REGIONS largest grow.
    rng = np.random.default_rng(8)
    n = 70
    img = rng.normal(100, 5, (64, 2 * n * 16))
    for c in range(1, 2 * n, 2):
        img[:, c * 16:(c + 1) * 16] = rng.normal(2000, 40, (64, 16))
    labels = np.full((4, 2 * n), roi.BODY, np.uint8)
    labels[0, ::2] = roi.BACKGROUND
    labels[1, :12:2] = roi.BACKGROUND            # the first six regions are larger
    out = classify.grow_background(labels.copy(), features.cell_stats(img.astype(np.float32)), None, img)
    grown = (out[3, ::2] == roi.BACKGROUND)
    assert classify.GROW_MAX_REGIONS < n and grown.sum() == classify.GROW_MAX_REGIONS and grown[:6].all()
    assert (out[:, 1::2] == roi.BODY).all()


def test_one_value_blocks():
    rng = np.random.default_rng(5)
    img = np.full((128, 128), -2000, np.int16)
    yy, xx = np.mgrid[:128, :128]
    inside = (yy - 64) ** 2 + (xx - 64) ** 2 < 50 ** 2
    img[inside] = (-1000 + rng.normal(0, 20, inside.sum())).astype(np.int16)
    img[48:80, 48:80] = 40                      # one value inside: four blocks
    flat = classify.one_value_blocks(features.cell_stats(img.astype(np.float32)), (8, 8))
    outside = (~inside).reshape(8, 16, 8, 16).all(axis=(1, 3))
    assert outside.sum() >= 4 and flat[3:5, 3:5].all()
    assert flat.tolist() == (outside | np.pad(np.ones((2, 2), bool), 3)).tolist()


def test_a_one_value_patch_next_to_padding_is_not_the_air_level():
    # 1-bit style: a bright one-value square inside one-value padding. It is not air
    # (air has noise), so the reference stays the padding's level: the square is BODY.
    labels = np.zeros((6, 6), np.uint8)
    level = np.zeros((6, 6))
    level[2:4, 2:4] = 1.0
    out = classify.post_rules(labels.copy(), None, np.zeros((96, 96), np.uint8), level, np.ones((6, 6), bool))
    assert (out[2:4, 2:4] == roi.BODY).all() and (out[0] == roi.BACKGROUND).all()


def test_air_border_added_to_a_ct_is_background():
    # Was an expected failure (the map kept such a border as BODY) until background
    # growth: the noisy border is air at one level and noise, connected to the edge.
    img = _ct_image()
    rng = np.random.default_rng(3)
    air = np.full((img.shape[0] + 128, img.shape[1] + 128), int(np.percentile(img, 1)), np.int32)
    air = air + rng.normal(0, 5, air.shape).astype(np.int32)
    air[64:-64, 64:-64] = img
    m = roi.auto_importance_map(air.astype(img.dtype))
    k = 16 // roi.ROI_BLOCK
    assert (m[:2 * k] == roi.BACKGROUND).mean() > 0.9 and (m[-2 * k:] == roi.BACKGROUND).mean() > 0.9
    assert (m[16 * k:24 * k, 16 * k:24 * k] != roi.BACKGROUND).all()   # the head's centre


@pytest.mark.parametrize("name", ["693_UNCR.dcm", "US1_UNCR.dcm", "MR2_UNCR.dcm"])
def test_the_safety_calibration_sees_the_map_the_codec_makes(name, monkeypatch):
    # models/training/train.py chooses the safety shift from maps it rebuilds out of SVM
    # scores; with the shipped SVM (its shift already in the intercept) and no further
    # shift, that map must be the one auto_importance_map returns, post-rules, growth and
    # refinement included, or the calibrated safety would not be the codec's.
    import pydicom  # noqa: F401
    # the training recipe is not installed: it is imported from the checkout, behind
    # the installed packages, as `python -m models.training.train` in the checkout does
    monkeypatch.setattr(sys, "path", [*sys.path, str(REPO)])
    from models.training import corpus, train

    monkeypatch.setattr(train, "VAL_AUG", 0)
    src = next(s for s in corpus.SOURCES if s.name == name)
    img, ds = corpus.load_image(src, 0)
    sample = corpus.Sample(src, 0, img, corpus.classical_labels(img, ds), "")
    roi.set_model_dir(REPO / "models")
    try:
        svm = model_files.cached(model_files.SVM_FILE, model_files.load_svm)
        (case,) = train.oof_cases(svm, [sample], np.random.default_rng(0))
        assert np.array_equal(train._shifted_map(case, 0.0), roi.auto_importance_map(img))
    finally:
        roi.set_model_dir(None)


def test_shipped_heldout_metrics_meet_the_safety_target():
    import json

    metrics = json.loads((REPO / "models" / "heldout_metrics.json").read_text())
    assert metrics["heldout"]["overall"]["body_kept"] >= 0.995
    assert metrics["calibration"]["chosen"]["body_lost"] <= 0.002


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint32),
                                 np.zeros((2, 4, 4), np.uint8), np.zeros((), np.uint8)])
def test_unsupported_input_raises_value_error(bad):
    with pytest.raises(ValueError):
        roi.auto_importance_map(bad)


def test_values_outside_bits_stored_raise_value_error():
    with pytest.raises(ValueError, match="bits stored"):
        roi.auto_importance_map(np.full((8, 8), 5000, np.uint16), bits_stored=12)


def test_denoise_keeps_shape_dtype_and_range_and_reduces_noise():
    rng = np.random.default_rng(1)
    clean = np.tile(np.linspace(1000, 3000, 96), (80, 1))
    noisy = np.clip(clean + rng.normal(0, 40, clean.shape), 0, 4095).astype(np.uint16)
    out = roi.denoise(noisy, bits_stored=12)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype
    assert out.min() >= noisy.min() and out.max() <= noisy.max()
    assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean()
    for odd in (np.zeros((1, 1), np.int8), np.arange(15, dtype=np.int16).reshape(3, 5),
                np.zeros((9, 9, 3), np.uint8) + 4):
        assert roi.denoise(odd).shape == odd.shape


def test_mask_from_seg_on_liver():
    import pydicom
    from pydicom.data import get_testdata_file

    seg = pydicom.dcmread(get_testdata_file("liver.dcm"))
    volume = roi.mask_from_seg(seg, (3, 512, 512))
    assert volume.shape == (3, 512, 512) and volume.dtype == bool
    assert volume.sum() == int((seg.pixel_array > 0).sum())
    single = roi.mask_from_seg(seg, (512, 512))
    assert single.shape == (512, 512) and np.array_equal(single, volume.any(axis=0))
    with pytest.raises(ValueError, match=r"512x512.*\(256, 256\)"):
        roi.mask_from_seg(seg, (256, 256))
    with pytest.raises(ValueError, match="frames"):
        roi.mask_from_seg(seg, (5, 512, 512))
    with pytest.raises(ValueError, match="Segmentation"):
        roi.mask_from_seg(pydicom.dcmread(get_testdata_file("CT_small.dcm")), (128, 128))


def _run(code: str) -> subprocess.CompletedProcess[str]:
    # cwd outside the checkout: ``-c`` puts the cwd first on sys.path, and the tests use
    # the installed package
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=120)


def test_importing_codec_core_does_not_import_onnxruntime_or_sklearn():
    proc = _run("""
        import sys, codec_core, codec_core.roi
        heavy = [m for m in ("onnxruntime", "sklearn", "torch") if m in sys.modules]
        assert not heavy, heavy
    """)
    assert proc.returncode == 0, proc.stderr


def test_decoding_an_auto_roi_stream_needs_neither_onnxruntime_nor_sklearn(tmp_path: Path, monkeypatch):
    import codec_core as hlc

    img = _ct_image()
    data = hlc.encode(img, mode="lossy", psnr=40, roi="auto", roi_max_error=0,
                      whole_image_if_smaller=False)  # a stream with its ROI layer
    assert hlc.info(data)["roi"]
    (tmp_path / "s.hlc").write_bytes(data)
    proc = _run(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("onnxruntime", "sklearn"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np, codec_core as hlc
        out = hlc.decode(open({str(tmp_path / 's.hlc')!r}, "rb").read())
        assert out.shape == {img.shape} and out.dtype == np.{img.dtype}
    """)
    assert proc.returncode == 0, proc.stderr


def test_auto_roi_from_the_installed_wheel(wheel_run):
    proc = wheel_run("""
        import numpy as np, pydicom, codec_core as hlc, codec_core.roi as roi
        from pydicom.data import get_testdata_file
        assert "site-packages" in str(roi.model_dir()), roi.model_dir()
        img = pydicom.dcmread(get_testdata_file("693_UNCR.dcm")).pixel_array
        m = roi.auto_importance_map(img)
        k = 16 // roi.ROI_BLOCK
        assert m.shape == (32 * k, 32 * k) and set(np.unique(m)) == {0, 1, 2}
        if hasattr(hlc, "encode"):
            out = hlc.decode(hlc.encode(img, mode="lossy", psnr=40, roi="auto", roi_max_error=0))
            assert out.shape == img.shape
        print("ok")
    """)
    assert "ok" in proc.stdout


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8])
def test_the_exterior_air_test_is_the_float_one(dtype):
    """roi.exterior._near (in bands of rows, no float64 copy of the frame) gives the
    whole-frame float64 expression's mask, to the pixel."""
    from codec_core.roi.exterior import _near

    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    frame = rng.integers(info.min, int(info.max) + 1, (150, 77)).astype(dtype)
    for value, within in ((float(frame[3, 4]), 0.0), (float(np.median(frame)), 100.5), (-3.5, 1e4), (12.25, 7.75)):
        want = np.abs(frame.astype(np.float64) - value) <= within
        assert np.array_equal(_near(frame, value, within), want)
