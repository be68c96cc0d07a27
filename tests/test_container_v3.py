"""Format v3's lean container: varint header, optional fields by key, the backup rule."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import codec_core as hlc
from codec_core import container as ct
from codec_core.format import OPTIONAL_FIELDS, grid_steps, header_end, pack_steps, unpack_steps


def dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


def _split(data: bytes) -> tuple[ct.Header, list[bytes]]:
    h, start = ct.parse_header(data)
    offs = ct.segment_offsets(h, start)
    return h, [data[offs[i]:offs[i + 1]] for i in range(len(h.segments))]


def _repacked_with(data: bytes, key: int, field: tuple) -> bytes:
    """``data`` packed again with one more optional field under ``key``."""
    h, segs = _split(data)
    saved = dict(OPTIONAL_FIELDS)
    OPTIONAL_FIELDS[key] = field
    try:
        return ct.pack(h, segs)
    finally:
        OPTIONAL_FIELDS.clear()
        OPTIONAL_FIELDS.update(saved)


def test_a_small_lossy_stream_has_a_lean_header_and_no_copy():
    img = dicom("MR_small.dcm")                      # 64 x 64: 128 bytes at 0.25 bpp
    data = hlc.encode(img, mode="lossy", bpp=0.25, try_near_lossless=False)
    assert len(data) <= 128 and data[-4:] != ct.BACKUP_MARK
    assert header_end(data[:13]) <= 72               # v2: 151 bytes, and as many again at the end
    assert hlc.info(data)["version"] == 3 and hlc.decode(data).shape == img.shape


def test_unknown_ancillary_fields_are_skipped_and_unknown_critical_ones_refused():
    data = hlc.encode(dicom("CT_small.dcm"), mode="lossy", bpp=1.0)
    ancillary = _repacked_with(data, 99, ("rows", "uv", 0))
    assert np.array_equal(hlc.decode(ancillary), hlc.decode(data))
    critical = _repacked_with(data, 98, ("rows", "uv", 0))
    with pytest.raises(hlc.UnsupportedStreamError, match="critical header field"):
        hlc.decode(critical)


def test_optional_fields_out_of_order_are_damage():
    data = hlc.encode(dicom("CT_small.dcm"), mode="lossy", bpp=1.0)
    h, segs = _split(data)
    body = ct._pack_body(h)
    # swap the first two optional fields (steps key 4, recon_offset key 6)
    fixed_end = body.index(ct.varint(4) + ct.varint(2 + len(h.steps)))
    count = body[fixed_end - 1]
    steps_len = 2 + 2 + len(h.steps)
    a, b = body[fixed_end:fixed_end + steps_len], body[fixed_end + steps_len:fixed_end + steps_len + 6]
    swapped = body[:fixed_end] + b + a + body[fixed_end + steps_len + 6:]
    assert count >= 2 and len(swapped) == len(body)
    import zlib
    head = bytes([3]) + ct.varint(len(swapped)) + swapped
    bad = ct.MAGIC + head + zlib.crc32(head).to_bytes(4, "little") + b"".join(segs)
    with pytest.raises(hlc.CorruptStreamError, match="out of order"):
        hlc.decode(bad)


def test_the_backup_copy_where_one_damaged_byte_would_cost_more_than_one_tile():
    img = dicom("MR2_UNCR.dcm")[:512, :512]
    many = hlc.encode(img, mode="lossy", bpp=0.25, tile_size=256)   # 4 tiles: always a copy
    one = hlc.encode(img[:128, :128], mode="lossy", bpp=0.25)         # 1 tile, 512 bytes: no copy
    assert many[-4:] == ct.BACKUP_MARK and one[-4:] != ct.BACKUP_MARK
    for data, repaired in ((many, True), (one, False)):
        bad = bytearray(data)
        bad[12] ^= 0x5A                                               # inside the header body
        if repaired:
            assert np.array_equal(hlc.decode(bytes(bad)), hlc.decode(data))
        else:  # the stream's one tile is what is lost
            with pytest.raises(hlc.CorruptStreamError):
                hlc.decode(bytes(bad))


def test_ecc_asks_for_the_copy_and_big_single_tile_streams_keep_it():
    img = dicom("CT_small.dcm")
    lossless = hlc.encode(img)                                        # 13 kB, a 50-byte header
    assert lossless[-4:] == ct.BACKUP_MARK
    h, segs = _split(hlc.encode(img, mode="lossy", bpp=0.25))
    h.backup = True
    assert ct.pack(h, segs)[-4:] == ct.BACKUP_MARK
    from codec_core import ecc
    inner, _ = ecc.unprotect(hlc.encode(img, mode="lossy", bpp=0.25, ecc="low"))
    assert inner[-4:] == ct.BACKUP_MARK


def test_steps_are_stored_exactly_on_their_grid_and_never_finer():
    rng = np.random.default_rng(3)
    for _ in range(200):
        want = list(np.exp(rng.uniform(-12, 12)) * np.exp(rng.uniform(-3, 0, 10)))
        steps = grid_steps(want)
        assert all(s >= w for s, w in zip(steps, want, strict=True))
        assert all(s <= w * 1.035 for s, w in zip(steps, want, strict=True))
        assert unpack_steps(pack_steps(steps)) == steps and len(pack_steps(steps)) == 12
    with pytest.raises(ValueError):
        pack_steps([1.0, 0.3])                                        # 0.3: not on 1.0's grid


def test_steps_whose_product_with_the_multipliers_overflows_are_refused():
    """Each step and multiplier below 1e30 was accepted, and 1e29 x 9e29 overflowed
    float32 in the dequantisation: numpy's RuntimeWarnings leaked from decode (an error
    under -W error). The header check now bounds the product too."""
    import copy
    import warnings
    import zlib

    yy, xx = np.mgrid[:64, :64]
    img = (2000 + 1000 * np.sin(yy / 7.0) * np.cos(xx / 5.0)).astype(np.uint16)
    data = hlc.encode(img, mode="lossy", bpp=2, threads=1)
    h, start = ct.parse_header(data)
    offs = ct.segment_offsets(h, start)
    segs = [data[offs[i]:offs[i + 1]] for i in range(len(h.segments))]
    forged = copy.copy(h)
    forged.flags |= ct.FLAG_ROI
    forged.roi_block, forged.class_mult, forged.channel_mult = 1, [1e29] * 3, [9e29]
    forged.class_map = zlib.compress(bytes([2]) * 64 * 64)
    stream = ct.pack(forged, segs[:h.levels + 1] + [b""])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in (hlc.info, hlc.decode, lambda s: hlc.decode(s, strict=False)):
            with pytest.raises(hlc.CorruptStreamError, match="multipliers not finite"):
                call(stream)
    forged.channel_mult = [1.0]  # each factor as large, their product within float32: decodes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hlc.decode(ct.pack(forged, segs[:h.levels + 1] + [b""]), strict=False)[0].shape == (64, 64)


def test_one_damaged_byte_in_the_signature_or_version_is_damage_not_another_format():
    """A small one-tile stream has no header copy: one flipped byte in its signature or
    version byte answered NotHlcError or UnsupportedStreamError (a transfer sorting
    "damaged, retry" from "other format" would not retry); a newer version with its own
    valid CRC is still unsupported, and another format's signature still not HLC."""
    import struct
    import zlib

    from codec_core.errors import CorruptStreamError, NotHlcError, UnsupportedStreamError

    data = hlc.encode(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 1000, mode="lossy", bpp=1)
    for at in range(9):
        for flip in (0x01, 0x10, 0xFF):
            bad = bytearray(data)
            bad[at] ^= flip
            with pytest.raises(CorruptStreamError):
                hlc.decode(bytes(bad))
    newer = bytearray(data)
    newer[8] = 9
    end = header_end(bytes(newer)) - 4
    newer[end:end + 4] = struct.pack("<I", zlib.crc32(bytes(newer[8:end])))
    with pytest.raises(UnsupportedStreamError):
        hlc.decode(bytes(newer))
    for other in (b"\x89PNG\r\n\x1a\n", b"\x89HLM\r\n\x1a\n", b"\x00" * 8):
        with pytest.raises(NotHlcError):
            hlc.decode(other + data[8:])
