"""Reed–Solomon wrapper (codec_core.ecc): capacity edges, erasures, header damage, bad input."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from codec_core import ecc
from codec_core.errors import CorruptStreamError, HlcError, UncorrectableError

LEVELS = list(ecc.ECC_LEVELS)


def _payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _geo(prot: bytes) -> ecc._Geometry:
    header, geo, _ = ecc._find_header(prot)
    return geo


def _stream_offsets(geo: ecc._Geometry, col: int, rows: np.ndarray) -> np.ndarray:
    """Offsets in the protected stream of symbols ``rows`` of codeword ``col``."""
    rows = np.asarray(rows)
    body = np.where(rows < geo.k_eff, rows * geo.n_cw + col,
                    geo.payload_len + (rows - geo.k_eff) * geo.n_cw + col)
    assert np.all(body[rows < geo.k_eff] < geo.payload_len), "row in the zero padding"
    framed = body + 4 * (body // geo.chunk)
    return np.where(framed < geo.half, ecc._PREFIX + framed,
                    ecc._PREFIX + ecc._HDR_SIZE + framed)


def _flip(prot: bytes, offsets, rng: np.random.Generator) -> bytes:
    a = np.frombuffer(prot, np.uint8).copy()
    offsets = np.asarray(offsets)
    a[offsets] ^= rng.integers(1, 256, len(offsets), dtype=np.uint8)   # always a real change
    return a.tobytes()


# ------------------------------------------------------------------ codec primitives
@pytest.mark.parametrize("nsym", sorted(set(ecc.ECC_LEVELS.values()) | {ecc._HDR_NSYM}))
def test_parity_matches_reedsolo(nsym):
    import reedsolo
    rs = reedsolo.RSCodec(nsym)
    rng = np.random.default_rng(nsym)
    for ke in (1, 7, 255 - nsym):            # shortened and full codewords
        msgs = rng.integers(0, 256, (ke, 5), dtype=np.uint8)
        par = ecc._parity(msgs, nsym)
        for c in range(5):
            assert par[:, c].tobytes() == bytes(rs.encode(bytes(msgs[:, c])))[ke:]


@pytest.mark.parametrize("nsym", sorted(ecc.ECC_LEVELS.values()))
def test_parity_of_wide_matrices_matches_reedsolo(nsym):
    # the C kernel works on blocks of 1024 codewords: cross a block edge
    import reedsolo
    rs = reedsolo.RSCodec(nsym)
    msgs = np.random.default_rng(nsym).integers(0, 256, (255 - nsym, 1500), dtype=np.uint8)
    par = ecc._parity(msgs, nsym)
    for c in (0, 1023, 1024, 1499):
        assert par[:, c].tobytes() == bytes(rs.encode(bytes(msgs[:, c])))[255 - nsym:]


@pytest.mark.parametrize("nsym", sorted(ecc.ECC_LEVELS.values()))
def test_decoder_errors_and_erasures_at_capacity(nsym):
    rng = np.random.default_rng(100 + nsym)
    ke, m = 255 - nsym, 64
    msgs = rng.integers(0, 256, (ke, m), dtype=np.uint8)
    cw = np.ascontiguousarray(np.concatenate([msgs, ecc._parity(msgs, nsym)]).T)
    rx, erase = cw.copy(), np.zeros(cw.shape, bool)
    for r in range(m):
        rho = int(rng.integers(0, nsym + 1))
        nu = (nsym - rho) // 2                  # 2 * errors + erasures == nsym (or nsym-1)
        pos = rng.choice(255, rho + nu, replace=False)
        erase[r, pos[:rho]] = True
        rx[r, pos[:rho]] = rng.integers(0, 256, rho, dtype=np.uint8)
        rx[r, pos[rho:]] ^= rng.integers(1, 256, nu, dtype=np.uint8)
    fixed, ok, _ = ecc._correct(rx, nsym, erase)
    assert ok.all() and np.array_equal(fixed, cw)


# ------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("size", [0, 1, 2, 231, 232, 1000, 70_001])
def test_round_trip_clean(level, size):
    data = _payload(size, size)
    prot = ecc.protect(data, level)
    assert prot[:8] == b"\x89HLE\r\n\x1a\n" and ecc.is_protected(prot)
    out, rep = ecc.unprotect(prot)
    assert out == data
    assert (rep.level, rep.codewords_failed, rep.codewords_repaired, rep.bytes_corrected,
            rep.header_copies_damaged) == (level, 0, 0, 0, 0)
    info = ecc.peek(prot)
    assert info["ecc"] == level and info["protected_bytes"] == size
    assert info["ecc_overhead"] == pytest.approx(rep.parity_bytes / size if size else 0.0)


def test_medium_overhead_within_budget():
    info = ecc.peek(ecc.protect(_payload(65536), "medium"))
    assert info["ecc_overhead"] <= 0.13 and info["ecc_total_overhead"] <= 0.13


def test_unknown_level_is_value_error():
    for bad in ("ultra", "", None, 3, "MEDIUM"):
        with pytest.raises(ValueError, match="medium"):
            ecc.protect(b"abc", bad)


def test_plain_stream_is_not_protected():
    plain = b"\x89HLC\r\n\x1a\n" + _payload(5000)
    assert not ecc.is_protected(plain)
    assert not ecc.is_protected(b"")
    assert not ecc.is_protected(_payload(3000, 7))


# --------------------------------------------------------------- unknown errors (t)
@pytest.mark.parametrize("level", LEVELS)
def test_errors_at_capacity_in_every_codeword(level):
    data = _payload(20_000, 1)
    prot = ecc.protect(data, level)
    geo, t = _geo(prot), ecc.ECC_LEVELS[level] // 2
    rng = np.random.default_rng(2)
    offs = []
    for col in range(geo.n_cw):
        n_rows = geo.k_eff + geo.nsym if col < geo.payload_len - (geo.k_eff - 1) * geo.n_cw \
            else geo.k_eff + geo.nsym - 1
        rows = rng.choice(n_rows, t, replace=False)
        rows = np.where(rows >= geo.k_eff - 1, rows + (n_rows < geo.k_eff + geo.nsym), rows)
        offs.append(_stream_offsets(geo, col, rows))
    damaged = _flip(prot, np.concatenate(offs), rng)
    out, rep = ecc.unprotect(damaged)
    assert out == data
    assert rep.codewords_repaired == geo.n_cw and rep.codewords_failed == 0
    assert rep.bytes_corrected == geo.n_cw * t


@pytest.mark.parametrize("level", LEVELS)
def test_errors_beyond_capacity_fail_honestly(level):
    data = _payload(20_000, 3)
    prot = ecc.protect(data, level)
    geo, t = _geo(prot), ecc.ECC_LEVELS[level] // 2
    rng = np.random.default_rng(4)
    # t+1 errors in codeword 5, spread over the rows so their chunks' erasures exceed nsym.
    rows = np.linspace(0, geo.k_eff - 2, t + 1).astype(int)
    damaged = _flip(prot, _stream_offsets(geo, 5, rows), rng)
    with pytest.raises(UncorrectableError) as exc:
        ecc.unprotect(damaged)
    assert exc.value.codewords_failed >= 1 and exc.value.codewords_total == geo.n_cw
    out, rep = ecc.unprotect(damaged, strict=False)
    assert rep.codewords_failed >= 1 and len(out) == len(data) and out != data


# ------------------------------------------------------------------------- erasures
@pytest.mark.parametrize("level", LEVELS)
def test_crc_located_erasures_at_and_beyond_capacity(level):
    # n_cw > chunk size, so each damaged chunk erases exactly one symbol per codeword.
    data = _payload(150_000, 5)
    prot = ecc.protect(data, level)
    geo, nsym = _geo(prot), ecc.ECC_LEVELS[level]
    assert geo.n_cw > geo.chunk
    rng = np.random.default_rng(6)
    rows = np.sort(rng.choice(geo.k_eff - 1, nsym + 1, replace=False))
    at_cap = _flip(prot, _stream_offsets(geo, 17, rows[:nsym]), rng)   # 2x errors-only capacity
    out, rep = ecc.unprotect(at_cap)
    assert out == data and rep.codewords_repaired == 1 and rep.bytes_corrected == nsym

    beyond = _flip(prot, _stream_offsets(geo, 17, rows), rng)
    with pytest.raises(UncorrectableError):
        ecc.unprotect(beyond)
    out, rep = ecc.unprotect(beyond, strict=False)
    assert rep.codewords_failed == 1 and rep.codewords_total == geo.n_cw
    # Everything outside the failed codeword is intact; the failed one is left as received.
    a, b = np.frombuffer(out, np.uint8), np.frombuffer(data, np.uint8)
    wrong = np.nonzero(a != b)[0]
    assert len(wrong) and np.all(wrong % geo.n_cw == 17)


# --------------------------------------------------------------------------- bursts
def test_medium_bursts_up_to_2kib_anywhere_in_64kib():
    data = _payload(65_536, 7)
    prot = ecc.protect(data, "medium")
    rng = np.random.default_rng(8)
    starts = list(np.linspace(0, len(prot) - 2048, 40).astype(int)) + [0, len(prot) - 2048]
    for i, s in enumerate(starts):
        size = 2048 if i % 2 == 0 else int(rng.integers(1, 2049))
        a = np.frombuffer(prot, np.uint8).copy()
        a[s:s + size] = rng.integers(0, 256, size, dtype=np.uint8)
        out, rep = ecc.unprotect(a.tobytes())
        assert out == data and rep.codewords_failed == 0


@pytest.mark.parametrize("level", LEVELS)
def test_burst_beyond_errors_only_capacity_uses_erasures(level):
    data = _payload(65_536, 9)
    prot = ecc.protect(data, level)
    geo, nsym = _geo(prot), ecc.ECC_LEVELS[level]
    # Wider than nsym/2 symbols per codeword, well within nsym after chunk rounding.
    size = (nsym // 2 + 2) * geo.n_cw
    assert size + 3 * (geo.chunk + 4) < nsym * geo.n_cw
    a = np.frombuffer(prot, np.uint8).copy()
    a[5000:5000 + size] ^= 0xA5
    out, rep = ecc.unprotect(a.tobytes())
    assert out == data and rep.codewords_failed == 0
    # And far beyond: never reported as repaired.
    a = np.frombuffer(prot, np.uint8).copy()
    big = (nsym + 4) * geo.n_cw
    a[3000:3000 + big] ^= 0x5A
    with pytest.raises(UncorrectableError):
        ecc.unprotect(a.tobytes())
    out, rep = ecc.unprotect(a.tobytes(), strict=False)
    assert rep.codewords_failed > 0


def test_random_byte_errors_half_percent_medium():
    data = _payload(65_536, 10)
    prot = ecc.protect(data, "medium")
    rng = np.random.default_rng(11)
    for _ in range(5):
        hit = np.nonzero(rng.random(len(prot)) < 0.005)[0]
        out, rep = ecc.unprotect(_flip(prot, hit, rng))
        assert out == data and rep.codewords_repaired > 0 and rep.bytes_corrected <= len(hit)


# --------------------------------------------------------------------- header damage
def test_header_copies_damage():
    data = _payload(30_000, 12)
    prot = ecc.protect(data, "medium")
    geo = _geo(prot)
    a_off, c_off, b_off = geo.copy_offsets()
    rng = np.random.default_rng(13)

    def smash(buf: np.ndarray, off: int) -> None:
        buf[off:off + ecc._HDR_SIZE] = rng.integers(0, 256, ecc._HDR_SIZE, dtype=np.uint8)

    a = np.frombuffer(prot, np.uint8).copy()
    a[:8] = 0                                  # magic gone
    smash(a, a_off)
    assert ecc.is_protected(a.tobytes())
    out, rep = ecc.unprotect(a.tobytes())
    assert out == data and rep.header_copies_damaged == 1
    smash(a, c_off)
    out, rep = ecc.unprotect(a.tobytes())
    assert out == data and rep.header_copies_damaged == 2
    assert ecc.peek(a.tobytes())["ecc"] == "medium"
    smash(a, b_off)
    assert not ecc.is_protected(a.tobytes())
    with pytest.raises(CorruptStreamError):
        ecc.unprotect(a.tobytes(), strict=False)

    # A few bytes wrong in every copy: each copy is an RS codeword and repairs itself.
    a = np.frombuffer(prot, np.uint8).copy()
    for off in (a_off, c_off, b_off):
        pos = off + rng.choice(ecc._HDR_SIZE, 5, replace=False)
        a[pos] ^= rng.integers(1, 256, 5, dtype=np.uint8)
    out, rep = ecc.unprotect(a.tobytes())
    assert out == data and rep.header_copies_damaged == 3


def test_magic_byte_damaged_into_plain_magic():
    prot = bytearray(ecc.protect(_payload(5000, 14), "low"))
    prot[3] = ord("C")                         # "\x89HLE" -> "\x89HLC"
    assert ecc.is_protected(bytes(prot))


def test_truncated_tail_is_recovered_as_erasures():
    data = _payload(150_000, 15)
    prot = ecc.protect(data, "medium")
    out, rep = ecc.unprotect(prot[:-300])
    assert out == data and rep.header_copies_damaged == 1
    with pytest.raises(CorruptStreamError):
        ecc.unprotect(prot[: len(prot) // 3])


# ------------------------------------------------------- never a false "repaired"
@pytest.mark.parametrize("level", LEVELS)
def test_heavy_damage_never_reported_as_repaired(level):
    data = _payload(8_000, 16)
    prot = ecc.protect(data, level)
    rng = np.random.default_rng(17)
    rate = {"low": 0.02, "medium": 0.03, "high": 0.08}[level]
    outcomes = set()
    for _ in range(12):
        hit = np.nonzero(rng.random(len(prot)) < rate)[0]
        damaged = _flip(prot, hit, rng)
        try:
            out, rep = ecc.unprotect(damaged)
            assert out == data and rep.codewords_failed == 0
            outcomes.add("ok")
        except UncorrectableError as e:
            assert e.codewords_failed > 0
            out, rep = ecc.unprotect(damaged, strict=False)
            assert rep.codewords_failed > 0
            outcomes.add("failed")
        except CorruptStreamError:
            outcomes.add("header")
    assert outcomes  # ran


def test_miscorrection_caught_by_payload_crc(monkeypatch):
    # Force the decoder to "succeed" with a wrong codeword: the payload CRC must refuse it.
    data = _payload(20_000, 18)
    prot = ecc.protect(data, "medium")
    geo = _geo(prot)
    rng = np.random.default_rng(19)
    damaged = _flip(prot, _stream_offsets(geo, 3, np.array([0, 1])), rng)
    real = ecc._correct

    def lying(rx, nsym, erase=None):
        fixed, ok, changed = real(rx, nsym, erase)
        fixed[:, 0] ^= 1
        return fixed, ok, changed

    monkeypatch.setattr(ecc, "_correct", lying)
    with pytest.raises(UncorrectableError):
        ecc.unprotect(damaged)
    _, rep = ecc.unprotect(damaged, strict=False)
    assert rep.codewords_failed >= 1 and rep.codewords_repaired == 0


# ------------------------------------------------------------------------ bad input
@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_hlc_errors(blob):
    for data in (blob, ecc.MAGIC + blob):
        try:
            ecc.unprotect(data, strict=False)
        except HlcError:
            pass
        ecc.is_protected(data)


def test_truncations_and_mutations_raise_only_hlc_errors():
    data = _payload(3000, 20)
    prot = ecc.protect(data, "low")
    rng = np.random.default_rng(21)
    for cut in list(range(0, 140)) + list(range(140, len(prot), 97)):
        for strict in (True, False):
            try:
                out, rep = ecc.unprotect(prot[:cut], strict=strict)
                assert rep.codewords_failed > 0 or out == data
            except HlcError:
                pass
    for _ in range(150):
        a = np.frombuffer(prot, np.uint8).copy()
        hit = rng.integers(0, len(a), int(rng.integers(1, 200)))
        a[hit] = rng.integers(0, 256, len(hit), dtype=np.uint8)
        try:
            out, rep = ecc.unprotect(a.tobytes(), strict=False)
            assert rep.codewords_failed > 0 or out == data
        except HlcError:
            pass


def _forged_header(nsym: int, length: int) -> bytes:
    fields = ecc._HDR_FIELDS.pack(1, nsym, 9, 0, length, 0)
    raw = fields + zlib.crc32(fields).to_bytes(4, "little")
    return raw + ecc._parity(np.frombuffer(raw, np.uint8)[:, None], ecc._HDR_NSYM)[:, 0].tobytes()


def test_forged_headers_are_refused_without_big_allocations():
    with pytest.raises(CorruptStreamError):            # claims 256 TB
        ecc.unprotect(ecc.MAGIC + _forged_header(24, (1 << 48) - 1) + b"\0" * 100)
    with pytest.raises(CorruptStreamError):            # CRC-valid but undefined nsym
        ecc.unprotect(ecc.MAGIC + _forged_header(100, 10) + b"\0" * 100)


# ------------------------------------------------------------ through the public API
@pytest.fixture(scope="module")
def ct_image():
    import pydicom
    import pydicom.data
    return pydicom.dcmread(pydicom.data.get_testdata_file("693_UNCR.dcm")).pixel_array


def test_api_lossless_medium_repairs_random_errors_and_bursts(ct_image):
    import codec_core as hlc
    data = hlc.encode(ct_image, mode="lossless", ecc="medium")
    info = hlc.info(data)
    assert info["ecc"] == "medium" and info["ecc_overhead"] <= 0.13
    assert np.array_equal(hlc.decode(data), ct_image)
    rng = np.random.default_rng(22)
    hit = np.nonzero(rng.random(len(data)) < 0.005)[0]
    out = hlc.decode(_flip(data, hit, rng))
    assert np.array_equal(out, ct_image)
    a = np.frombuffer(data, np.uint8).copy()
    a[40_000:42_048] = rng.integers(0, 256, 2048, dtype=np.uint8)
    out, report = hlc.decode(a.tobytes(), strict=False)
    assert np.array_equal(out, ct_image)
    assert report["ecc"]["codewords_failed"] == 0 and report["ecc"]["bytes_corrected"] > 0


def test_api_unrepairable_is_an_hlc_error(ct_image):
    import codec_core as hlc
    data = hlc.encode(ct_image, mode="lossless", ecc="low")
    a = np.frombuffer(data, np.uint8).copy()
    a[20_000:40_000] ^= 0x77
    with pytest.raises(HlcError):
        hlc.decode(a.tobytes())


@pytest.mark.parametrize("trailing", [1, 3, 16])
def test_copies_c_and_b_are_found_past_trailing_bytes(trailing):
    """DICOM pads an odd fragment with one byte (a transport may pad more): copy A lost
    then cost the whole stream, though C and B were whole ("all three copies damaged")."""
    data = _payload(30_001, 15)
    prot = ecc.protect(data, "medium")
    a = np.frombuffer(prot + bytes(trailing), np.uint8).copy()
    a[:40] = 0                                  # the magic and copy A
    out, rep = ecc.unprotect(a.tobytes())
    assert out == data and rep.header_copies_damaged == 1
    a[len(prot) - ecc._HDR_SIZE:len(prot)] = 0  # and copy B: C alone, past the padding
    assert ecc.unprotect(a.tobytes())[0] == data
    too_far = np.concatenate([a[:len(prot)], np.zeros(17, np.uint8)])
    with pytest.raises(CorruptStreamError):
        ecc.unprotect(too_far.tobytes())


def test_api_damage_at_the_start_of_a_wrapped_stream_is_damage_not_another_format(ct_image):
    """Lenient, a wrapper whose inner stream's start the parity could not mend answered
    NotHlcError ("not an HLC stream"): a transfer would not retry it."""
    import codec_core as hlc
    from codec_core.errors import NotHlcError

    data = np.frombuffer(hlc.encode(ct_image, mode="lossy", bpp=1, ecc="low"), np.uint8).copy()
    data[:32_768] = 0
    for strict in (True, False):
        with pytest.raises(HlcError) as got:
            hlc.decode(data.tobytes(), strict=strict)
        assert not isinstance(got.value, NotHlcError), got.value
    with pytest.raises(HlcError) as got:
        hlc.info(data.tobytes())
    assert not isinstance(got.value, NotHlcError), got.value
