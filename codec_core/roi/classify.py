"""The automatic importance map: the classifier's blocks and the rules that make them safe.

``auto_importance_map`` labels each ``ROI_BLOCK`` × ``ROI_BLOCK`` cell of a frame as
``BACKGROUND`` (air, outside the patient, padding, collimator shadow), ``BODY`` (soft
tissue) or ``DETAIL`` (edges, bone, fine structure, burned-in text):

1. cell statistics and the CNN's features per ``CLASS_BLOCK`` block
   (:mod:`codec_core.roi.features`);
2. the SVM (``roi_svm.pkl``) classifies each block;
3. safety rules (:func:`post_rules`): background blocks far from the level of their
   region's edge blocks (at the image border or the scanner's padding) become
   ``BODY``; a background region that does not touch the image border is anatomy
   (lungs, bowel gas, cardiac chambers) and becomes ``BODY``; blocks with colour
   (Doppler, annotations) are never background;
4. background growth (:func:`grow_background`): each background region takes in the
   BODY blocks connected to it whose every cell sits at the level and noise of its
   air (air the classifier left as body at its safety shift);
5. edge refinement (:func:`refine`): the classifier's blocks are split into
   ``ROI_BLOCK`` cells; cells of BODY blocks that border BACKGROUND and sit at the
   level and noise of that background (and not next to a cell that does not)
   become ``BACKGROUND``, so the map follows the body outline to 4 pixels.

Training (``models/training/train.py``) calibrates the classifier's safety shift
through :func:`finish`, the same rules. scipy is imported only when a map is made.
"""
from __future__ import annotations

import numpy as np

from ..format import Importance
from .features import CELL, CLASS_BLOCK, as_luma, block_level, cell_stats, features_from_stats, pad_to_blocks, run_cnn
from .model_files import SVM_FILE, cached, load_svm

#: The classes of the map (codec_core.format.Importance), as plain ints for numpy.
BACKGROUND, BODY, DETAIL = (int(c) for c in Importance)
#: Block size of the automatic map in pixels (one CELL). The classifier works on
#: CLASS_BLOCK blocks; BODY blocks bordering BACKGROUND are then refined cell by cell
#: (cells at the level and noise of the neighbouring background become BACKGROUND).
#: The map is stored zlib-compressed in the stream: well under 1% of it.
ROI_BLOCK: int = CELL

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


#: A background block whose level differs from the border level of its background
#: region by more than this (fraction of the image's 1st–99th percentile range) is body.
LEVEL_TOLERANCE = 0.4


def one_value_blocks(stats: tuple, grid: tuple[int, int]) -> np.ndarray:
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
    ROI_BLOCK (= CELL) resolution, refined at the body edge (see :func:`refine`).

    ``image`` is 2-D (rows, cols) or colour (rows, cols, 3) of dtype uint8, int8,
    uint16 or int16 (signed data natively; a 1-D array is one row). Returns a uint8
    map of shape (ceil(rows / ROI_BLOCK), ceil(cols / ROI_BLOCK)).
    Raises ValueError for unsupported input and ModelIntegrityError when a model file
    is missing or altered (also for a one-value image, so that a broken install is
    never silent).
    """
    luma, spread = as_luma(image, bits_stored)
    rows, cols = luma.shape
    out_grid = (-(-rows // ROI_BLOCK), -(-cols // ROI_BLOCK))
    if rows == 0 or cols == 0:
        return np.zeros(out_grid, dtype=np.uint8)
    grid = (-(-rows // CLASS_BLOCK), -(-cols // CLASS_BLOCK))
    stats = cell_stats(luma)
    cells = features_from_stats(*stats)
    feats = run_cnn(cells)
    svm = cached(SVM_FILE, load_svm)
    if float(luma.max()) == float(luma.min()):
        # One value everywhere: nothing to tell apart; code it as body (safe side).
        return np.full(out_grid, BODY, dtype=np.uint8)
    labels = np.asarray(svm.predict(feats), dtype=np.uint8).reshape(grid)
    return finish(labels, stats, spread, image, block_level(cells),
                   one_value_blocks(stats, grid))[: out_grid[0], : out_grid[1]]


def finish(labels: np.ndarray, stats: tuple, spread: np.ndarray | None, image: np.ndarray,
            level: np.ndarray, one_value: np.ndarray) -> np.ndarray:
    """The cell map from the classifier's block labels: safety rules, background
    growth, edge refinement (shared with models/training/train.py, which calibrates the
    safety shift through exactly this)."""
    labels = post_rules(labels, spread, image, level, one_value)
    labels = grow_background(labels, stats, spread, image)
    return refine(labels, stats, spread, image)


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


def grow_background(labels: np.ndarray, stats: tuple, spread: np.ndarray | None,
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


def refine(labels: np.ndarray, stats: tuple, spread: np.ndarray | None,
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


def post_rules(labels: np.ndarray, spread: np.ndarray | None, image: np.ndarray,
                level: np.ndarray, one_value: np.ndarray) -> np.ndarray:
    """Safety rules on the classifier's block labels (shared with models/training/train.py)."""
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
    x = pad_to_blocks(x)
    return x.reshape(grid[0], block, grid[1], block).max(axis=(1, 3))
