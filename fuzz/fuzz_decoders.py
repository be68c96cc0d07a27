#!/usr/bin/env python
"""Structure-aware fuzzing of the HLC decoders.

Targets: ``codec_core.decode`` (every level, single frames, strict True/False,
1 or 2 threads), ``codec_core.info``, and, when importable, the Pillow plugin
(``Image.open(...).load()``), the numcodecs codec and the pydicom decoder.

Inputs are golden streams made from real images (pydicom-data: MR_small, CT_small,
emri_small, a crop of US1_UNCR) and synthetic edge shapes, in every mode (lossless,
near-lossless, lossy by bpp and by psnr, lossy + ROI mask, denoise, ECC levels,
small tiles), mutated by:

* header field mutations (dims, tiles, levels, codes, flags, value range, ROI block,
  offsets) with the header CRC recomputed, so the mutation passes the CRC;
* consistent geometry mutations: dims/tiles/levels/flags changed together and the
  segment list padded or cut to the count the header implies, CRCs recomputed,
  so the mutation reaches the entropy decoder and the wavelet;
* step / class multiplier mutations (0, negative, NaN, inf, huge, tiny, wrong count);
* segment mutations with segment CRCs recomputed: byte flips, truncation,
  extension, replacement by random bytes or by segments of other seeds, swaps,
  varint length field damage, fabricated value tables and importance maps, and in a
  region stream a forged region map (zlib of zeros up to 10 bytes a pixel, of a valid
  row repeated, or of random bytes: the structure-aware bomb a tester found), and an
  importance map of every frame the header claims (with frames added by the geometry
  mutations and decode(frame=i): the other bomb of stop 36);
* index mutations (lengths, count) and raw byte mutations without CRC repair
  (flips, inserts, deletes, truncation, splicing of two seeds);
* ECC streams: damage of the wrapper, and mutated payloads re-protected so the
  mutation reaches the decoder through the Reed-Solomon path.

Per target call: a 2 s watchdog (a call over 2 s is re-run to confirm, then kept as
a hang), peak allocation via tracemalloc against the header's claim and the pixel
limit (the C kernels' own work buffers are not traced; process max RSS is checked as a
second, coarse signal), and the exception type. Anything other than an HlcError
(or the adapter's documented error types) is a crash. HlcErrors raised by
decode's last-resort ``except Exception`` wrapper are counted separately as
"internal errors caught by the safety net": not contract violations, but bugs.

Crashes, hangs, over-allocations and distinct safety-net catches are written to
tests/corpus/ and replayed by tests/test_fuzz_regressions.py.

    nice -n 19 python fuzz/fuzz_decoders.py --iterations 1000000 --seed 1

writes benchmarks/results/fuzz.md.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import math
import os
import random
import resource
import struct
import sys
import threading
import time
import tracemalloc
import traceback
import warnings
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT / "fuzz"))
import sanitized  # noqa: E402

sanitized.install()  # the sanitized kernels when HLC_SANITIZED_KERNELS names them (see --sanitized)

import codec_core as hlc  # noqa: E402
from codec_core import api as _api  # noqa: E402
from codec_core import container as ct  # noqa: E402
from codec_core.format import (  # noqa: E402
    ECC_MAGIC, FLAG_REGIONS, HEADER_FIELDS, HEADER_FIELDS_V3, OPTIONAL_FIELDS, step_code)

CORPUS = ROOT / "tests" / "corpus"
RESULTS = ROOT / "benchmarks" / "results" / "fuzz.md"

#: Pixel limit used while fuzzing (set as codec_core.MAX_PIXELS for the run, so the
#: default-limit path of decode and of the adapters is what is fuzzed). Decoding up to
#: this many samples takes well under the 2 s budget.
FUZZ_MAX_PIXELS = 1 << 22
#: A call may allocate (traced) at most this much per sample the header claims, plus slack.
ALLOC_PER_SAMPLE = 64
ALLOC_SLACK = 16 << 20
TIMEOUT = 2.0

# ----------------------------------------------------------------------- seeds


def _dicom(name: str) -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


def make_seeds(small: bool = False) -> list[tuple[str, bytes]]:
    """Golden streams from real images in every mode, plus synthetic edge shapes."""
    warnings.simplefilter("ignore")
    seeds: list[tuple[str, bytes]] = []

    def add(name, arr, **kw):
        try:
            seeds.append((name, hlc.encode(arr, threads=1, **kw)))
        except Exception as e:  # noqa: BLE001 - a seed the encoder cannot make today is skipped
            print(f"seed {name} skipped: {type(e).__name__}: {e}", file=sys.stderr)

    mr = _dicom("MR_small.dcm")                       # 64x64 int16
    ct_img = _dicom("CT_small.dcm")                   # 128x128 int16
    emri = _dicom("emri_small.dcm")                   # 10x64x64 uint16
    us = np.ascontiguousarray(_dicom("US1_UNCR.dcm")[200:248, 300:364])  # 48x64x3 uint8
    roi_mr = np.zeros(mr.shape, bool)
    roi_mr[20:44, 16:40] = True
    roi_us = np.zeros(us.shape[:2], bool)
    roi_us[10:30, 20:50] = True
    add("mr_lossless", mr)
    add("mr_near2", mr, mode="near-lossless", max_error=2)
    add("mr_lossy_bpp", mr, mode="lossy", bpp=1.0)
    add("mr_lossy_roi0", mr, mode="lossy", bpp=0.8, roi=roi_mr, roi_max_error=0)
    add("mr_lossy_ecc_high", mr, mode="lossy", bpp=0.5, ecc="high")
    add("mr_lossless_tile16", mr, tile_size=16)
    add("us_lossless", us)
    add("us_lossy_roi2", us, mode="lossy", bpp=1.0, roi=roi_us[..., None], roi_max_error=2)
    add("emri3_near1", emri[:3], mode="near-lossless", max_error=1)
    add("tiny_1x1", np.array([[7]], np.uint8))
    add("tiny_1xN_int8", np.arange(-20, 19, dtype=np.int8)[None, :])
    add("tiny_Nx1", np.arange(23, dtype=np.uint16)[:, None] * 97)
    add("tiny_1d", np.arange(40, dtype=np.int16) * -300)
    add("sparse_valuetable", (np.arange(40 * 36).reshape(40, 36) % 5 * 4000).astype(np.uint16))
    if small:
        return seeds
    roi_ct = np.zeros(ct_img.shape, bool)
    roi_ct[40:90, 30:100] = True
    add("mr_near0", mr, mode="near-lossless", max_error=0)
    add("mr_lossy_psnr", mr, mode="lossy", psnr=40.0)
    add("mr_lossy_roi3_ecc", mr, mode="lossy", psnr=35.0, roi=roi_mr, roi_max_error=3, ecc="low")
    add("mr_lossy_denoise", mr, mode="lossy", bpp=0.7, preprocess="denoise")
    add("mr_lossless_ecc_medium", mr, ecc="medium")
    add("ct_lossless_tile32", ct_img, tile_size=32)
    add("ct_lossy_roi0_tile32", ct_img, mode="lossy", bpp=0.6, roi=roi_ct, tile_size=32)
    add("emri_lossless", emri[:4])
    add("emri_lossy_psnr", emri[:3], mode="lossy", psnr=45.0)
    add("us_near3", us, mode="near-lossless", max_error=3)
    add("us_lossy_bpp_ecc", us, mode="lossy", bpp=0.5, ecc="low")
    add("zyxc_lossless", np.arange(2 * 5 * 7 * 3, dtype=np.uint8).reshape(2, 5, 7, 3) * 3)
    add("bits1_lossless", (np.arange(30 * 17).reshape(30, 17) % 3 == 0).astype(np.uint8), bits_stored=1)
    add("int16_signed_lossy", (np.add.outer(np.arange(33), np.arange(29)) * 61 - 2000).astype(np.int16),
        mode="lossy", bpp=2.0)
    golden = ROOT / "tests" / "golden"
    if golden.is_dir():
        for p in sorted(golden.glob("*")):
            if p.is_file() and p.stat().st_size <= 1 << 20:
                b = p.read_bytes()
                if b[:8] in (ct.MAGIC, ECC_MAGIC):
                    seeds.append((f"golden_{p.name}", b))
    return seeds


# ----------------------------------------------------- stream (de)construction

# the header's fixed fields, by name, as the format lists them (codec_core/format.py)
_FIXED = struct.Struct("<" + "".join(code for _, code in HEADER_FIELDS))
FIELDS = [name for name, _ in HEADER_FIELDS]
_FMT = _FIXED.format[1:]
#: Structured mutations of a parsed stream (Mutator.m_NAME), by a uniform draw k: the
#: first whose bound k is below.
_STRUCTURED = ((0.2, "field"), (0.45, "geometry"), (0.55, "steps"), (0.85, "segment"), (0.92, "index"))
_RANGES = {"B": (0, 255), "H": (0, 65535), "I": (0, 2**32 - 1), "i": (-2**31, 2**31 - 1)}


class Parsed:
    """A plain stream (version 1, 2 or 3) split into fields, steps, multipliers and segments."""

    def __init__(self, data: bytes):
        self.index_override: list | None = None   # (len, crc) pairs written as is
        self.extra_header = b""
        self.body_cut: int | None = None         # header body cut to this length (CRC still fixed)
        if data[8] >= 3:
            self._init_v3(data)
            return
        hlen = struct.unpack_from("<I", data, 9)[0]
        body = data[13:13 + hlen]
        self.version = data[8]
        self.fields = dict(zip(FIELDS, _FIXED.unpack_from(body, 0)))
        pos = _FIXED.size
        ns = body[pos]
        self.steps = list(struct.unpack_from(f"<{ns}f", body, pos + 1))
        pos += 1 + 4 * ns
        nc = body[pos]
        self.mult = list(struct.unpack_from(f"<{nc}f", body, pos + 1))
        pos += 1 + 4 * nc
        self.chan: list = []              # v2: per-channel step multipliers
        if self.version >= 2:
            nch = body[pos]
            self.chan = list(struct.unpack_from(f"<{nch}f", body, pos + 1))
            pos += 1 + 4 * nch
        self.side = []                    # value table, importance map (header side data)
        for _ in range(2):
            n = struct.unpack_from("<I", body, pos)[0]
            self.side.append(body[pos + 4:pos + 4 + n])
            pos += 4 + n
        idx = [(n, crc) for n, crc in ct._unpack_index(body, pos, self.version)]
        off = 13 + hlen + 4
        self.segments = []
        for n, _ in idx:
            self.segments.append(data[off:off + n])
            off += n
        self.trailer = data[off:]

    def _init_v3(self, data: bytes) -> None:
        """v3: the container parses the (valid) seed; fields kept by their v2 names."""
        h, off = ct.parse_header(data, None, allow_truncated=True)
        self.version = 3
        self.fields = {name: getattr(h, name) for name in FIELDS}
        self.steps, self.mult, self.chan = list(h.steps), list(h.class_mult), list(h.channel_mult)
        self.side = [h.value_table, h.class_map]
        self.segments = []
        for n, _ in h.segments:
            self.segments.append(data[off:off + n])
            off += n
        self.trailer = data[off:]

    def _body_v3(self, idx: list) -> bytes:
        """A v3 header body of whatever the fields hold (wrapped into their ranges)."""
        body = bytearray()
        for name, kind in HEADER_FIELDS_V3:
            v = int(self.fields[name])
            body += bytes([v & 255]) if kind == "u8" else ct.varint(
                v % 2**32 if kind == "uv" else (2 * v if v >= 0 else -2 * v - 1) % 2**33)
        values = {**self.fields, "steps": self.steps, "class_mult": self.mult, "channel_mult": self.chan,
                  "value_table": self.side[0], "class_map": self.side[1]}
        fields = []
        for key in sorted(OPTIONAL_FIELDS):
            name, kind, default = OPTIONAL_FIELDS[key]
            v = values[name]
            if v == default:
                continue
            if kind == "steps":   # any floats: their codes as they come (a step below the smallest code too)
                codes = [step_code(x) if math.isfinite(x) else 0xFFFF for x in v]
                top = max(codes)
                data = struct.pack("<H", top) + bytes(min(255, (top - c) // 32) for c in codes)
            elif kind == "uv":
                data = ct.varint(int(v) % 2**32)
            elif kind == "f32":
                data = struct.pack("<f", v)
            elif kind == "f32s":
                data = struct.pack(f"<{len(v)}f", *v)
            else:
                data = bytes(v)
            fields.append(ct.varint(key) + ct.varint(len(data)) + data)
        body += ct.varint(len(fields)) + b"".join(fields)
        return bytes(body) + ct.varint(len(idx)) + ct.index_entries(idx)

    def build(self, fix_header_crc: bool = True, fix_segment_crcs: bool = True) -> bytes:
        if self.version >= 3:
            return self._build_v3(fix_header_crc, fix_segment_crcs)
        vals = []
        for name, code in zip(FIELDS, _FMT):
            v = self.fields[name]
            if code in _RANGES:
                lo, hi = _RANGES[code]
                v = int(v) % (hi - lo + 1) + lo if not lo <= int(v) <= hi else int(v)
            vals.append(v)
        body = _FIXED.pack(*vals)
        body += struct.pack("<B", len(self.steps) & 255) + struct.pack(f"<{len(self.steps)}f", *self.steps)
        body += struct.pack("<B", len(self.mult) & 255) + struct.pack(f"<{len(self.mult)}f", *self.mult)
        if self.version >= 2:
            body += struct.pack("<B", len(self.chan) & 255) + struct.pack(f"<{len(self.chan)}f", *self.chan)
        for blob in self.side:
            body += struct.pack("<I", len(blob)) + blob
        if self.index_override is not None:
            idx = self.index_override
        else:
            idx = [(len(s), zlib.crc32(s) if fix_segment_crcs else 0) for s in self.segments]
        idx = [(int(n) & 0xFFFFFFFF, int(c) & 0xFFFFFFFF) for n, c in idx]
        if self.version >= 2:
            body += struct.pack("<I", len(idx)) + ct.index_entries(idx)
        else:
            body += struct.pack("<I", len(idx)) + np.array(idx, "<u4").reshape(-1).tobytes()
        body += self.extra_header
        if self.body_cut is not None:
            body = body[:self.body_cut]
        prefix = ct.MAGIC + struct.pack("<BI", self.version, len(body))
        crc = zlib.crc32(prefix[8:] + body)
        if not fix_header_crc:
            crc ^= 0x1
        return prefix + body + struct.pack("<I", crc) + b"".join(self.segments) + self.trailer

    def _index(self, fix_segment_crcs: bool) -> list:
        if self.index_override is not None:
            idx = self.index_override
        else:
            idx = [(len(s), zlib.crc32(s) if fix_segment_crcs else 0) for s in self.segments]
        return [(int(n) & 0xFFFFFFFF, int(c) & 0xFFFFFFFF) for n, c in idx]

    def _build_v3(self, fix_header_crc: bool, fix_segment_crcs: bool) -> bytes:
        body = self._body_v3(self._index(fix_segment_crcs)) + self.extra_header
        if self.body_cut is not None:
            body = body[:self.body_cut]
        head = bytes([self.version]) + ct.varint(len(body)) + body
        crc = zlib.crc32(head) ^ (0 if fix_header_crc else 1)
        return ct.MAGIC + head + struct.pack("<I", crc) + b"".join(self.segments) + self.trailer

    def copy(self) -> "Parsed":
        new = object.__new__(Parsed)
        new.__dict__.update(self.__dict__)
        new.fields, new.steps, new.mult, new.segments = (dict(self.fields), list(self.steps), list(self.mult),
                                                          list(self.segments))
        new.side = list(self.side)
        new.chan = list(self.chan)
        return new

    def segment_count(self) -> int:
        f = self.fields
        try:
            tiles = -(-f["rows"] // f["tile_rows"]) * -(-f["cols"] // f["tile_cols"])
        except ZeroDivisionError:
            return len(self.segments)
        per = f["levels"] + 1 + (1 if f["flags"] & 4 else 0)
        return f["frames"] * tiles * f["channels"] * per


def unwrap_ecc(data: bytes) -> bytes | None:
    from codec_core import ecc
    try:
        return ecc.unprotect(data, strict=True)[0]
    except Exception:
        return None


# ------------------------------------------------------------------- mutator

INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 127, 128, 255, 256, 511, 512, 513,
               1023, 1024, 4095, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, -1, -2**31]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e-45, 1e30, 3.4e38, float("inf"), float("-inf"),
          float("nan"), 2.0, 1000.0, -1e-7]


class Mutator:
    def __init__(self, seeds: list[tuple[str, bytes]], rng: random.Random):
        self.rng = rng
        self.seeds = seeds
        self.plain: list[tuple[str, bytes, bool]] = []     # (name, plain bytes, was ecc)
        for name, b in seeds:
            if b[:8] == ECC_MAGIC:
                p = unwrap_ecc(b)
                if p is not None:
                    self.plain.append((name, p, True))
            else:
                self.plain.append((name, b, False))
        self.parsed = {name: Parsed(p) for name, p, _ in self.plain}
        self.all_segments = [s for p in self.parsed.values() for s in p.segments]

    # -- helpers
    def _int(self, orig: int) -> int:
        r = self.rng
        c = r.random()
        if c < 0.35:
            return r.choice(INTERESTING)
        if c < 0.6:
            return orig + r.choice([-1, 1, -2, 2, 8, -8])
        if c < 0.75:
            return orig * r.choice([2, 3, 4, 16, 256]) or 1
        if c < 0.85:
            return orig // r.choice([2, 3, 4])
        return r.getrandbits(r.choice([8, 16, 32]))

    def _bytes_mut(self, b: bytes, n: int | None = None) -> bytes:
        r = self.rng
        b = bytearray(b)
        for _ in range(n or r.choice([1, 1, 1, 2, 4, 16])):
            c = r.random()
            if not b:
                b.extend(r.randbytes(r.randint(1, 8)))
                continue
            i = r.randrange(len(b))
            if c < 0.35:
                b[i] ^= 1 << r.randrange(8)
            elif c < 0.55:
                b[i] = r.choice([0, 255, 0x7F, 0x80, r.randrange(256)])
            elif c < 0.65:
                del b[i:i + r.randint(1, 16)]
            elif c < 0.75:
                b[i:i] = r.randbytes(r.randint(1, 16))
            elif c < 0.82:
                del b[i:]
            elif c < 0.9:
                j = r.randrange(len(b))
                k = r.randint(1, 32)
                b[i:i + k] = b[j:j + k]
            else:
                b[i:i + 4] = struct.pack("<I", r.choice(INTERESTING) & 0xFFFFFFFF)
        return bytes(b)

    # -- structure-aware mutations of a parsed stream
    def m_field(self, p: Parsed):
        name = self.rng.choice(FIELDS)
        code = _FMT[FIELDS.index(name)]
        if code == "f":
            p.fields[name] = self.rng.choice(FLOATS)
        else:
            p.fields[name] = self._int(int(p.fields[name]))

    def m_geometry(self, p: Parsed):
        """Change dims / tiles / levels / flags / channels together; keep the index consistent."""
        f, r = p.fields, self.rng
        for _ in range(r.randint(1, 3)):
            what = r.choice(["rows", "cols", "frames", "tile", "levels", "flags", "channels", "swap", "dims"])
            if what in ("rows", "cols", "frames"):
                f[what] = max(1, r.choice([1, 2, 3, 5, 17, 64, 65, 127, 511, 512, 513, 1000, 2048, 4097,
                                            f[what] * 2, f[what] + 1, max(1, f[what] - 1)]))
            elif what == "tile":
                t = r.choice([1, 2, 3, 8, 16, 31, 32, 64, 512, 4096, 65536])
                f["tile_rows" if r.random() < 0.5 else "tile_cols"] = t
                if r.random() < 0.5:
                    f["tile_rows"] = f["tile_cols"] = t
            elif what == "levels":
                f["levels"] = r.choice([0, 1, 2, 5, 6, 11, 12, 13, f["levels"] + 1, max(0, f["levels"] - 1)])
                if f["mode"] == 2:
                    p.steps = (p.steps + [r.choice(FLOATS[2:7]) for _ in range(40)])[:1 + 3 * f["levels"]]
            elif what == "flags":
                f["flags"] ^= 1 << r.randrange(3)
                if f["flags"] & 4 and not f["roi_block"]:
                    f["roi_block"] = r.choice([1, 8, 16, 4096])
                if f["flags"] & 4 and not p.mult:
                    p.mult = [2.0, 1.0, 1.0]
            elif what == "channels":
                f["channels"] = 4 - f["channels"] if f["channels"] in (1, 3) else 1
                f["axes"] = {0: 1, 1: 0, 2: 3, 3: 2, 4: 1}.get(f["axes"], 0)
                f["colour"] = 1 if f["channels"] == 3 else 0
                if p.chan and r.random() < 0.8:
                    p.chan = [1.0] * f["channels"]
            elif what == "swap":
                f["rows"], f["cols"] = f["cols"], f["rows"]
                f["tile_rows"], f["tile_cols"] = f["tile_cols"], f["tile_rows"]
            else:
                n = r.choice([1, 2, 3, 7, 64, 300, 2049, 10000, 65536, 100000])
                f["rows"], f["cols"], f["tile_rows"], f["tile_cols"] = n, r.choice([1, n, 5]), n, n
        self._fit_segments(p)

    def _fit_segments(self, p: Parsed):
        need = p.segment_count()
        if need > 2000:
            return  # leave inconsistent: too many tiles for a small input
        segs = p.segments
        pool = segs or self.all_segments
        while len(segs) < need:
            c = self.rng.random()
            segs.append(self.rng.choice(pool) if c < 0.6 else b"\x00" if c < 0.8 else self.rng.randbytes(
                self.rng.randint(0, 12)))
        del segs[need:]

    def m_steps(self, p: Parsed):
        r = self.rng
        lst = r.choice([p.steps] * 6 + [x for x in (p.mult, p.chan) if x] * 2 or [p.steps])
        c = r.random()
        if c < 0.6 and lst:
            lst[r.randrange(len(lst))] = r.choice(FLOATS)
        elif c < 0.8 and lst:
            v = r.choice(FLOATS)
            for i in range(len(lst)):
                lst[i] = v
        elif c < 0.9:
            lst.append(r.choice(FLOATS))
        elif lst:
            lst.pop()

    def m_segment(self, p: Parsed):
        r = self.rng
        if not p.segments:
            p.segments.append(r.randbytes(r.randint(0, 8)))
            return
        i = r.randrange(len(p.segments))
        s = p.segments[i]
        c = r.random()
        if c < 0.45:
            p.segments[i] = self._bytes_mut(s)
        elif c < 0.55:
            p.segments[i] = s[:r.randrange(len(s) + 1)]
        elif c < 0.62:
            p.segments[i] = s + r.randbytes(r.randint(1, 64))
        elif c < 0.72:
            p.segments[i] = r.choice(self.all_segments)
        elif c < 0.77:
            p.segments[i] = r.choice([b"", b"\x00", b"\xff" * 8, b"\x80" * 6, r.randbytes(r.randint(1, 40))])
        elif c < 0.84:
            j = r.randrange(len(p.segments))
            p.segments[i], p.segments[j] = p.segments[j], p.segments[i]
        elif c < 0.9:
            # varint length field of the arithmetic part
            n = r.choice([0, 1, 5, len(s), len(s) + 1, 2**31, 2**40, r.getrandbits(20)])
            var = bytearray()
            while True:
                var.append((n & 0x7F) | (0x80 if n >> 7 else 0))
                n >>= 7
                if not n:
                    break
            p.segments[i] = bytes(var) + s[1:]
        else:
            self._special_segment(p)

    def _special_segment(self, p: Parsed):
        """Fabricated value table / importance map (header side data); in a region
        stream, a forged region map (its zlib bombs took gigabytes before stop 36)."""
        r, f = self.rng, p.fields
        if f["flags"] & FLAG_REGIONS and p.segments and r.random() < 0.7:
            self._forged_region_map(p)
        elif f["flags"] & 2 and r.random() < 0.5:
            n = r.choice([1, 2, 5, 255, 65536, 2**32 - 1, r.getrandbits(16)])
            first = r.choice([f["vmin"], f["vmin"] - 1, f["vmax"], 0, -2**31])
            gaps = np.frombuffer(r.randbytes(4 * min(n, 4096)), "<u4") % r.choice([1, 2, 100, 2**32 - 1])
            p.side[0] = struct.pack("<iI", first, n) + zlib.compress(gaps.astype("<u4").tobytes())
        elif f["flags"] & 4 and r.random() < 0.3:
            # a whole map of background for every frame the header claims (up to 16 MB before
            # zlib): one frame decoded once inflated them all (stop 36)
            b = max(1, int(f["roi_block"]))
            size = min(int(f["frames"]) * -(-int(f["rows"]) // b) * -(-int(f["cols"]) // b), 1 << 24)
            p.side[1] = zlib.compress(bytes(size), 9)
        elif f["flags"] & 4:
            size = r.choice([0, 1, 10, 64, 1000, 100000])
            vals = bytes(r.choice([0, 1, 2, 2, 3, 255]) for _ in range(min(size, 2000))) * (1 + size // 2000)
            p.side[1] = zlib.compress(vals[:size])

    def _forged_region_map(self, p: Parsed):
        """The region block's map replaced: zlib of zeros up to the most a map could
        claim (10 bytes a pixel), of one valid row repeated (a map that inflates far and
        parses), or of random bytes; the block size sometimes 1 (a map of every pixel)."""
        from codec_core import regions

        r, f = self.rng, p.fields
        try:
            rb = regions.unpack_block(p.segments[0])
        except Exception:  # noqa: BLE001 - a block damaged by an earlier mutation
            return
        rb.block = r.choice([1, 1, 2, rb.block])
        cols = -(-int(f["cols"]) // rb.block)
        pixels = int(f["frames"]) * -(-int(f["rows"]) // rb.block) * cols
        n = max(0, min(pixels * (2 * cols + 1) * 5 + 16, 1 << 24))  # (fields an earlier mutation made negative)
        c = r.random()
        if c < 0.4:
            raw = bytes(n)
        elif c < 0.8:
            row = b"\x02" + bytes([r.choice([0, 1, 2, 3])]) + ct.varint(cols)
            raw = (row * (n // len(row) + 1))[:n]
        else:
            raw = r.randbytes(min(n, 4096))
        rb.map_stream = zlib.compress(raw, 9)
        p.segments[0] = rb.pack()

    def m_index(self, p: Parsed):
        r = self.rng
        idx = [(len(s), zlib.crc32(s)) for s in p.segments]
        c = r.random()
        if c < 0.5 and idx:
            i = r.randrange(len(idx))
            idx[i] = (self._int(idx[i][0]) & 0xFFFFFFFF, idx[i][1])
        elif c < 0.7:
            idx = idx + [(r.choice([0, 1, 2**32 - 1]), 0)] * r.randint(1, 3)
        elif idx:
            idx = idx[:r.randrange(len(idx))]
        p.index_override = idx

    # -- top level
    def mutate(self) -> tuple[bytes, str]:
        r = self.rng
        name, plain, was_ecc = r.choice(self.plain)
        c = r.random()
        if c < 0.15:
            raw = r.choice(self.seeds)[1]
            if r.random() < 0.25:   # splice two seeds
                other = r.choice(self.seeds)[1]
                i, j = r.randrange(len(raw) + 1), r.randrange(len(other) + 1)
                return raw[:i] + other[j:], f"{name}:splice"
            return self._bytes_mut(raw), f"{name}:raw"
        if c < 0.2 and was_ecc or c < 0.22:
            # ECC wrapper: damage the protected bytes of an ECC seed
            from codec_core import ecc
            level = r.choice(list(ecc.ECC_LEVELS))
            prot = ecc.protect(plain, level) if not was_ecc or r.random() < 0.5 else next(
                b for n, b in self.seeds if n == name)
            return self._bytes_mut(prot, r.choice([1, 4, 16, 64])), f"{name}:ecc-damage"
        p = self.parsed[name].copy()
        ops = []
        fix_h, fix_s = True, True
        for _ in range(r.choice([1, 1, 1, 2, 2, 3])):
            k = r.random()
            # the structured mutations, each below its threshold of k
            op = next((name for below, name in _STRUCTURED if k < below), None)
            if op is not None:
                getattr(self, f"m_{op}")(p)
            elif k < 0.96:
                p.trailer = r.randbytes(r.randint(0, 16))
                op = "trailer"
            else:
                if r.random() < 0.5:
                    p.body_cut = r.randrange(_FIXED.size + 13 + 4 * (len(p.steps) + len(p.mult) + len(p.chan)))
                else:
                    p.extra_header = r.randbytes(r.randint(1, 12))
                op = "header-length"
            ops.append(op)
        if r.random() < 0.03:
            fix_h = False
        if r.random() < 0.05:
            fix_s = False
        out = p.build(fix_header_crc=fix_h, fix_segment_crcs=fix_s)
        if r.random() < 0.05:
            out = self._bytes_mut(out, 1)
            ops.append("raw")
        if was_ecc and r.random() < 0.3 or r.random() < 0.03:
            from codec_core import ecc
            out = ecc.protect(out, r.choice(list(ecc.ECC_LEVELS)))
            ops.append("reprotect")
        return out, f"{name}:" + "+".join(ops)


# ------------------------------------------------------------------- targets

class Adapters:
    """The toolkit adapters, if importable, with their documented error types."""

    def __init__(self):
        self.pil = self.numcodecs = self.pydicom = None
        try:
            from PIL import Image
            from hybrid_plugins import pillow_plugin
            pillow_plugin.register()
            Image.MAX_IMAGE_PIXELS = FUZZ_MAX_PIXELS
            self.pil = (Image, (OSError, Image.DecompressionBombError))
        except Exception:
            pass
        try:
            from hybrid_plugins.numcodecs_codec import HybridCodec
            self.numcodecs = HybridCodec()
        except Exception:
            pass
        try:
            import pydicom
            from pydicom.encaps import encapsulate

            import hybrid_plugins
            hybrid_plugins.register()
            ds = pydicom.dcmread(_dicom_path("MR_small.dcm"))
            ds.compress(hybrid_plugins.HLC_TRANSFER_SYNTAX_UID, mode="lossless")
            self.pydicom = (ds, encapsulate)
        except Exception:
            pass

    def names(self) -> list[str]:
        return [n for n, v in (("pillow", self.pil), ("numcodecs", self.numcodecs), ("pydicom", self.pydicom))
                if v is not None]

    def run(self, name: str, data: bytes) -> str | None:
        """Run one adapter; returns an error class name if a documented error was raised."""
        if name == "pillow":
            Image, ok = self.pil
            try:
                with Image.open(io.BytesIO(data)) as im:
                    im.load()
                    if getattr(im, "n_frames", 1) > 1:
                        im.seek(im.n_frames - 1)
                        im.load()
            except ok as e:
                return "pillow:" + type(e).__name__
            return None
        if name == "numcodecs":
            try:
                self.numcodecs.decode(data)
            except hlc.HlcError as e:
                return "numcodecs:" + type(e).__name__
            return None
        ds, encapsulate = self.pydicom
        if len(data) < 2:
            return "pydicom:skipped"  # pydicom's encapsulate() itself refuses fragments under 2 bytes
        ds.PixelData = encapsulate([data])
        try:
            ds.pixel_array  # noqa: B018
        except RuntimeError as e:
            # pydicom wraps plugin errors in RuntimeError; the plugin turns every
            # HlcError into a message naming the frame. Anything else leaked.
            msg = str(e)
            if "cannot be decoded" in msg or "HLC frame is" in msg or "HLC" in msg.partition("hlc:")[2]:
                return "pydicom:RuntimeError"
            raise
        finally:
            for attr in ("_pixel_array", "_pixel_id"):
                if hasattr(ds, attr):
                    try:
                        setattr(ds, attr, None if attr == "_pixel_array" else {})
                    except Exception:
                        pass
        return None


def _dicom_path(name: str) -> str:
    from pydicom.data import get_testdata_file
    return get_testdata_file(name)


def claimed_samples(data: bytes) -> tuple[int, int, int]:
    """(samples, frames, levels) the header claims, or zeros if info() refuses it."""
    try:
        m = hlc.info(data)
    except Exception:
        return 0, 0, 0
    return int(m["frames"]) * int(m["rows"]) * int(m["cols"]) * int(m["channels"]), int(m["frames"]), int(
        m["levels"])


class Watchdog(threading.Thread):
    """Notes the input of a call running over the time limit; exits on a runaway."""

    def __init__(self, hard_limit: float = 120.0):
        super().__init__(daemon=True)
        self.started = None
        self.data = None
        self.hard = hard_limit
        self.reported = False

    def arm(self, data):
        self.data, self.started = data, time.perf_counter()

    def disarm(self):
        self.started = None

    def run(self):
        while True:
            time.sleep(0.25)
            s = self.started
            if s is not None and time.perf_counter() - s > self.hard:
                save_corpus(self.data, "hang")
                sys.stderr.write(f"watchdog: a call ran over {self.hard} s; input saved, exiting\n")
                os._exit(3)


def save_corpus(data: bytes, kind: str) -> Path:
    CORPUS.mkdir(parents=True, exist_ok=True)
    path = CORPUS / f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}.hlc"
    if not path.exists():
        path.write_bytes(data)
    return path


def internal_cause(e: BaseException) -> BaseException | None:
    """The non-HlcError an HlcError was raised from (decode's safety net), if any."""
    c = e.__cause__
    while c is not None:
        if not isinstance(c, hlc.HlcError):
            return c
        c = c.__cause__
    return None


def where_of(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    for fr in reversed(tb):
        if "codec_core" in fr.filename or "hybrid_plugins" in fr.filename:
            return f"{Path(fr.filename).name}:{fr.lineno}"
    return f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"


# ----------------------------------------------------------------------- run

class Stats:
    def __init__(self):
        self.executions = 0
        self.inputs = 0
        self.outcomes = collections.Counter()
        self.crashes = collections.Counter()
        self.internal = collections.Counter()
        self.hangs = 0
        self.overalloc = 0
        self.max_alloc = 0
        self.max_alloc_what = ""
        self.max_time = 0.0
        self.max_time_what = ""
        self.saved: list[str] = []
        self.ops = collections.Counter()
        self.deep = 0   # inputs that passed the header and segment CRC checks


def one_call(stats: Stats, wd: Watchdog, label: str, fn, data: bytes, claim: int, allow_value_error=False):
    """Run one target call with the watchdog, allocation tracking and classification."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    wd.arm(data)
    t0 = time.perf_counter()
    outcome = "ok"
    exc = None
    try:
        res = fn()
        if isinstance(res, str):
            outcome = res
    except hlc.HlcError as e:
        outcome = type(e).__name__
        cause = internal_cause(e)
        if cause is not None:
            key = f"{type(cause).__name__} at {where_of(cause)}"
            if stats.internal[key] == 0:
                stats.saved.append(str(save_corpus(data, "internal")))
            stats.internal[key] += 1
    except ValueError as e:
        if allow_value_error and (str(e).startswith("level=") or str(e).startswith("frame=")):
            outcome = "ValueError(argument)"
        else:
            exc = e
    except Exception as e:  # noqa: BLE001 - the point of the harness
        exc = e
    dt = time.perf_counter() - t0
    wd.disarm()
    peak = tracemalloc.get_traced_memory()[1] - base
    stats.executions += 1
    if exc is not None:
        key = f"{label}: {type(exc).__name__} at {where_of(exc)}: {str(exc)[:120]}"
        if not any(k.split(": ")[1] == key.split(": ")[1] for k in stats.crashes):
            stats.saved.append(str(save_corpus(data, "crash")))
        stats.crashes[key] += 1
        outcome = "CRASH " + type(exc).__name__
    stats.outcomes[f"{label} -> {outcome}"] += 1
    if peak > stats.max_alloc:
        stats.max_alloc, stats.max_alloc_what = peak, f"{label}, claim {claim} samples, {len(data)} B input"
    bound = ALLOC_SLACK + ALLOC_PER_SAMPLE * min(claim, FUZZ_MAX_PIXELS) + 32 * len(data)
    if peak > bound:
        stats.overalloc += 1
        stats.saved.append(str(save_corpus(data, "alloc")))
    if dt > stats.max_time:
        stats.max_time, stats.max_time_what = dt, f"{label}, claim {claim} samples, {len(data)} B input"
    if dt > TIMEOUT:
        # confirm: the machine is shared (wall time is noisy); a hang is a re-run that
        # burns over TIMEOUT of CPU (or 5x in wall time)
        t1, c1 = time.perf_counter(), time.process_time()
        try:
            fn()
        except Exception:
            pass
        if time.process_time() - c1 > TIMEOUT or time.perf_counter() - t1 > 5 * TIMEOUT:
            stats.hangs += 1
            stats.saved.append(str(save_corpus(data, "hang")))
        else:  # kept for a look, not counted: a slow first call that a re-run did not confirm
            save_corpus(data, "slow")


def fuzz_one(stats: Stats, wd: Watchdog, rng: random.Random, data: bytes, adapters: Adapters | None,
             adapter_rate: float) -> None:
    meta = {}

    def _info():
        meta.update(hlc.info(data))

    one_call(stats, wd, "info", _info, data, 0)
    claim, frames, levels = 0, 0, 0
    if meta:
        frames, levels = int(meta["frames"]), int(meta["levels"])
        claim = frames * int(meta["rows"]) * int(meta["cols"]) * int(meta["channels"])
    stats.inputs += 1
    if claim:
        stats.deep += 1
    # decode with random parameters, mostly valid for the claimed header
    level = rng.randint(0, levels) if rng.random() < 0.9 else rng.randint(0, 14)
    frame = None
    if frames and rng.random() < 0.3:
        frame = rng.randrange(frames) if rng.random() < 0.9 else frames + rng.randint(0, 2)
    strict = rng.random() < 0.6
    threads = 1 if rng.random() < 0.85 else 2
    one_call(stats, wd, "decode", lambda: hlc.decode(data, level=level, frame=frame, strict=strict,
                                                     threads=threads), data,
             claim // (frames or 1) if frame is not None else claim, allow_value_error=True)
    if adapters is not None and rng.random() < adapter_rate:
        name = rng.choice(adapters.names())
        one_call(stats, wd, name, lambda: adapters.run(name, data), data, claim)


def replay(paths: list[Path], adapters: Adapters | None = None) -> list[str]:
    """Run every target on every file; returns failures (used by the regression test)."""
    failures = []
    for path in paths:
        data = path.read_bytes()
        calls = [("info", lambda: hlc.info(data))]
        for level in range(0, 7):
            for strict in (True, False):
                calls.append((f"decode(level={level}, strict={strict})",
                              lambda level=level, strict=strict: hlc.decode(data, level=level, strict=strict,
                                                                            threads=1)))
        calls.append(("decode(frame=0, threads=2)", lambda: hlc.decode(data, frame=0, threads=2)))
        if adapters is not None:
            for n in adapters.names():
                calls.append((n, lambda n=n: adapters.run(n, data)))
        for what, fn in calls:
            t0 = time.perf_counter()
            try:
                fn()
            except hlc.HlcError:
                pass
            except ValueError as e:
                if not (str(e).startswith("level=") or str(e).startswith("frame=")):
                    failures.append(f"{path.name}: {what}: ValueError: {e}")
            except Exception as e:  # noqa: BLE001
                failures.append(f"{path.name}: {what}: {type(e).__name__}: {e}")
            if time.perf_counter() - t0 > TIMEOUT * 2:
                failures.append(f"{path.name}: {what}: took {time.perf_counter() - t0:.1f} s")
    return failures


def run(iterations: int, seed: int, adapter_rate: float = 0.02, quiet: bool = False,
        small_seeds: bool = False, time_limit: float | None = None) -> Stats:
    warnings.simplefilter("ignore")
    _api.MAX_PIXELS = FUZZ_MAX_PIXELS
    hlc.MAX_PIXELS = FUZZ_MAX_PIXELS
    rng = random.Random(seed)
    seeds = make_seeds(small=small_seeds)
    mut = Mutator(seeds, rng)
    adapters = Adapters() if adapter_rate > 0 else None
    stats = Stats()
    stats.seed_count = len(seeds)
    stats.adapters = adapters.names() if adapters else []
    wd = Watchdog()
    wd.start()
    tracemalloc.start(1)
    # the seeds themselves first
    for _, b in seeds:
        fuzz_one(stats, wd, rng, b, adapters, 1.0)
    t_start = time.perf_counter()
    last = t_start
    while stats.executions < iterations:
        data, how = mut.mutate()
        stats.ops[how.split(":", 1)[1]] += 1
        fuzz_one(stats, wd, rng, data, adapters, adapter_rate)
        now = time.perf_counter()
        if not quiet and now - last > 30:
            last = now
            rate = stats.executions / (now - t_start)
            print(f"{stats.executions} execs, {rate:.0f}/s, crashes {sum(stats.crashes.values())}, "
                  f"internal {sum(stats.internal.values())}, hangs {stats.hangs}, overalloc {stats.overalloc}, "
                  f"max rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB", flush=True)
        if time_limit and now - t_start > time_limit:
            break
    stats.elapsed = time.perf_counter() - t_start
    stats.cpu = time.process_time()
    tracemalloc.stop()
    return stats


def write_summary(stats: Stats, cmd: str, path: Path = RESULTS) -> None:
    rate = stats.executions / max(stats.elapsed, 1e-9)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    lines = [
        "# Fuzzing the HLC decoders", "",
        f"Command: `{cmd}`", "",
        f"- executions (target calls): **{stats.executions:,}** on {stats.inputs:,} inputs "
        f"({stats.seed_count} seed streams, adapters: {', '.join(stats.adapters) or 'none'})",
        f"- inputs whose header parsed (reached segment decoding): {stats.deep:,} "
        f"({100 * stats.deep / max(1, stats.inputs):.0f} %)",
        f"- wall time {stats.elapsed:.0f} s, {rate:.0f} executions/s on this machine "
        f"(one process, nice 19, 2 shared cores); process CPU {stats.cpu:.0f} s",
        f"- **exceptions other than HlcError / documented adapter errors: {sum(stats.crashes.values())}**",
        f"- **hangs (> {TIMEOUT:.0f} s, confirmed by a re-run): {stats.hangs}**",
        f"- **over-allocations** (traced peak > {ALLOC_SLACK >> 20} MiB + {ALLOC_PER_SAMPLE} B x claimed "
        f"samples + 32 x input size, pixel limit {FUZZ_MAX_PIXELS:,} samples): {stats.overalloc}",
        f"- max traced allocation of one call: {stats.max_alloc / 2**20:.1f} MiB ({stats.max_alloc_what})",
        f"- slowest call: {stats.max_time * 1e3:.0f} ms ({stats.max_time_what})",
        f"- process max RSS: {rss} MB",
        f"- internal errors caught by decode's safety net (HlcError raised from another exception; "
        f"not contract violations, but bugs): {sum(stats.internal.values())}", "",
    ]
    if stats.crashes:
        lines += ["## Crashes", "", "| count | target: exception |", "|---|---|"]
        lines += [f"| {n} | {k.replace('|', '/')} |" for k, n in stats.crashes.most_common()]
        lines.append("")
    if stats.internal:
        lines += ["## Internal errors behind HlcError", "", "| count | cause |", "|---|---|"]
        lines += [f"| {n} | {k} |" for k, n in stats.internal.most_common()]
        lines.append("")
    lines += ["## Outcomes by target", "", "| count | target -> result |", "|---|---|"]
    lines += [f"| {n:,} | {k} |" for k, n in sorted(stats.outcomes.items())]
    lines += ["", "## Mutations applied", "", "| count | mutation |", "|---|---|"]
    lines += [f"| {n:,} | {k} |" for k, n in stats.ops.most_common(25)]
    if stats.saved:
        lines += ["", "## Inputs saved to tests/corpus/", ""]
        lines += [f"- {Path(s).name}" for s in sorted(set(stats.saved))]
    lines += ["", "Limits of the method: tracemalloc sees numpy and Python allocations and the plane "
              "decoders' blocks (their scratch and the decoded image: Python's raw allocator), not the other "
              "C kernels' row-sized work buffers; a block the decoder's cache kept from an earlier input is "
              "not counted again; the watchdog measures wall time on a shared machine, so a call over the "
              "limit is re-run before it counts as a hang.", ""]
    # every run is logged, so that batches (kept under ~20 CPU minutes each) add up
    log_path = path.with_name("fuzz_runs.json")
    import json
    runs = json.loads(log_path.read_text()) if log_path.exists() and path == RESULTS else []
    runs.append({"command": cmd, "executions": stats.executions, "inputs": stats.inputs,
                 "crashes": sum(stats.crashes.values()), "crash_kinds": list(stats.crashes),
                 "hangs": stats.hangs, "overalloc": stats.overalloc,
                 "internal": sum(stats.internal.values()), "wall_s": round(stats.elapsed),
                 "cpu_s": round(stats.cpu), "max_alloc_mib": round(stats.max_alloc / 2**20, 1),
                 "date": time.strftime("%Y-%m-%d %H:%M")})
    if path == RESULTS:
        log_path.write_text(json.dumps(runs, indent=1))
    head = ["## All recorded runs (benchmarks/results/fuzz_runs.json)", "",
            "| date | executions | crashes | hangs | over-alloc | safety-net | wall s | CPU s | command |",
            "|---|---|---|---|---|---|---|---|---|"]
    head += [f"| {r['date']} | {r['executions']:,} | {r['crashes']} | {r['hangs']} | {r['overalloc']} | "
             f"{r['internal']} | {r['wall_s']} | {r['cpu_s']} | `{r['command']}` |" for r in runs]
    head += [f"| **total** | **{sum(r['executions'] for r in runs):,}** | {sum(r['crashes'] for r in runs)} | "
             f"{sum(r['hangs'] for r in runs)} | {sum(r['overalloc'] for r in runs)} | "
             f"{sum(r['internal'] for r in runs)} | {sum(r['wall_s'] for r in runs)} | "
             f"{sum(r['cpu_s'] for r in runs)} | |", "", "## Latest run", ""]
    lines[2:2] = head
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=100_000, help="target calls to run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--adapter-rate", type=float, default=0.02,
                    help="fraction of inputs also run through one adapter (Pillow, numcodecs, pydicom)")
    ap.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--replay", nargs="*", help="replay files (default: tests/corpus/*) and exit")
    ap.add_argument("--sanitized", action="store_true",
                    help="run with the compiled kernels built with AddressSanitizer and UBSan (fuzz/sanitized.py)")
    args = ap.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.sanitized and not os.environ.get(sanitized.ENV):
        # libasan must be preloaded before the interpreter starts: run this command again
        env = sanitized.environment(sanitized.build())
        os.execve(sys.executable, [sys.executable, __file__, *argv], env)
    if args.replay is not None:
        warnings.simplefilter("ignore")
        paths = [Path(p) for p in args.replay] or sorted(CORPUS.glob("*.hlc"))
        fails = replay(paths, Adapters())
        print("\n".join(fails) or f"{len(paths)} files: no failures")
        return 1 if fails else 0
    stats = run(args.iterations, args.seed, args.adapter_rate, time_limit=args.time_limit)
    cmd = "python fuzz/fuzz_decoders.py " + " ".join(argv)
    write_summary(stats, cmd, Path(args.out))
    print(Path(args.out).read_text())
    return 1 if stats.crashes or stats.hangs or stats.overalloc else 0


if __name__ == "__main__":
    sys.exit(main())
