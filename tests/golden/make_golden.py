"""Write the golden streams of the current format version (run once per version).

    python tests/golden/make_golden.py
    python tests/golden/make_golden.py --add    # only the cases the version's folder lacks

Each case is encoded from a real pydicom-data image; the stream and the SHA-256
of its decoded array are stored under tests/golden/v<version>/. Later versions
of the decoder must decode every stream to the same array, forever: never
regenerate the files of a released version.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's codec_core, not an installed copy
import codec_core as hlc  # noqa: E402


def dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(pydicom.data.get_testdata_file(name)).pixel_array


def cases() -> dict:
    ct = dicom("CT_small.dcm")                     # int16, 128x128
    mr = dicom("MR_small.dcm")                     # int16, 64x64
    stack = dicom("emri_small.dcm")[:3]            # uint16, 3 frames
    rgb = np.ascontiguousarray(dicom("US1_UNCR.dcm")[200:264, 300:380])  # uint8 colour
    nm = np.ascontiguousarray(dicom("JPEG2000_UNC.dcm")[300:428, :96])   # int16 signed NM
    mask = np.zeros(ct.shape, bool)
    mask[30:90, 40:100] = True
    return {
        "lossless_ct": (ct, dict(mode="lossless")),
        "lossless_rgb": (rgb, dict(mode="lossless")),
        "lossless_stack": (stack, dict(mode="lossless")),
        "lossless_nm_tiles": (nm, dict(mode="lossless", tile_size=64)),
        "near_lossless_mr_k2": (mr, dict(mode="near-lossless", max_error=2)),
        "near_lossless_rgb_k1": (rgb, dict(mode="near-lossless", max_error=1)),
        "lossy_ct_bpp1": (ct, dict(mode="lossy", bpp=1.0)),
        "lossy_rgb_psnr40": (rgb, dict(mode="lossy", psnr=40.0)),
        "hybrid_ct_mask_e0": (ct, dict(mode="lossy", bpp=1.0, roi=mask, roi_max_error=0)),
        "lossless_ct_ecc_medium": (ct, dict(mode="lossless", ecc="medium")),
        # v3 and later: a lossy stream of several tiles (its header's copy at the end)
        # and a small one at a low rate (no copy)
        "lossy_nm_tiles_bpp05": (nm, dict(mode="lossy", bpp=0.5, tile_size=64, try_near_lossless=False)),
        "lossy_mr_bpp025": (mr, dict(mode="lossy", bpp=0.25, try_near_lossless=False)),
        # v3 with region layers (issue 20): ROI exact / within 2, background by its own target
        "regions_ct_mask_e0_bg38": (ct, dict(mode="lossy", roi=mask, roi_max_error=0, background_psnr=38.0)),
        "regions_ct_mask_e2_bge6": (ct, dict(mode="lossy", roi=mask, roi_max_error=2, background_max_error=6)),
        # v3, lossy streams with flag bit 4 (the lossy band coder, codec_core/_native/lossyband.c):
        # one plane with parents at several levels, colour, and several tiles
        "lossy_ctx_ct_bpp05": (ct, dict(mode="lossy", bpp=0.5, try_near_lossless=False)),
        "lossy_ctx_rgb_psnr38": (rgb, dict(mode="lossy", psnr=38.0, try_near_lossless=False)),
        "lossy_ctx_nm_tiles_bpp1": (nm, dict(mode="lossy", bpp=1.0, tile_size=64, try_near_lossless=False)),
        # v3, lossy streams with flag bits 4 and 5 (the quiet-run variant of the lossy band
        # coder, stop 26): a low rate (zero rows and runs), colour, tiles, a stack of frames
        "lossy_runs_ct_bpp025": (ct, dict(mode="lossy", bpp=0.25, try_near_lossless=False)),
        "lossy_runs_rgb_psnr38": (rgb, dict(mode="lossy", psnr=38.0, try_near_lossless=False)),
        "lossy_runs_nm_tiles_bpp05": (nm, dict(mode="lossy", bpp=0.5, tile_size=64, try_near_lossless=False)),
        "lossy_runs_stack_bpp05": (stack, dict(mode="lossy", bpp=0.5, try_near_lossless=False)),
    }


def digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def main() -> int:
    out = Path(__file__).parent / f"v{hlc.VERSION}"
    add = "--add" in sys.argv  # new cases of a released version: the existing ones are kept as they are
    if out.exists() and not add and "--force" not in sys.argv:
        print(f"{out} exists: golden streams of a released version are never rewritten (--add adds new cases)")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((out / "manifest.json").read_text()) if add else {}
    written = 0
    for name, (arr, kwargs) in cases().items():
        if name in manifest:
            continue
        written += 1
        data = hlc.encode(arr, **kwargs)
        decoded = hlc.decode(data)
        (out / f"{name}.hlc").write_bytes(data)
        manifest[name] = {"shape": list(decoded.shape), "dtype": str(decoded.dtype),
                          "sha256": digest(decoded), "source_sha256": digest(arr),
                          "params": {k: (v if not isinstance(v, np.ndarray) else "mask") for k, v in kwargs.items()}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {written} streams to {out} ({len(manifest)} in its manifest)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
