"""Diagnostic-importance maps: automatic (CNN features + SVM), DICOM SEG masks, denoising.

The automatic map labels each ``ROI_BLOCK`` × ``ROI_BLOCK`` cell of an image as
``BACKGROUND`` (air, outside the patient, padding, collimator shadow), ``BODY``
(soft tissue) or ``DETAIL`` (edges, bone, fine structure, burned-in text).

How it works (see ``models/MODEL_CARD.md``):

1. The image is reduced to one channel (colour: mean of the channels), padded by
   edge replication to a multiple of ``CLASS_BLOCK`` and summarised per 4 × 4 cell by
   the mean and the standard deviation (three channels, :func:`cell_features`),
   normalised by the image itself, so that bit depth, sign and window do not matter.
2. A small CNN (``hlc_models/roi_features.onnx``) turns these channels into a
   feature vector per block.
3. A scikit-learn SVM (``hlc_models/roi_svm.pkl``) classifies each block.
4. Safety post-processing: background blocks far from the level of their
   region's edge blocks (at the image border or the scanner's padding) become ``BODY``; a background region that does not touch
   the image border is anatomy (lungs, bowel gas, cardiac chambers) and becomes
   ``BODY``; blocks with colour (Doppler, annotations) are never background.
5. Background growth: each background region takes in the BODY blocks connected
   to it whose every cell sits at the level and noise of its air (air the
   classifier left as body at its safety shift).
6. Edge refinement: the classifier's ``CLASS_BLOCK`` blocks are split into
   ``ROI_BLOCK`` cells; cells of BODY blocks that border BACKGROUND and sit at the
   level and noise of that background (and not next to a cell that does not) become
   ``BACKGROUND``, so the map follows the body outline to 4 pixels.

The model files are verified against ``SHA256SUMS`` before they are loaded; a missing
or altered file raises :class:`ModelIntegrityError`. onnxruntime, scikit-learn and
scipy are imported only when a model is used, never at ``import codec_core``.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BACKGROUND", "BODY", "DETAIL", "ROI_BLOCK", "CELL", "ModelIntegrityError",
    "auto_importance_map", "denoise", "mask_from_seg", "model_dir", "set_model_dir",
    "verify_models",
]

BACKGROUND, BODY, DETAIL = 0, 1, 2
#: Side of the cell the CNN sees as one input pixel (CLASS_BLOCK / CELL cells per block).
CELL: int = 4
#: Block the classifier labels (CNN features + SVM): 16 × 16 pixels.
CLASS_BLOCK: int = 16
#: Block size of the automatic map in pixels (one CELL). The classifier works on
#: CLASS_BLOCK blocks; BODY blocks bordering BACKGROUND are then refined cell by cell
#: (cells at the level and noise of the neighbouring background become BACKGROUND).
#: The map is stored zlib-compressed in the stream: well under 1% of it.
ROI_BLOCK: int = CELL
#: Channels of the CNN input computed by :func:`cell_features`.
FEATURE_CHANNELS: int = 3

FEATURES_FILE = "roi_features.onnx"
SVM_FILE = "roi_svm.pkl"
DENOISER_FILE = "denoiser.onnx"
SUMS_FILE = "SHA256SUMS"
MODEL_FILES = (FEATURES_FILE, SVM_FILE, DENOISER_FILE)

_SUPPORTED_DTYPES = (np.uint8, np.int8, np.uint16, np.int16)


class ModelIntegrityError(RuntimeError):
    """A bundled model file is missing or does not match its SHA-256 in SHA256SUMS."""


# --------------------------------------------------------------------------- locating
_model_dir_override: Path | None = None
_lock = threading.Lock()
_cache: dict[tuple[str, str], Any] = {}


def set_model_dir(path: str | os.PathLike[str] | None) -> None:
    """Load models from ``path`` instead of the installed ``hlc_models`` package.

    ``None`` restores the default. Clears the cache of loaded models. Meant for tests
    and for sites that ship their own validated models.
    """
    global _model_dir_override
    with _lock:
        _model_dir_override = None if path is None else Path(path)
        _cache.clear()


def model_dir() -> Path:
    """The directory the models are loaded from.

    Order: :func:`set_model_dir`, the ``HLC_MODEL_DIR`` environment variable, the
    installed ``hlc_models`` package, then ``models/`` beside ``codec_core/`` in a
    source tree.
    """
    if _model_dir_override is not None:
        return _model_dir_override
    env = os.environ.get("HLC_MODEL_DIR")
    if env:
        return Path(env)
    try:
        from importlib.resources import files

        candidate = Path(str(files("hlc_models")))
        if (candidate / SUMS_FILE).is_file():
            return candidate
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "models"


def _expected_sums(directory: Path) -> dict[str, str]:
    path = directory / SUMS_FILE
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelIntegrityError(f"model checksum file {path} is missing or unreadable: {exc}") from exc
    sums: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _verified_bytes(name: str) -> tuple[Path, bytes]:
    """Read a model file and check it against SHA256SUMS; raise ModelIntegrityError."""
    directory = model_dir()
    sums = _expected_sums(directory)
    path = directory / name
    if name not in sums:
        raise ModelIntegrityError(f"model file {name} has no entry in {directory / SUMS_FILE}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"model file {path} is missing or unreadable: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sums[name]:
        raise ModelIntegrityError(
            f"model file {path} fails its SHA-256 check (expected {sums[name]}, got {digest}); "
            "reinstall hlc-codec or run models/train.py")
    return path, data


def verify_models() -> dict[str, str]:
    """Check every bundled model file; return {name: sha256}. Raises ModelIntegrityError."""
    return {name: hashlib.sha256(_verified_bytes(name)[1]).hexdigest() for name in MODEL_FILES}


def _cached(name: str, loader: Any) -> Any:
    key = (str(model_dir()), name)
    with _lock:
        if key in _cache:
            return _cache[key]
    value = loader(*_verified_bytes(name))
    with _lock:
        return _cache.setdefault(key, value)


def _onnx_session(path: Path, data: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def _svm(path: Path, data: bytes) -> Any:
    import pickle

    # The bytes were checked against SHA256SUMS just above: this is the only pickle
    # HLC ever loads, and only after its hash matched.
    return pickle.loads(data)  # noqa: S301


# ------------------------------------------------------------------------ input prep
def _as_luma(image: np.ndarray, bits_stored: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate ``image``; return a 2-D float32 luma image and a colour spread (or None)."""
    arr = np.asarray(image)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.type not in _SUPPORTED_DTYPES:
        raise ValueError(f"image dtype {arr.dtype} is not supported; use uint8, int8, uint16 or int16")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    colour = arr.ndim == 3 and arr.shape[-1] == 3
    if not (arr.ndim == 2 or colour):
        raise ValueError(f"image of shape {arr.shape} is not supported: pass one frame as "
                         "(rows, cols) or (rows, cols, 3)")
    if bits_stored is not None:
        bits = int(bits_stored)
        limit = arr.dtype.itemsize * 8
        if not 1 <= bits <= limit:
            raise ValueError(f"bits_stored={bits_stored} is outside 1..{limit} for dtype {arr.dtype}")
        if arr.size:
            signed = arr.dtype.kind == "i"
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            if int(arr.min()) < lo or int(arr.max()) > hi:
                raise ValueError(f"image values lie outside the {bits} bits stored "
                                 f"({lo}..{hi}) of dtype {arr.dtype}")
    if colour:
        chans = arr.astype(np.float32)
        luma = chans.mean(axis=-1)
        spread = chans.max(axis=-1) - chans.min(axis=-1)
        return luma, spread
    return arr.astype(np.float32), None


def _pad_to_blocks(x: np.ndarray, block: int = CLASS_BLOCK) -> np.ndarray:
    rows, cols = x.shape
    pr, pc = (-rows) % block, (-cols) % block
    if pr or pc:
        x = np.pad(x, ((0, pr), (0, pc)), mode="edge")
    return x


def cell_features(luma: np.ndarray) -> np.ndarray:
    """CNN input (1, FEATURE_CHANNELS, rows/CELL, cols/CELL) from a 2-D float image.

    Channel 0: cell mean, robustly normalised to the image's 1st–99th percentile.
    Channel 1: log of the cell standard deviation relative to the same range.
    Channel 2: log of the cell standard deviation relative to the image's own noise
    floor (10th percentile of the cell standard deviations): air is at the floor
    whatever the modality, bit depth or window; tissue texture lies above it.
    Shared by training (models/train.py) and inference, so that both see the same input.
    """
    return _cell_features(*_cell_stats(luma))


def _cell_stats(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Mean and standard deviation per CELL × CELL cell (image padded to CLASS_BLOCK),
    and the robust level range (1st percentile, 99th − 1st) of the cell means."""
    x = _pad_to_blocks(np.asarray(luma, dtype=np.float32))
    rows, cols = x.shape
    cells = x.reshape(rows // CELL, CELL, cols // CELL, CELL)
    mean = cells.mean(axis=(1, 3), dtype=np.float32)
    var = (cells * cells).mean(axis=(1, 3), dtype=np.float32) - mean * mean
    std = np.sqrt(np.maximum(var, 0.0))
    flat = mean.ravel()
    if flat.size > 65536:  # percentiles of a regular subsample: same result, far cheaper
        flat = flat[:: flat.size // 65536]
    lo, hi = np.percentile(flat, [1.0, 99.0])
    span = float(hi - lo)
    if not np.isfinite(span) or span <= 0:
        span = float(flat.max() - flat.min()) or 1.0
    return mean, std, float(lo), span


def _cell_features(mean: np.ndarray, std: np.ndarray, lo: float, span: float) -> np.ndarray:
    norm_mean = np.clip((mean - lo) / span, -1.0, 2.0)
    norm_std = np.log10(std / span + 1e-3) / 3.0 + 1.0   # 0 for flat, 1 at std == span
    sflat = std.ravel()
    if sflat.size > 65536:
        sflat = sflat[:: sflat.size // 65536]
    eps = 1e-3 * span
    floor = float(np.percentile(sflat, 10.0)) + eps
    rel_std = np.clip(np.log10((std + eps) / floor) / 2.0, -1.0, 2.0)
    out = np.stack([norm_mean, norm_std, rel_std])[np.newaxis].astype(np.float32)
    return out


# --------------------------------------------------------------------------- the map
def _border_connected(background: np.ndarray) -> np.ndarray:
    """Keep only background regions that touch the image border (4-connectivity)."""
    from scipy import ndimage

    labels, count = ndimage.label(background)
    if count == 0:
        return background
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(edge)] = True
    keep[0] = False
    return keep[labels]


def block_features(luma: np.ndarray) -> np.ndarray:
    """CNN features per block of a 2-D float image: (blocks_r * blocks_c, n_features)."""
    return _run_cnn(cell_features(luma))


def _run_cnn(cells: np.ndarray) -> np.ndarray:
    session = _cached(FEATURES_FILE, _onnx_session)
    (feats,) = session.run(None, {session.get_inputs()[0].name: cells})
    return feats[0].reshape(feats.shape[1], -1).T


def _block_level(cells: np.ndarray) -> np.ndarray:
    """Mean normalised level per block (channel 0 of cell_features averaged per block)."""
    m = cells[0, 0]
    k = CLASS_BLOCK // CELL
    return m.reshape(m.shape[0] // k, k, m.shape[1] // k, k).mean(axis=(1, 3))


#: A background block whose level differs from the border level of its background
#: region by more than this (fraction of the image's 1st–99th percentile range) is body.
LEVEL_TOLERANCE = 0.4


def _one_value_blocks(stats: tuple, grid: tuple[int, int]) -> np.ndarray:
    """Blocks whose pixels all have one value (every cell flat, all at the same mean)."""
    mean, std = stats[0], stats[1]
    k = CLASS_BLOCK // CELL
    m = mean.reshape(grid[0], k, grid[1], k)
    return (std.reshape(grid[0], k, grid[1], k).max(axis=(1, 3)) == 0) & (m.max(axis=(1, 3)) == m.min(axis=(1, 3)))


def _off_level(background: np.ndarray, level: np.ndarray, one_value: np.ndarray) -> np.ndarray:
    """Background blocks not at the level of their region's edge blocks.

    The field of view ends at the image border and at the scanner's padding: blocks
    of one value at the image's lowest level (CT's -2000 outside the reconstruction
    circle). The reference is the median level of the region's edge blocks that are
    not of one value (air has noise; a one-value block next to the padding says
    nothing about the level of the air), else of its border blocks as they are. So
    a padded CT's air, far above the padding, is still air. The padding itself is
    never made BODY by this rule (it holds no anatomy, and without it the air would
    not reach the border)."""
    from scipy import ndimage

    labels, count = ndimage.label(background)
    if count == 0:
        return np.zeros_like(background)
    padding = one_value & (level <= level.min())
    border = np.zeros_like(background)
    border[0], border[-1], border[:, 0], border[:, -1] = True, True, True, True
    edge = (border | ndimage.binary_dilation(padding)) & ~one_value
    ref = np.full(count + 1, np.nan)
    for k in range(1, count + 1):
        region = labels == k
        at_edge = region & edge
        if not at_edge.any():
            at_edge = region & border
        if at_edge.any():
            ref[k] = float(np.median(level[at_edge]))
    diff = np.abs(level - ref[labels])
    return background & (diff > LEVEL_TOLERANCE) & ~padding


def auto_importance_map(image: np.ndarray, *, bits_stored: int | None = None) -> np.ndarray:
    """Classify each ROI_BLOCK × ROI_BLOCK block as BACKGROUND, BODY or DETAIL.

    The classifier labels CLASS_BLOCK × CLASS_BLOCK blocks; the map returned is at
    ROI_BLOCK (= CELL) resolution, refined at the body edge (see :func:`_refine`).

    ``image`` is 2-D (rows, cols) or colour (rows, cols, 3) of dtype uint8, int8,
    uint16 or int16 (signed data natively; a 1-D array is one row). Returns a uint8
    map of shape (ceil(rows / ROI_BLOCK), ceil(cols / ROI_BLOCK)).
    Raises ValueError for unsupported input and ModelIntegrityError when a model file
    is missing or altered (also for a one-value image, so that a broken install is
    never silent).
    """
    luma, spread = _as_luma(image, bits_stored)
    rows, cols = luma.shape
    out_grid = (-(-rows // ROI_BLOCK), -(-cols // ROI_BLOCK))
    if rows == 0 or cols == 0:
        return np.zeros(out_grid, dtype=np.uint8)
    grid = (-(-rows // CLASS_BLOCK), -(-cols // CLASS_BLOCK))
    stats = _cell_stats(luma)
    cells = _cell_features(*stats)
    feats = _run_cnn(cells)
    svm = _cached(SVM_FILE, _svm)
    if float(luma.max()) == float(luma.min()):
        # One value everywhere: nothing to tell apart; code it as body (safe side).
        return np.full(out_grid, BODY, dtype=np.uint8)
    labels = np.asarray(svm.predict(feats), dtype=np.uint8).reshape(grid)
    return _finish(labels, stats, spread, image, _block_level(cells),
                   _one_value_blocks(stats, grid))[: out_grid[0], : out_grid[1]]


def _finish(labels: np.ndarray, stats: tuple, spread: np.ndarray | None, image: np.ndarray,
            level: np.ndarray, one_value: np.ndarray) -> np.ndarray:
    """The cell map from the classifier's block labels: safety rules, background
    growth, edge refinement (shared with models/train.py, which calibrates the
    safety shift through exactly this)."""
    labels = _post_rules(labels, spread, image, level, one_value)
    labels = _grow_background(labels, stats, spread, image)
    return _refine(labels, stats, spread, image)


#: Background growth: a BODY block joins a neighbouring background region when every
#: cell of it is within GROW_K × (the region's median cell standard deviation) +
#: REFINE_EPS × (level range) of the region's median cell level, with a standard
#: deviation no larger than that (the air of the region: its noisy cells; padding of
#: one value says nothing about the air's level or noise).
GROW_K = 1.0
#: Regions with fewer noisy cells than this have no reliable air statistics: no growth.
GROW_MIN_CELLS = 16
#: At most this many background regions grow (the largest): each costs a pass over the
#: map, and every region left after the post-rules touches the image border (real
#: images have a few; the calibration cases at most 18), so only contrived input has more.
GROW_MAX_REGIONS = 64


def _grow_background(labels: np.ndarray, stats: tuple, spread: np.ndarray | None,
                     image: np.ndarray) -> np.ndarray:
    """Background regions take in the BODY blocks, connected to them through such
    blocks, that are all air at the region's own level and noise: air the classifier
    left as body at its safety shift (around the head in a padded CT, beside the
    table), however far from the first background blocks."""
    from scipy import ndimage

    background = labels == BACKGROUND
    if not background.any():
        return labels
    mean, std, _, span = stats
    k = CLASS_BLOCK // CELL
    g0, g1 = labels.shape
    cell_mean = mean.reshape(g0, k, g1, k)
    cell_std = std.reshape(g0, k, g1, k)
    body = labels == BODY
    if spread is not None:  # colour is never background
        body &= ~(_block_max(spread, labels.shape) > 24.0 * _value_scale(image))
    regions, count = ndimage.label(background)
    boxes = ndimage.find_objects(regions)
    if count > GROW_MAX_REGIONS:  # the largest ones, in label order (bounded work)
        sizes = np.bincount(regions.ravel(), minlength=count + 1)[1:]
        chosen = np.sort(np.argsort(-sizes, kind="stable")[:GROW_MAX_REGIONS]) + 1
    else:
        chosen = np.arange(1, count + 1)
    for r in chosen:
        box = boxes[r - 1]
        inside = regions[box] == r
        m = cell_mean[box[0], :, box[1], :].transpose(0, 2, 1, 3)[inside].ravel()
        sd = cell_std[box[0], :, box[1], :].transpose(0, 2, 1, 3)[inside].ravel()
        region = regions == r
        noisy = sd > 0
        if noisy.sum() < GROW_MIN_CELLS:
            continue
        ref_mean, ref_std = float(np.median(m[noisy])), float(np.median(sd[noisy]))
        tol = GROW_K * ref_std + REFINE_EPS * span
        air = ((np.abs(cell_mean - ref_mean) <= tol) & (cell_std <= tol)).all(axis=(1, 3)) & body
        grown = ndimage.binary_propagation(region, mask=region | air) & air
        labels[grown] = BACKGROUND
        body &= ~grown
    return labels


#: Edge refinement: a cell of a BODY block next to BACKGROUND becomes BACKGROUND when
#: its mean and standard deviation are within REFINE_K × (the mean cell standard
#: deviation of the nearby background) + REFINE_EPS × (level range) of that
#: background, it is reached from the background through such cells (at most one
#: block deep), and none of its 8 neighbours is a cell that fails the test.
REFINE_K = 1.5
REFINE_EPS = 0.005
#: Window (cells) of the nearby background statistics.
REFINE_WINDOW = 9


def _refine(labels: np.ndarray, stats: tuple, spread: np.ndarray | None,
            image: np.ndarray) -> np.ndarray:
    """Cell map (CELL pixels per entry) from the CLASS_BLOCK map: BODY blocks
    bordering BACKGROUND give up the cells that sit at the background's level."""
    from scipy import ndimage

    k = CLASS_BLOCK // CELL
    fine = np.kron(labels, np.ones((k, k), np.uint8))
    background = labels == BACKGROUND
    if not background.any():
        return fine
    near = ndimage.binary_dilation(background, structure=np.ones((3, 3), bool)) & (labels == BODY)
    if not near.any():
        return fine
    mean, std, _, span = stats
    bg_cells = fine == BACKGROUND
    # Statistics of the background cells near each cell (means over the window).
    weight = ndimage.uniform_filter(bg_cells.astype(np.float32), REFINE_WINDOW, mode="constant")
    safe = np.maximum(weight, 1e-6)
    ref_mean = ndimage.uniform_filter(np.where(bg_cells, mean, 0.0).astype(np.float32), REFINE_WINDOW,
                                      mode="constant") / safe
    ref_std = ndimage.uniform_filter(np.where(bg_cells, std, 0.0).astype(np.float32), REFINE_WINDOW,
                                     mode="constant") / safe
    tol = REFINE_K * ref_std + REFINE_EPS * span
    at_level = (weight > 1e-3) & (std <= tol) & (np.abs(mean - ref_mean) <= tol)
    candidate = np.kron(near, np.ones((k, k), bool)) & at_level
    reached = bg_cells.copy()
    for _ in range(k):
        new = candidate & ~reached & ndimage.binary_dilation(reached)
        if not new.any():
            break
        reached |= new
    grown = reached & ~bg_cells
    failing = ~(reached | candidate)
    grown &= ~ndimage.binary_dilation(failing, structure=np.ones((3, 3), bool))
    if spread is not None:
        # Colour is never background (same rule as the blocks, per cell).
        grown &= ~(_block_max(spread, fine.shape, CELL) > 24.0 * _value_scale(image))
    fine[grown] = BACKGROUND
    return fine


def _post_rules(labels: np.ndarray, spread: np.ndarray | None, image: np.ndarray,
                level: np.ndarray, one_value: np.ndarray) -> np.ndarray:
    """Safety rules on the classifier's block labels (shared with models/train.py)."""
    grid = labels.shape
    background = labels == BACKGROUND
    if background.any():
        # Background is at the level of its region's border: a bright patch inside
        # dark air (or the reverse) is something, not air.
        labels[_off_level(background, level, one_value)] = BODY
        background = labels == BACKGROUND
    if background.any():
        # Background must reach the border: enclosed "air" is lung, bowel gas, a chamber.
        enclosed = background & ~_border_connected(background)
        labels[enclosed] = BODY
    if spread is not None:
        colourful = _block_max(spread, grid) > 24.0 * _value_scale(image)
        labels[colourful & (labels == BACKGROUND)] = BODY
    return labels


def _value_scale(image: np.ndarray) -> float:
    """1 for 8-bit data, 256 for 16-bit: a colour spread threshold scales with depth."""
    return 1.0 if np.asarray(image).dtype.itemsize == 1 else 256.0


def _block_max(x: np.ndarray, grid: tuple[int, int], block: int = CLASS_BLOCK) -> np.ndarray:
    x = _pad_to_blocks(x)
    return x.reshape(grid[0], block, grid[1], block).max(axis=(1, 3))


# ------------------------------------------------------------------------- denoising
def denoise(image: np.ndarray, *, bits_stored: int | None = None) -> np.ndarray:
    """Run the bundled CNN denoiser; return an array of the same shape and dtype.

    The result stays within the input's value range (and within ``bits_stored``).
    Colour images are denoised channel by channel. This is a lossy step: the codec
    records it in the stream.
    """
    arr = np.asarray(image)
    _as_luma(arr, bits_stored)  # validation only
    if arr.ndim == 1:
        return denoise(arr[np.newaxis, :], bits_stored=bits_stored)[0]
    if arr.ndim == 3:
        return np.stack([denoise(arr[..., c], bits_stored=bits_stored) for c in range(3)], axis=-1)
    if arr.size == 0 or arr.min() == arr.max():
        return arr.copy()
    session = _cached(DENOISER_FILE, _onnx_session)
    x = arr.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    pad_r, pad_c = max(0, 8 - x.shape[0]), max(0, 8 - x.shape[1])
    xin = np.pad((x - lo) / span, ((0, pad_r), (0, pad_c)), mode="reflect" if min(x.shape) > 1 else "edge")
    (y,) = session.run(None, {session.get_inputs()[0].name: xin[np.newaxis, np.newaxis]})
    y = y[0, 0, : x.shape[0], : x.shape[1]] * span + lo
    return np.clip(np.rint(y), lo, hi).astype(arr.dtype)


# ------------------------------------------------------------------------ DICOM SEG
def mask_from_seg(seg_dataset: Any, image_shape: tuple[int, ...]) -> np.ndarray:
    """Boolean ROI mask from a DICOM Segmentation (pydicom Dataset).

    ``image_shape`` is the shape of the image the mask is for: (rows, cols),
    (rows, cols, 3), (frames, rows, cols) or (frames, rows, cols, 3). All segments
    are merged. A SEG with one frame per image frame maps frame to frame; a SEG whose
    frames all belong to a single-frame image is merged into one mask. The result is
    (rows, cols) or (frames, rows, cols). Raises ValueError naming both shapes when
    the sizes or frame counts do not match, or when the dataset is not a SEG.
    """
    if getattr(seg_dataset, "Modality", None) != "SEG" or "PixelData" not in seg_dataset:
        raise ValueError("mask_from_seg needs a DICOM Segmentation dataset (Modality SEG with pixel data)")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) >= 3 and shape[-1] == 3 and len(shape) in (3, 4):
        shape = shape[:-1]
    if len(shape) not in (2, 3):
        raise ValueError(f"image shape {tuple(image_shape)} is not (rows, cols) or (frames, rows, cols)")
    rows, cols = int(seg_dataset.Rows), int(seg_dataset.Columns)
    pixels = np.asarray(seg_dataset.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    seg_frames = pixels.shape[0]
    if (rows, cols) != shape[-2:]:
        raise ValueError(f"DICOM SEG frames are {rows}x{cols} ({seg_frames} frames) but the image "
                         f"shape is {tuple(image_shape)}")
    fractional = getattr(seg_dataset, "SegmentationType", "BINARY") == "FRACTIONAL"
    present = pixels > (0 if not fractional else int(getattr(seg_dataset, "MaximumFractionalValue", 255)) // 2)
    if len(shape) == 2:
        return present.any(axis=0)
    image_frames = shape[0]
    # Map each SEG frame to an image frame through the Referenced Frame Number when
    # present (per-frame functional groups), else by order.
    frame_index = _referenced_frames(seg_dataset, seg_frames)
    if frame_index is None:
        if seg_frames == image_frames:
            return present.copy()
        segments = len(getattr(seg_dataset, "SegmentSequence", [])) or 1
        if seg_frames == image_frames * segments:
            return present.reshape(segments, image_frames, rows, cols).any(axis=0)
        raise ValueError(f"DICOM SEG has {seg_frames} frames of {rows}x{cols} that cannot be matched to "
                         f"the image shape {tuple(image_shape)} ({image_frames} frames)")
    out = np.zeros((image_frames, rows, cols), dtype=bool)
    for seg_i, img_i in enumerate(frame_index):
        if not 0 <= img_i < image_frames:
            raise ValueError(f"DICOM SEG frame {seg_i + 1} refers to image frame {img_i + 1} but the image "
                             f"shape {tuple(image_shape)} has {image_frames} frames")
        out[img_i] |= present[seg_i]
    return out


def _referenced_frames(ds: Any, seg_frames: int) -> list[int] | None:
    """0-based image frame per SEG frame from ReferencedFrameNumber, or None if absent."""
    groups = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if not groups or len(groups) != seg_frames:
        return None
    out = []
    for item in groups:
        try:
            ref = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber
        except (AttributeError, IndexError):
            return None
        if isinstance(ref, (list, tuple)) or hasattr(ref, "__len__") and not isinstance(ref, str):
            ref = ref[0]
        out.append(int(ref) - 1)
    return out
