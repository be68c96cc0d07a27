"""Train the ROI models: CNN feature extractor + SVM block classifier, and the CNN denoiser.

Run from the repository root, as a module (this training package is not installed)::

    pip install ".[train]"                  # torch (CPU wheel), onnx: development only
    nice python -m models.training.train    # ~5 min on 2 cores; writes models/*.onnx, *.pkl, SHA256SUMS

Seeded and single-threaded, so it regenerates the same weights on the same torch and
scikit-learn versions. Steps:

1. Corpus (models/training/corpus.py): real pydicom-data images with classical, modality-aware
   pixel labels, split into training and held-out sets by acquisition.
2. Augmentation of each training image: flips, 90° rotations, rescaling, intensity
   windows and gamma, polarity inversion, noise, synthetic burned-in text, air
   borders, and stored padding (a CT reconstruction circle or a flat frame below
   the image's own air).
3. CNN (``RoiFeatureNet``) trained end to end on block labels with a temporary
   linear head; exported to ONNX without the head (features per block).
4. SVM (StandardScaler + LinearSVC) fitted on the CNN features of training blocks
   (body blocks weighted by their body pixels); the background intercept is lowered
   by a safety shift calibrated by cross-fitting (models that never saw an image
   score it, through the post-rules and the edge refinement of
   ``auto_importance_map``).
5. Denoiser (``DenoiseNet``): residual CNN trained on the training images with
   synthetic Gaussian noise.
6. Held-out evaluation (pixel level, through the exported ONNX + pickled SVM, i.e.
   the code path of ``codec_core.roi.auto_importance_map``), written to
   models/heldout_metrics.json.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

from codec_core import roi
from codec_core.roi import classify, features, model_files

from . import corpus

#: The repository's models/ folder: where the model files are written (installed as
#: the data of codec_core.models).
HERE = Path(__file__).resolve().parents[1]

SEED = 20250607
AUG_PER_IMAGE = 24
MAX_CELLS = 128          # CNN training crops: at most 128 × 128 cells (512 px)
CNN_EPOCHS = 40
DENOISE_STEPS = 1500
SVM_BLOCKS = 30000
SAFETY_BODY_LOSS = 0.002  # fraction of out-of-fold body pixels allowed in background blocks
SAFETY_IMAGE_LOSS = 0.005  # ... and on any single original out-of-fold image
FOLDS = 4                 # cross-fitting folds (by acquisition) for the safety margin
VAL_AUG = 6               # augmented variants per out-of-fold image used for calibration
SVM_PIXEL_WEIGHT = True   # body blocks weighted by their body pixels in the SVM fit
SVM_EDGE_FLOOR = 0.2      # ... with this floor, so edge blocks still count
AIR_AUG_P = 0.15          # training variants framed by stored air (circle / flat padding)
AIR_PAD_BELOW = 0.15      # ... at most this far (fraction of the range) below the image minimum:
                          # far lower padding squeezes the 1st-99th percentile range of the
                          # input and was measured to cost safety (out-of-fold)


# ---------------------------------------------------------------------- augmentation
def _text_layer(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of a few random burned-in text strings."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :/.-mmcmkVmAsHz"
    for _ in range(int(rng.integers(1, 5))):
        size = int(rng.integers(8, max(10, min(shape) // 12)))
        font = ImageFont.load_default(size=size)
        text = "".join(rng.choice(list(alphabet), size=int(rng.integers(3, 16))))
        x = int(rng.integers(0, max(1, shape[1] - size * 4)))
        y = int(rng.integers(0, max(1, shape[0] - size)))
        draw.text((x, y), text, fill=255, font=font)
    return np.asarray(canvas) > 0


def _air_frame(x: np.ndarray, lab: np.ndarray, rng: np.random.Generator,
               info: dict) -> tuple[np.ndarray, np.ndarray]:
    """Air the way scanners store it around the patient: a reconstruction circle (CT)
    or a frame of exactly flat padding, at a level below the image's own air, and
    optionally a band of noisy air between the padding and the image.

    Everything added is background. A circle is only used when it cuts through
    background alone (the patient stays whole)."""
    rows, cols = x.shape
    bg = x[lab == corpus.BACKGROUND]
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo or 1.0
    air = float(np.percentile(bg, 5)) if bg.size > 100 else lo
    pad_level = lo - span * float(rng.uniform(0.0, AIR_PAD_BELOW))
    x = x.copy()
    lab = lab.copy()
    kind = rng.random()
    if kind < 0.5 and bg.size > 0.2 * x.size:
        # Reconstruction circle: outside an ellipse around the centre is flat padding.
        yy, xx = np.mgrid[0:rows, 0:cols]
        ry, rx = rows / 2 * rng.uniform(0.85, 1.1), cols / 2 * rng.uniform(0.85, 1.1)
        outside = ((yy - rows / 2 + 0.5) / ry) ** 2 + ((xx - cols / 2 + 0.5) / rx) ** 2 > 1.0
        if outside.any() and not (lab[outside] != corpus.BACKGROUND).any():
            x[outside] = pad_level
            info["circle"] = True
            return x, lab
    # A frame: an optional band of noisy air, then exactly flat padding.
    noise = span * float(np.exp(rng.uniform(np.log(0.002), np.log(0.02))))
    band = [int(rng.integers(0, max(2, n // 8))) * int(rng.random() < 0.5) for n in (rows, rows, cols, cols)]
    pads = [int(rng.integers(8, max(9, n // 4))) for n in (rows, rows, cols, cols)]
    if any(band):
        x = np.pad(x, ((band[0], band[1]), (band[2], band[3])), constant_values=np.nan)
        lab = np.pad(lab, ((band[0], band[1]), (band[2], band[3])), constant_values=corpus.BACKGROUND)
        hole = np.isnan(x)
        x[hole] = air + noise * rng.standard_normal(int(hole.sum()))
    x = np.pad(x, ((pads[0], pads[1]), (pads[2], pads[3])), constant_values=pad_level)
    lab = np.pad(lab, ((pads[0], pads[1]), (pads[2], pads[3])), constant_values=corpus.BACKGROUND)
    info["frame"] = True
    return x, lab


def augment(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
            info: dict | None = None, air: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One random variant: float luma image (any range) and its pixel labels.

    ``info`` (optional) receives the random choices, for diagnostics."""
    info = {} if info is None else info
    from scipy import ndimage
    from skimage.transform import rescale

    x = image.astype(np.float64)
    if x.ndim == 3:
        x = x.mean(axis=-1)
    lab = labels
    k = int(rng.integers(0, 4))
    x, lab = np.rot90(x, k), np.rot90(lab, k)
    if rng.random() < 0.5:
        x, lab = x[:, ::-1], lab[:, ::-1]
    if rng.random() < 0.25 and min(x.shape) >= 96:
        # A crop (40–90% per side): image edges that are not air.
        h = int(x.shape[0] * rng.uniform(0.4, 0.9))
        w = int(x.shape[1] * rng.uniform(0.4, 0.9))
        r0 = int(rng.integers(0, x.shape[0] - h + 1))
        c0 = int(rng.integers(0, x.shape[1] - w + 1))
        x, lab = x[r0:r0 + h, c0:c0 + w], lab[r0:r0 + h, c0:c0 + w]
        info["crop"] = True
    if rng.random() < 0.25:
        # Synthetic air border: the image's own dark level and background noise.
        bg = x[lab == corpus.BACKGROUND]
        level = float(np.percentile(bg if bg.size > 100 else x, 2 if bg.size > 100 else 0.5))
        noise = 0.0
        if bg.size > 100:   # robust spread of the darkest background (CT: padding or air)
            dark = bg[bg <= np.percentile(bg, 30)]
            noise = 1.4826 * float(np.median(np.abs(dark - np.median(dark))))
        pads = [int(rng.integers(0, max(2, int(0.25 * n)))) * int(rng.random() < 0.6)
                for n in (x.shape[0], x.shape[0], x.shape[1], x.shape[1])]
        if any(pads):
            info["pad"] = True
            x = np.pad(x, ((pads[0], pads[1]), (pads[2], pads[3])), constant_values=np.nan)
            lab = np.pad(lab, ((pads[0], pads[1]), (pads[2], pads[3])), constant_values=corpus.BACKGROUND)
            hole = np.isnan(x)
            x[hole] = level + noise * rng.standard_normal(int(hole.sum()))
    if air and rng.random() < AIR_AUG_P:
        x, lab = _air_frame(x, lab, rng, info)
    s = float(np.exp(rng.uniform(np.log(0.5), np.log(1.3))))
    if min(x.shape) * s >= 24 and max(x.shape) * s <= 1400:
        x = rescale(x, s, order=1, preserve_range=True, anti_aliasing=s < 1)
        lab = rescale(lab, s, order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
    x = np.ascontiguousarray(x)
    lab = np.ascontiguousarray(lab)
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo or 1.0
    xn = (x - lo) / span
    if rng.random() < 0.4:  # intensity window (as a display would clip)
        # The low end stays near the bottom: a window that clips dark tissue to the
        # black of air would make labels the image no longer supports.
        a, b = rng.uniform(0.0, 0.05), rng.uniform(0.5, 1.0)
        if b - a > 0.2:
            xn = np.clip((xn - a) / (b - a), 0, 1)
            info["window"] = round(float(a), 2)
    xn = xn ** float(np.exp(rng.uniform(-0.4, 0.4)))
    if rng.random() < 0.2:  # polarity (MONOCHROME1 stored values)
        xn = 1.0 - xn
        info["invert"] = True
    if rng.random() < 0.5:
        xn = xn + rng.normal(0, rng.uniform(0.002, 0.03), xn.shape)
    if rng.random() < 0.4:
        text = _text_layer(xn.shape, rng)
        info["text"] = True
        value = 1.0 if rng.random() < 0.8 else 0.0
        visible = text & (np.abs(xn - value) > 0.1)   # black text on black air is not there
        xn = np.where(text, value, xn)
        lab = np.where(ndimage.binary_dilation(visible, iterations=1), corpus.DETAIL, lab).astype(np.uint8)
    depth = int(rng.choice([255, 1023, 4095, 65535]))
    xq = np.rint(np.clip(xn, -0.2, 1.2) * depth) - (depth // 2 if rng.random() < 0.3 else 0)
    return xq.astype(np.float32), lab


def make_examples(samples: list, n_aug: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(cell features (2, h, w), block labels (h/4, w/4), pixel labels) per variant."""
    out = []
    for s in samples:
        variants = [(s.image.astype(np.float32).mean(axis=-1) if s.image.ndim == 3 else s.image.astype(np.float32), s.labels)]
        variants += [augment(s.image, s.labels, rng) for _ in range(n_aug)]
        for x, lab in variants:
            feats = roi.cell_features(x)[0]
            out.append((feats, corpus.block_labels(lab, roi.CLASS_BLOCK), lab))
    return out


# ------------------------------------------------------------------------------ nets
def build_nets():
    import torch
    from torch import nn

    class RoiFeatureNet(nn.Module):
        """FEATURE_CHANNELS × (H/4, W/4) cells -> 32 features per 16 × 16 block (H/16, W/16)."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(roi.FEATURE_CHANNELS, 12, 3, padding=1), nn.ReLU(),
                nn.Conv2d(12, 24, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(24, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=4, dilation=4), nn.ReLU(),
            )
            self.head = nn.Conv2d(32, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    class DenoiseNet(nn.Module):
        """Residual denoiser on a [0, 1]-normalised image: returns the clean estimate."""

        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                nn.Conv2d(16, 1, 3, padding=1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - self.net(x)

    return RoiFeatureNet, DenoiseNet


def _crop(feats: np.ndarray, blabels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    bpc = roi.CLASS_BLOCK // roi.CELL
    h, w = blabels.shape
    mb = MAX_CELLS // bpc
    r0 = int(rng.integers(0, h - mb + 1)) if h > mb else 0
    c0 = int(rng.integers(0, w - mb + 1)) if w > mb else 0
    return (feats[:, r0 * bpc:(r0 + mb) * bpc, c0 * bpc:(c0 + mb) * bpc],
            blabels[r0:r0 + mb, c0:c0 + mb])


def train_cnn(examples, rng: np.random.Generator):
    import torch
    from torch import nn

    RoiFeatureNet, _ = build_nets()
    net = RoiFeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    # Body weighted up: calling anatomy background is the costly mistake.
    lossf = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 1.0]))
    steps = CNN_EPOCHS * len(examples)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    t0 = time.time()
    for epoch in range(CNN_EPOCHS):
        order = rng.permutation(len(examples))
        total = 0.0
        for i in order:
            feats, blab, _ = examples[i]
            f, b = _crop(feats, blab, rng)
            x = torch.from_numpy(np.ascontiguousarray(f))[None]
            y = torch.from_numpy(b.astype(np.int64))[None]
            logits = net.head(net(x))
            loss = lossf(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"cnn epoch {epoch}: loss {total / len(examples):.4f} ({time.time() - t0:.0f} s)", flush=True)
    return net


def train_denoiser(samples, rng: np.random.Generator):
    import torch

    _, DenoiseNet = build_nets()
    net = DenoiseNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    images = []
    for s in samples:
        x = s.image.astype(np.float32)
        x = x.mean(axis=-1) if x.ndim == 3 else x
        if min(x.shape) >= 48:
            images.append((x - x.min()) / max(float(x.max() - x.min()), 1.0))
    t0 = time.time()
    for step in range(DENOISE_STEPS):
        batch = []
        for _ in range(8):
            img = images[int(rng.integers(len(images)))]
            r = int(rng.integers(0, img.shape[0] - 48 + 1))
            c = int(rng.integers(0, img.shape[1] - 48 + 1))
            batch.append(img[r:r + 48, c:c + 48])
        clean = torch.from_numpy(np.stack(batch)[:, None].copy())
        sigma = torch.from_numpy(rng.uniform(0.003, 0.05, (8, 1, 1, 1)).astype(np.float32))
        noise = torch.from_numpy(rng.normal(0, 1, clean.shape).astype(np.float32)) * sigma
        loss = torch.mean((net(clean + noise) - clean) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            print(f"denoiser step {step}: mse {float(loss):.2e} ({time.time() - t0:.0f} s)", flush=True)
    return net


def export_onnx(module, path: Path, channels: int) -> None:
    import torch

    module.eval()
    dummy = torch.zeros(1, channels, 64, 64)
    torch.onnx.export(module, dummy, str(path), input_names=["image"], output_names=["output"],
                      dynamic_axes={"image": {2: "rows", 3: "cols"}, "output": {2: "rows", 3: "cols"}},
                      opset_version=17, dynamo=False)
    import onnx

    model = onnx.load(str(path))
    model.producer_version = ""   # keep the bytes independent of the torch build string
    onnx.save(model, str(path))


# ------------------------------------------------------------------------------- SVM
def onnx_block_features(feats: np.ndarray) -> np.ndarray:
    session = model_files.cached(roi.FEATURES_FILE, model_files.onnx_session)
    (out,) = session.run(None, {"image": feats[None]})
    return out[0].reshape(out.shape[1], -1).T


def fit_svm(examples, rng: np.random.Generator):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    X, y, body_px = [], [], []
    for feats, blab, plab in examples:
        X.append(onnx_block_features(feats))
        y.append(blab.ravel())
        body_px.append(_body_pixels_per_block(plab, blab.shape).ravel())
    X, y, body_px = np.concatenate(X), np.concatenate(y), np.concatenate(body_px)
    pick = rng.choice(len(y), size=min(SVM_BLOCKS, len(y)), replace=False)
    svm = make_pipeline(StandardScaler(), LinearSVC(C=0.5, class_weight={0: 1.0, 1: 2.0, 2: 1.0},
                                                     max_iter=20000, random_state=SEED))
    weight = np.ones(len(pick))
    if SVM_PIXEL_WEIGHT:
        # Safety is counted in pixels: a body block that only grazes the body outline
        # costs a few pixels when called background, an interior block 256.
        frac = body_px[pick] / float(roi.CLASS_BLOCK ** 2)
        weight = np.where(y[pick] == corpus.BODY, SVM_EDGE_FLOOR + (1 - SVM_EDGE_FLOOR) * frac, 1.0)
    svm.fit(X[pick], y[pick], linearsvc__sample_weight=weight)
    print(f"svm: {len(pick)} blocks", flush=True)
    return svm


def _as_stored(x: np.ndarray) -> np.ndarray:
    """An augmented float variant as an unsigned integer image (offsets do not matter)."""
    x = np.rint(x - np.nanmin(x))
    return np.clip(x, 0, 65535).astype(np.uint16 if x.max() > 255 else np.uint8)


def fold_of(groups: list[str]) -> dict[str, int]:
    """Deterministic fold per acquisition group: round robin in corpus order, so every
    fold mixes modalities and no acquisition is split."""
    return {g: i % FOLDS for i, g in enumerate(groups)}


def oof_cases(svm, held, rng: np.random.Generator) -> list[dict]:
    """Unshifted SVM scores of a fold model on its held-in images (originals and
    VAL_AUG augmented variants), with what the post-rules need."""
    cases = []
    for s in held:
        variants = [(s.image, s.labels, True)]
        for _ in range(VAL_AUG):
            x, lab = augment(s.image, s.labels, rng, air=False)
            variants.append((_as_stored(x), lab, False))
        for img, lab, original in variants:
            luma, spread = features.as_luma(img, None)
            grid = (-(-luma.shape[0] // roi.CLASS_BLOCK), -(-luma.shape[1] // roi.CLASS_BLOCK))
            out_grid = (-(-luma.shape[0] // roi.ROI_BLOCK), -(-luma.shape[1] // roi.ROI_BLOCK))
            constant = float(luma.max()) == float(luma.min())
            stats = features.cell_stats(luma)
            cells = features.features_from_stats(*stats)
            scores = None if constant else svm.decision_function(features.run_cnn(cells))
            cases.append({"scores": scores, "grid": grid, "out_grid": out_grid, "stats": stats,
                          "spread": spread, "image": img, "level": features.block_level(cells),
                          "one_value": classify.one_value_blocks(stats, grid),
                          "labels": lab, "original": original, "name": s.source.name})
    return cases


def _shifted_map(case: dict, shift: float) -> np.ndarray:
    """The map auto_importance_map would return with the background intercept lowered
    by ``shift`` (same post-rules, background growth and edge refinement)."""
    if case["scores"] is None:
        return np.full(case["out_grid"], roi.BODY, dtype=np.uint8)
    sc = case["scores"].copy()
    sc[:, 0] -= shift
    labels = np.argmax(sc, axis=1).astype(np.uint8).reshape(case["grid"])
    fine = classify.finish(labels, case["stats"], case["spread"], case["image"], case["level"], case["one_value"])
    return fine[: case["out_grid"][0], : case["out_grid"][1]]


def calibrate(cases: list[dict]) -> dict:
    """Safety margin from out-of-fold predictions (models that never saw the image),
    through the post-rules of auto_importance_map.

    The most permissive background-intercept shift for which at most SAFETY_BODY_LOSS
    of all out-of-fold body pixels (originals and augmented variants) and at most
    SAFETY_IMAGE_LOSS of any original image's body pixels fall in blocks predicted
    background.
    """
    table = []
    for shift in np.round(np.arange(-1.0, 6.001, 0.1), 2):
        lost = body = bg_hit = bg = 0
        worst, worst_name = 0.0, ""
        for c in cases:
            pred = _shifted_map(c, float(shift))
            lab = c["labels"]
            px = np.kron(pred, np.ones((roi.ROI_BLOCK, roi.ROI_BLOCK), np.uint8))[: lab.shape[0], : lab.shape[1]]
            is_body = lab != corpus.BACKGROUND
            l_img = int((is_body & (px == roi.BACKGROUND)).sum())
            lost += l_img
            body += int(is_body.sum())
            bg_hit += int(((lab == corpus.BACKGROUND) & (px == roi.BACKGROUND)).sum())
            bg += int((lab == corpus.BACKGROUND).sum())
            if c["original"] and is_body.any() and l_img / is_body.sum() > worst:
                worst, worst_name = l_img / is_body.sum(), c["name"]
        table.append({"shift": float(shift), "body_lost": lost / max(body, 1), "worst_image_lost": worst,
                      "worst_image": worst_name, "background_recall": bg_hit / max(bg, 1)})
    ok = [r for r in table if r["body_lost"] <= SAFETY_BODY_LOSS and r["worst_image_lost"] <= SAFETY_IMAGE_LOSS]
    chosen = min(ok, key=lambda r: r["shift"]) if ok else table[-1]
    for r in table[::5]:
        print(f"  shift {r['shift']:+.1f}: oof body lost {100 * r['body_lost']:.3f}% "
              f"(worst image {100 * r['worst_image_lost']:.2f}% {r['worst_image']}), "
              f"bg recall {100 * r['background_recall']:.1f}%")
    print(f"calibration: background intercept shifted by {chosen['shift']:+.2f} "
          f"(oof body lost {100 * chosen['body_lost']:.3f}%, bg recall {100 * chosen['background_recall']:.1f}%)",
          flush=True)
    return {"chosen": chosen, "table": table, "cases": len(cases)}


def fit_features_and_svm(examples, rng: np.random.Generator, directory: Path):
    """CNN (exported to ONNX in ``directory``) and the unshifted SVM on its features."""
    net = train_cnn(examples, rng)
    export_onnx(net, directory / roi.FEATURES_FILE, roi.FEATURE_CHANNELS)
    (directory / roi.SUMS_FILE).write_text(
        f"{hashlib.sha256((directory / roi.FEATURES_FILE).read_bytes()).hexdigest()}  {roi.FEATURES_FILE}\n",
        encoding="ascii")
    # The SVM is fitted on features from the exported ONNX graph, the same numbers
    # the codec computes at run time.
    roi.set_model_dir(directory)
    return net, fit_svm(examples, rng)


def _body_pixels_per_block(plab: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    b = roi.CLASS_BLOCK
    rows, cols = plab.shape
    padded = np.zeros((grid[0] * b, grid[1] * b), dtype=bool)
    padded[:rows, :cols] = plab != corpus.BACKGROUND
    return padded.reshape(grid[0], b, grid[1], b).sum(axis=(1, 3))


# ------------------------------------------------------------------------ evaluation
def evaluate(samples) -> dict:
    """Pixel-level confusion of auto_importance_map against the classical labels."""
    per_image = []
    conf = np.zeros((3, 3), dtype=np.int64)
    for s in samples:
        pred = roi.auto_importance_map(s.image)
        px = np.kron(pred, np.ones((roi.ROI_BLOCK, roi.ROI_BLOCK), dtype=np.uint8))[: s.labels.shape[0], : s.labels.shape[1]]
        c = np.zeros((3, 3), dtype=np.int64)
        np.add.at(c, (s.labels.ravel(), px.ravel()), 1)
        conf += c
        per_image.append({"image": s.source.name, "frame": s.frame, "modality": s.modality,
                          **_summary(c)})
    return {"overall": _summary(conf), "confusion_true_by_pred": conf.tolist(), "images": per_image}


def _summary(c: np.ndarray) -> dict:
    body_true = c[1:].sum()
    out = {"body_kept": float(c[1:, 1:].sum() / body_true) if body_true else None,
           "background_recall": float(c[0, 0] / c[0].sum()) if c[0].sum() else None}
    for k, name in enumerate(("background", "body", "detail")):
        out[f"{name}_precision"] = float(c[k, k] / c[:, k].sum()) if c[:, k].sum() else None
        out[f"{name}_recall"] = float(c[k, k] / c[k].sum()) if c[k].sum() else None
    return out


def write_sums() -> None:
    lines = [f"{hashlib.sha256((HERE / n).read_bytes()).hexdigest()}  {n}\n" for n in roi.MODEL_FILES]
    (HERE / roi.SUMS_FILE).write_text("".join(lines), encoding="ascii")


def main() -> None:
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)
    t0 = time.time()
    train = corpus.load_corpus("train")
    heldout = corpus.load_corpus("heldout")
    print(f"corpus: {len(train)} training images, {len(heldout)} held out ({time.time() - t0:.0f} s)", flush=True)

    # 1. Cross-fitting: per fold, CNN + SVM on the other folds, scores on this fold.
    groups = list(dict.fromkeys(s.source.group for s in train))
    folds = fold_of(groups)
    cases = []
    for k in range(FOLDS):
        fit = [s for s in train if folds[s.source.group] != k]
        held = [s for s in train if folds[s.source.group] == k]
        print(f"fold {k}: fit on {len(fit)}, calibrate on {[s.source.name for s in held]}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            _, svm_k = fit_features_and_svm(make_examples(fit, AUG_PER_IMAGE, rng), rng, Path(tmp))
            cases += oof_cases(svm_k, held, rng)
            roi.set_model_dir(HERE)
    calibration = calibrate(cases)
    del cases

    # 2. Final models on all training images, with the out-of-fold safety shift.
    examples = make_examples(train, AUG_PER_IMAGE, rng)
    print(f"{len(examples)} training variants ({time.time() - t0:.0f} s)", flush=True)
    net, svm = fit_features_and_svm(examples, rng, HERE)
    svm[-1].intercept_ = svm[-1].intercept_.copy()
    svm[-1].intercept_[0] -= calibration["chosen"]["shift"]
    denoiser = train_denoiser(train, rng)
    export_onnx(denoiser, HERE / roi.DENOISER_FILE, 1)
    (HERE / roi.SVM_FILE).write_bytes(pickle.dumps(svm, protocol=4))
    write_sums()
    roi.set_model_dir(HERE)

    metrics = {"train": evaluate(train)["overall"],
               "calibration": {"chosen": calibration["chosen"], "cases": calibration["cases"],
                               "folds": {g: k for g, k in folds.items()}},
               "heldout": evaluate(heldout),
               "training_seconds": round(time.time() - t0, 1),
               "versions": {"torch": torch.__version__, "sklearn": __import__("sklearn").__version__}}
    (HERE / "heldout_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics["heldout"]["overall"], indent=1))
    for row in metrics["heldout"]["images"]:
        print(row["image"], row["frame"], f"body kept {row['body_kept']:.4f}",
              f"bg recall {row['background_recall'] if row['background_recall'] is None else round(row['background_recall'], 3)}")
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
