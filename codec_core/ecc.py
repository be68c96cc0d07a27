"""Reed–Solomon protection of an already-built HLC byte stream.

The wrapper adds RS(255, 255 - nsym) parity over GF(256) (reedsolo-compatible: primitive
polynomial 0x11d, generator 2, first consecutive root 0), interleaved so that a burst is
spread over many codewords, a CRC-32 per chunk (512 B .. 8 KiB) of the transmitted bytes so
that damaged chunks become erasures, and three RS-protected copies of its own header.  The
byte layout is documented in docs/FORMAT_ECC.md.

Speed: a clean stream is checked by the chunk CRCs plus the payload CRC (zlib, > 1 GB/s);
parity is computed with per-position lookup tables (XOR of uint64 words, in C), and
only codewords whose
syndromes are non-zero go through the vectorised Berlekamp–Massey / Chien / Forney
decoder below (numpy).  No reedsolo at run time.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np

from .errors import CorruptStreamError, TruncatedStreamError, UncorrectableError
from .format import ECC_FLAGS, ECC_LEVELS, ECC_MAGIC, ECC_VERSION
from .format import MAGIC as PLAIN

__all__ = ["ECC_LEVELS", "EccReport", "MAGIC", "is_protected", "peek", "protect", "unprotect"]

MAGIC = ECC_MAGIC          # protected stream; PNG-style like the plain stream's
PLAIN_MAGIC = PLAIN        # plain HLC stream (what protect() receives)

# Parity bytes per 255-byte codeword.  An RS codeword with nsym parity bytes corrects
# nsym // 2 unknown byte errors or nsym erasures (2 * errors + erasures <= nsym).
# medium = 24 (12 errors / codeword, 10.4 % parity): at 0.5 % random byte errors a
# codeword sees 1.3 errors on average and P(> 12) = 9e-10 per codeword; a burst of B bytes
# puts at most ceil(B / n) + 1 errors in a codeword, n >= 255 for a 64 KiB stream, so <= 10
# for 2 KiB (CRC erasures roughly double that reach).  32 parity bytes (the textbook
# RS(255,223)) would cost 14.3 % > the 13 % budget.  low = 16 (6.7 %; P(> 8) = 7e-6 per
# codeword, so ~0.2 % of 64 KiB streams fail at 0.5 % byte errors) suits cleaner links;
# high = 64 (33.5 %) survives 5 % byte errors.  Measured: benchmarks/results/ecc.md.
# (The table itself, ECC_LEVELS, is in codec_core/format.py.)

# CRC chunk = interleave depth rounded down to a power of two, within 512 B .. 8 KiB: a bad
# chunk then erases at most ~2 symbols of each codeword, CRC overhead stays <= 0.8 %, and
# big streams do not pay one zlib call per 512 bytes on the clean path.
_CHUNK_LOG2_MIN, _CHUNK_LOG2_MAX = 9, 13
_HDR_FIELDS = struct.Struct("<BBBBQI")  # version, nsym, chunk_log2, flags, payload_len, payload_crc
_HDR_DATA = _HDR_FIELDS.size + 4        # + CRC-32 of the fields = 20 bytes
_HDR_NSYM = 12                          # each header copy is an RS(32, 20) codeword: fixes 6 bytes
_HDR_SIZE = _HDR_DATA + _HDR_NSYM       # 32 bytes per copy
_PREFIX = len(MAGIC) + _HDR_SIZE        # magic + copy A
_OVERHEAD_FIXED = len(MAGIC) + 3 * _HDR_SIZE


# ----------------------------------------------------------------------------- GF(256)
def _gf_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    exp = np.zeros(512, np.uint8)
    log = np.zeros(256, np.int64)
    x = 1
    for i in range(255):               # 255 steps once at import: ~50 us
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= 0x11D
    exp[255:510] = exp[:255]
    mul = exp[(log[:, None] + log[None, :]) % 255]
    mul[0, :] = 0
    mul[:, 0] = 0
    inv = np.zeros(256, np.uint8)
    inv[1:] = exp[(255 - log[1:]) % 255]
    return exp, log, mul, inv


_EXP, _LOG, _MUL, _INV = _gf_tables()


@cache
def _apow() -> np.ndarray:
    """_apow()[i, d] = alpha**(-i*d): evaluates polynomials at X^-1 for X = alpha**d."""
    i = np.arange(256)[:, None]
    d = np.arange(255)[None, :]
    return _EXP[(-(i * d)) % 255]


@cache
def _generator(nsym: int) -> np.ndarray:
    """prod_{i<nsym} (x - alpha**i), highest degree first (reedsolo's rs_generator_poly)."""
    g = np.ones(1, np.uint8)
    for i in range(nsym):
        ng = np.zeros(len(g) + 1, np.uint8)
        ng[:-1] = g
        ng[1:] ^= _MUL[g, _EXP[i]]
        g = ng
    return g


@cache
def _parity_tables(nsym: int) -> np.ndarray:
    """tables[p, v] = parity contributed by symbol v at degree nsym + p, as uint64 words.

    Parity is linear in the message, so it is the XOR over message positions of
    v * (x**(nsym+p) mod g).  Rows are padded to whole uint64 words so one ``take`` moves a
    whole parity vector (nsym=24: 3 words).  Size (255-nsym) * 256 * 8*ceil(nsym/8) bytes.
    """
    g = _generator(nsym)[1:]
    k = 255 - nsym
    rem = np.zeros((k, nsym), np.uint8)
    r = g.copy()                        # x**nsym mod g = g minus its leading term
    for p in range(k):
        rem[p] = r
        top = r[0]
        r = np.concatenate([r[1:], np.zeros(1, np.uint8)])
        r ^= _MUL[top, g]
    words = (nsym + 7) // 8
    tab = np.zeros((k, 256, words * 8), np.uint8)
    tab[:, :, :nsym] = _MUL[:, rem].transpose(1, 0, 2)
    return np.ascontiguousarray(tab).view(np.uint64)


@cache
def _parity_to_syndrome(nsym: int) -> np.ndarray:
    """V[p, j] = alpha**(j * (nsym-1-p)): parity-difference -> syndromes."""
    p = np.arange(nsym)[:, None]
    j = np.arange(nsym)[None, :]
    return _EXP[(j * (nsym - 1 - p)) % 255]


def _parity(data: np.ndarray, nsym: int) -> np.ndarray:
    """Parity of many codewords at once.

    ``data`` is (k_eff, m) uint8: row j holds message symbol j (highest degree first) of m
    codewords; k_eff <= 255 - nsym (shorter messages are shortened codewords, as in
    reedsolo).  Returns (nsym, m) uint8, byte-identical to ``RSCodec(nsym).encode``.
    The table XOR runs in C (codec_core/_native/module.c: ``parity``).
    """
    from ._kernels import parity

    ke, m = data.shape
    tab = _parity_tables(nsym)
    acc = np.zeros((m, tab.shape[2]), np.uint64)
    if ke and m:
        parity(np.ascontiguousarray(data, np.uint8), tab, acc)
    return np.ascontiguousarray(acc.view(np.uint8)[:, :nsym].T)


# ------------------------------------------------------------ vectorised errata decoder
def _poly_mul_trunc(a: np.ndarray, b: np.ndarray, n: int, deg_a: int) -> np.ndarray:
    """Row-wise (a * b) mod x**n, low degree first; a has degree <= deg_a."""
    out = np.zeros((a.shape[0], n), np.uint8)
    for i in range(min(deg_a, n - 1) + 1):
        w = min(b.shape[1], n - i)
        out[:, i:i + w] ^= _MUL[a[:, i:i + 1], b[:, :w]]
    return out


def _berlekamp_massey(seq: np.ndarray, nlen: np.ndarray, nsym: int) -> tuple[np.ndarray, np.ndarray]:
    """Massey's algorithm on each row of ``seq`` (first nlen[r] entries are valid).

    Returns the connection polynomials (m, nsym+1), low degree first, and their lengths L.
    ``shifted`` keeps x**m * B(x) so rows with different m update in one vector step.
    """
    m = seq.shape[0]
    c = np.zeros((m, nsym + 1), np.uint8)
    c[:, 0] = 1
    shifted = np.zeros_like(c)
    shifted[:, 1] = 1
    length = np.zeros(m, np.int64)
    last_d = np.ones(m, np.uint8)
    for n in range(nsym):
        active = n < nlen
        if not active.any():
            break
        w = min(n + 2, nsym + 1)       # deg C and deg x^m B are <= n + 1 here
        d = np.bitwise_xor.reduce(_MUL[c[:, :n + 1], seq[:, n::-1]], axis=1)
        d[~active] = 0
        nz = d != 0
        coef = _MUL[d, _INV[last_d]]
        new_c = c[:, :w] ^ _MUL[coef[:, None], shifted[:, :w]]
        swap = nz & (2 * length <= n)
        base = np.where(swap[:, None], c, shifted)
        shifted = np.zeros_like(base)
        shifted[:, 1:] = base[:, :-1]
        length = np.where(swap, n + 1 - length, length)
        last_d = np.where(swap, d, last_d)
        c[:, :w] = np.where(nz[:, None], new_c, c[:, :w])
    return c, length


def _correct(rx: np.ndarray, nsym: int, erase: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Errors-and-erasures decoding of m received codewords (rows of ``rx``, (m, N) uint8).

    ``erase`` (m, N) bool marks erasures (positions that may be wrong).  Returns
    (fixed, ok, changed): fixed codewords, rows that decoded to a verified codeword, and
    the (m, N) mask of bytes changed.  A row is ok only if the errata locator has exactly
    deg(Psi) distinct roots inside the codeword and the result re-encodes to itself, so a
    beyond-capacity pattern is either reported as failed or (rarely, as with any RS
    decoder) turned into a different valid codeword, which the caller's CRCs catch.
    The steps, each vectorised over the rows: syndromes, erasure locator, error locator
    (Berlekamp–Massey on the Forney syndromes), Chien search, Forney magnitudes, check.
    """
    synd = _syndromes(rx, nsym)
    gamma, rho, max_rho = _erasure_locator(erase, rx.shape, nsym)
    lam, length, ok = _error_locator(gamma, synd, rho, max_rho, nsym)
    max_len = int(length[ok].max()) if ok.any() else 0
    psi = _poly_mul_trunc(lam, gamma, nsym + 1, max_len)            # errata locator
    deg = nsym - np.argmax(psi[:, ::-1] != 0, axis=1)
    max_deg = int(deg[ok].max()) if ok.any() else 0
    omega = _poly_mul_trunc(psi, synd, nsym, max_deg)               # evaluator
    roots = _chien(psi, deg, ok, max_deg, rx.shape[1])
    ok &= roots.sum(axis=1) == deg
    roots &= ok[:, None]
    fixed = _forney(rx, roots, psi, omega, ok, max_deg, nsym, erase)
    _verify(fixed, ok, nsym)
    fixed[~ok] = rx[~ok]
    return fixed, ok, fixed != rx


def _syndromes(rx: np.ndarray, nsym: int) -> np.ndarray:
    """(m, nsym) syndromes, from the difference between received and recomputed parity."""
    m, n_len = rx.shape
    ke = n_len - nsym
    delta = _parity(np.ascontiguousarray(rx[:, :ke].T), nsym).T ^ rx[:, ke:]
    vand = _parity_to_syndrome(nsym)
    synd = np.zeros((m, nsym), np.uint8)
    for p in range(nsym):
        synd ^= _MUL[delta[:, p:p + 1], vand[p][None, :]]
    return synd


def _erasure_locator(erase: np.ndarray | None, shape: tuple[int, int], nsym: int
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Gamma(x) = prod (1 + X_e x), X_e = alpha**degree, per row; the erasures per row
    (rho) and the most any usable row has."""
    m, n_len = shape
    gamma = np.zeros((m, nsym + 1), np.uint8)
    gamma[:, 0] = 1
    rho = np.zeros(m, np.int64)
    max_rho = 0
    if erase is not None:
        rho = erase.sum(axis=1).astype(np.int64)
        usable = rho <= nsym
        er, ej = np.nonzero(erase & usable[:, None])
        if len(er):
            counts = np.where(usable, rho, 0)
            start = np.cumsum(counts) - counts
            rank = np.arange(len(er)) - start[er]
            max_rho = int(counts.max())
            xe = np.zeros((m, max_rho), np.uint8)
            xe[er, rank] = _EXP[(n_len - 1 - ej) % 255]
            for e in range(max_rho):
                gamma[:, 1:] ^= _MUL[xe[:, e:e + 1], gamma[:, :-1]]
    return gamma, rho, max_rho


def _error_locator(gamma: np.ndarray, synd: np.ndarray, rho: np.ndarray, max_rho: int,
                   nsym: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lambda by Berlekamp–Massey on the erasure-free (Forney) syndromes
    T_rho .. T_{nsym-1}; its length, and the rows within the code's capacity."""
    fsyn = _poly_mul_trunc(gamma, synd, nsym, max_rho)
    idx = rho[:, None] + np.arange(nsym)[None, :]
    seq = np.take_along_axis(fsyn, np.minimum(idx, nsym - 1), axis=1)
    seq[idx >= nsym] = 0
    nlen = np.maximum(nsym - rho, 0)
    lam, length = _berlekamp_massey(seq, nlen, nsym)
    return lam, length, (rho <= nsym) & (2 * length <= nlen)


def _chien(psi: np.ndarray, deg: np.ndarray, ok: np.ndarray, max_deg: int, n_len: int) -> np.ndarray:
    """(m, N) roots of the errata locator over the N positions (degree d = N-1-column).
    Rows sorted by degree so that term i is only evaluated for rows that have it
    (scattered errors give mostly degree 1-3 next to a few of degree nsym/2)."""
    m = psi.shape[0]
    apow = _apow()
    order = np.argsort(-np.where(ok, deg, 0), kind="stable")
    have = np.searchsorted(-np.where(ok, deg, 0)[order], -np.arange(max_deg + 1), side="right")
    psi_sorted = psi[order]
    ev = np.zeros((m, n_len), np.uint8)
    for i in range(max_deg + 1):
        r = have[i]
        ev[:r] ^= _MUL[psi_sorted[:r, i:i + 1], apow[i, :n_len][None, :]]
    roots = np.empty_like(ev, dtype=bool)
    roots[order] = ev == 0
    return roots


def _forney(rx: np.ndarray, roots: np.ndarray, psi: np.ndarray, omega: np.ndarray, ok: np.ndarray,
            max_deg: int, nsym: int, erase: np.ndarray | None) -> np.ndarray:
    """The codewords with the errata corrected (first root 0: e = X Omega(X^-1) / Psi'(X^-1));
    rows whose magnitudes are inconsistent are marked not ``ok`` (in place)."""
    n_len = rx.shape[1]
    apow = _apow()
    rr, dd = np.nonzero(roots)
    om = np.zeros(len(rr), np.uint8)
    for i in range(nsym):
        om ^= _MUL[omega[rr, i], apow[i, dd]]
    dpsi = np.zeros(len(rr), np.uint8)
    for i in range(1, max_deg + 1, 2):
        dpsi ^= _MUL[psi[rr, i], apow[i - 1, dd]]
    mag = _MUL[_EXP[dd], _MUL[om, _INV[dpsi]]]
    cols = n_len - 1 - dd
    bad = dpsi == 0
    if erase is not None:       # an error root that needs no correction is inconsistent
        bad |= (mag == 0) & ~erase[rr, cols]
    else:
        bad |= mag == 0
    ok[rr[bad]] = False
    keep = ok[rr]
    fixed = rx.copy()
    fixed[rr[keep], cols[keep]] ^= mag[keep]
    return fixed


def _verify(fixed: np.ndarray, ok: np.ndarray, nsym: int) -> None:
    """Rows of ``fixed`` that are not codewords (re-encoded parity differs) are not ``ok``."""
    sel = np.nonzero(ok)[0]
    if len(sel):
        ke = fixed.shape[1] - nsym
        sub = fixed[sel]
        reenc = _parity(np.ascontiguousarray(sub[:, :ke].T), nsym).T
        ok[sel[np.any(reenc != sub[:, ke:], axis=1)]] = False


# ------------------------------------------------------------------------- wrapper
@dataclass
class EccReport:
    """What unprotect() found.  bytes_corrected counts payload and parity bytes changed;
    header_copies_damaged counts copies (of 3) not byte-identical to the header used."""
    level: str
    parity_bytes: int
    protected_bytes: int
    bytes_corrected: int
    codewords_total: int
    codewords_repaired: int
    codewords_failed: int
    header_copies_damaged: int


@dataclass(frozen=True)
class _Header:
    nsym: int
    chunk_log2: int
    payload_len: int
    payload_crc: int


@dataclass(frozen=True)
class _Geometry:
    """Where everything sits, derived from the header alone."""
    nsym: int
    chunk: int
    payload_len: int     # L
    n_cw: int            # codewords = interleave depth
    k_eff: int           # message symbols per codeword (last row partially padded)
    body_len: int        # L + nsym * n_cw transmitted bytes before CRC framing
    n_chunks: int
    framed_len: int      # body_len + 4 * n_chunks
    total_len: int       # whole protected stream

    @property
    def half(self) -> int:     # framed bytes before the middle header copy
        return self.framed_len // 2

    def copy_offsets(self) -> tuple[int, int, int]:
        return (len(MAGIC), _PREFIX + self.half, _PREFIX + _HDR_SIZE + self.framed_len)


def _geometry(nsym: int, chunk_log2: int, payload_len: int) -> _Geometry:
    k = 255 - nsym
    n_cw = -(-payload_len // k)
    k_eff = -(-payload_len // n_cw) if n_cw else 0
    body = payload_len + nsym * n_cw
    chunk = 1 << chunk_log2
    n_chunks = -(-body // chunk)
    framed = body + 4 * n_chunks
    return _Geometry(nsym, chunk, payload_len, n_cw, k_eff, body, n_chunks, framed,
                     _OVERHEAD_FIXED + framed)


def _level_name(nsym: int) -> str:
    return next(name for name, v in ECC_LEVELS.items() if v == nsym)


def _pack_header(h: _Header) -> bytes:
    fields = _HDR_FIELDS.pack(ECC_VERSION, h.nsym, h.chunk_log2, ECC_FLAGS, h.payload_len, h.payload_crc)
    data = fields + struct.pack("<I", zlib.crc32(fields))
    par = _parity(np.frombuffer(data, np.uint8)[:, None], _HDR_NSYM)[:, 0]
    return data + par.tobytes()


def _parse_header(raw: bytes) -> _Header | None:
    """Fields of one header copy if its CRC holds (None otherwise)."""
    if len(raw) < _HDR_DATA:
        return None
    fields = raw[:_HDR_FIELDS.size]
    if zlib.crc32(fields) != struct.unpack_from("<I", raw, _HDR_FIELDS.size)[0]:
        return None
    version, nsym, chunk_log2, flags, plen, pcrc = _HDR_FIELDS.unpack(fields)
    # Only the defined levels: each nsym costs a cached table of up to 4 MB, so arbitrary
    # values from forged headers must not be able to grow the cache.
    if version != ECC_VERSION or flags != ECC_FLAGS or nsym not in ECC_LEVELS.values() \
            or not 6 <= chunk_log2 <= 16 or plen >= 1 << 48:
        return None    # a CRC-valid copy with impossible values is treated as damaged
    return _Header(nsym, chunk_log2, plen, pcrc)


#: Bytes after a protected stream past which its header copies C and B, found by the
#: total length when copy A is lost, are still looked for: DICOM pads an odd fragment
#: with one, and a transport may pad to its block (copy A then lost cost the image).
_MAX_TRAILING = 16


def _copies(data: bytes, offs: list[int], allow_rs: bool) -> list[tuple[_Header, int]]:
    """The valid header copies at ``offs`` (RS-corrected if none is valid as read), with
    where each was read."""
    raws = [data[o:o + _HDR_SIZE] for o in offs]
    found = [(h, o) for h, o in zip(map(_parse_header, raws), offs, strict=True) if h is not None]
    full = [(r, o) for r, o in zip(raws, offs, strict=True) if len(r) == _HDR_SIZE]
    if not found and allow_rs and full:
        rx = np.frombuffer(b"".join(r for r, _ in full), np.uint8).reshape(len(full), _HDR_SIZE)
        fixed, ok, _ = _correct(rx, _HDR_NSYM)
        found = [(h, full[i][1]) for i in np.nonzero(ok)[0]
                 if (h := _parse_header(fixed[i].tobytes())) is not None]
    return found


def _find_header(data: bytes, *, allow_rs: bool = True) -> tuple[_Header, _Geometry, int]:
    """Header by majority of the valid copies; returns (header, geometry, copies damaged)."""
    size = len(data)

    def by_length(extra: int) -> list[int]:  # copies C and B if the stream is size - extra bytes
        framed = size - extra - _OVERHEAD_FIXED
        return [_PREFIX + framed // 2, size - extra - _HDR_SIZE] if framed >= 0 else []

    found = [h for h, _ in _copies(data, [len(MAGIC), *by_length(0)], allow_rs)]
    if not found:  # copy A lost: C and B where they sit if bytes follow the stream
        offs = [o for extra in range(1, min(_MAX_TRAILING, size) + 1) for o in by_length(extra)]
        # (a copy counts where its own geometry puts it: never a chance match at a wrong length)
        found = [h for h, at in _copies(data, offs, allow_rs=False)
                 if at in _geometry(h.nsym, h.chunk_log2, h.payload_len).copy_offsets()]
    if not found:
        raise CorruptStreamError("ECC wrapper header unreadable: all three copies damaged",
                                 where="ecc header")
    header = max(found, key=found.count)   # majority; ties go to the earliest copy
    geo = _geometry(header.nsym, header.chunk_log2, header.payload_len)
    canon = _pack_header(header)
    damaged = sum(data[o:o + _HDR_SIZE] != canon for o in geo.copy_offsets())
    return header, geo, damaged


def _frame(body: np.ndarray, chunk: int) -> np.ndarray:
    """Append the CRC-32 of each chunk after it: chunk0 crc0 chunk1 crc1 ..."""
    t = len(body)
    n_chunks = -(-t // chunk)
    mv = body.data  # (a memoryview of the bytes)
    crcs = np.array([zlib.crc32(mv[i:i + chunk]) for i in range(0, t, chunk)], "<u4")
    crcs = crcs.view(np.uint8).reshape(n_chunks, 4)
    out = np.empty(t + 4 * n_chunks, np.uint8)
    full = t // chunk
    grid = out[:full * (chunk + 4)].reshape(full, chunk + 4)
    grid[:, :chunk] = body[:full * chunk].reshape(full, chunk)
    grid[:, chunk:] = crcs[:full]
    if t % chunk:
        out[full * (chunk + 4):-4] = body[full * chunk:]
        out[-4:] = crcs[-1]
    return out


def _unframe(framed: np.ndarray, geo: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Split framed bytes into the body and a per-chunk 'CRC failed' mask."""
    chunk, t, n_chunks = geo.chunk, geo.body_len, geo.n_chunks
    full = t // chunk
    body = np.empty(t, np.uint8)
    stored = np.empty((n_chunks, 4), np.uint8)
    grid = framed[:full * (chunk + 4)].reshape(full, chunk + 4)
    body[:full * chunk] = grid[:, :chunk].reshape(-1)
    stored[:full] = grid[:, chunk:]
    if t % chunk:
        body[full * chunk:] = framed[full * (chunk + 4):-4]
        stored[-1] = framed[-4:]
    mv = body.data  # (a memoryview of the bytes)
    crcs = np.array([zlib.crc32(mv[i:i + chunk]) for i in range(0, t, chunk)], "<u4")
    return body, crcs != stored.view("<u4").reshape(-1)


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected a bytes-like object, got {type(data).__name__}")


def protect(stream: bytes, level: str) -> bytes:
    """Wrap an HLC byte stream in interleaved Reed–Solomon parity at ``level``."""
    if not isinstance(level, str) or level not in ECC_LEVELS:
        raise ValueError(f"unknown ecc level {level!r}; allowed: "
                         + ", ".join(repr(k) for k in ECC_LEVELS) + " (or None)")
    stream = _as_bytes(stream)
    nsym = ECC_LEVELS[level]
    n_cw = -(-len(stream) // (255 - nsym))
    chunk_log2 = min(max(n_cw.bit_length() - 1, _CHUNK_LOG2_MIN), _CHUNK_LOG2_MAX)
    header = _Header(nsym, chunk_log2, len(stream), zlib.crc32(stream))
    geo = _geometry(nsym, chunk_log2, len(stream))
    body = np.empty(geo.body_len, np.uint8)
    body[:geo.payload_len] = np.frombuffer(stream, np.uint8)
    if geo.n_cw:
        # Payload byte i is symbol i // n_cw of codeword i % n_cw: the message matrix is the
        # payload itself read row-major, so the data part is transmitted unchanged and a
        # burst of B bytes puts at most ceil(B / n_cw) errors in any codeword.
        msg = np.zeros(geo.k_eff * geo.n_cw, np.uint8)
        msg[:geo.payload_len] = body[:geo.payload_len]
        body[geo.payload_len:] = _parity(msg.reshape(geo.k_eff, geo.n_cw), nsym).reshape(-1)
    framed = _frame(body, geo.chunk)
    hdr = _pack_header(header)
    half = geo.half
    return b"".join((MAGIC, hdr, framed[:half].tobytes(), hdr, framed[half:].tobytes(), hdr))


def is_protected(data: bytes) -> bool:
    """True if ``data`` looks like an ECC-wrapped stream, even with a damaged magic."""
    try:
        data = _as_bytes(data)
    except TypeError:
        return False
    if data[:8] == MAGIC:
        return True
    try:
        # An exact plain magic with one damaged byte is "\x89HLE" hit at byte 3; only
        # CRC-valid header copies count then, so plain streams cost three tiny CRCs.
        _find_header(data, allow_rs=data[:8] != PLAIN_MAGIC)
    except CorruptStreamError:
        return False
    return True


def peek(data: bytes) -> dict:
    """Header-only summary for ``info()``."""
    data = _as_bytes(data)
    header, geo, _ = _find_header(data)
    parity = geo.nsym * geo.n_cw
    plen = geo.payload_len
    return {"ecc": _level_name(header.nsym),
            "ecc_overhead": parity / plen if plen else 0.0,
            "protected_bytes": plen,
            "ecc_parity_bytes": parity,
            "ecc_total_overhead": (geo.total_len - plen) / plen if plen else 0.0,
            "ecc_total_bytes": geo.total_len}


def payload_prefix(data: bytes, n: int) -> bytes | None:
    """The first ``n`` bytes of the protected stream, read without RS decoding.

    The protected bytes travel unchanged inside CRC-checked chunks, so a reader
    that wants only the inner header (``info()``) takes the chunks it needs.
    Returns None if one of them fails its CRC (the caller then repairs the whole
    stream with :func:`unprotect`)."""
    data = _as_bytes(data)
    _, geo, _ = _find_header(data)
    n = min(n, geo.payload_len)
    out = bytearray()
    for start in range(0, n, geo.chunk):
        length = min(geo.chunk, geo.body_len - start)
        f0 = start + 4 * (start // geo.chunk)          # offset in the framed bytes

        def framed(a: int, b: int) -> bytes:             # skip the middle header copy
            pieces = []
            for lo, hi, shift in ((a, min(b, geo.half), 0), (max(a, geo.half), b, _HDR_SIZE)):
                if lo < hi:
                    pieces.append(data[_PREFIX + lo + shift:_PREFIX + hi + shift])
            return b"".join(pieces)

        chunk = framed(f0, f0 + length)
        crc = framed(f0 + length, f0 + length + 4)
        if len(chunk) != length or len(crc) != 4 or zlib.crc32(chunk) != int.from_bytes(crc, "little"):
            return None
        out += chunk
    return bytes(out[:n])


def unprotect(data: bytes, *, strict: bool = True) -> tuple[bytes, EccReport]:
    """Check and repair a protected stream; return the original HLC stream and a report.

    strict=True raises UncorrectableError when any codeword cannot be repaired; with
    strict=False the unrepaired codewords are returned as received (missing bytes of a
    truncated stream as zeros) and the report says how many failed.
    """
    data = _as_bytes(data)
    header, geo, hdr_damaged = _find_header(data)
    size = len(data)
    missing = max(0, geo.total_len - size)
    if missing > size:      # never allocate far more than the input justifies
        raise TruncatedStreamError(
            f"ECC stream truncated: {size} of {geo.total_len} bytes", where="ecc")
    # Reassemble the framed bytes around the middle header copy; absent bytes are zeros.
    framed = np.zeros(geo.framed_len, np.uint8)
    buf = np.frombuffer(data, np.uint8)
    half = geo.half
    first = buf[_PREFIX:_PREFIX + half]
    framed[:len(first)] = first
    second = buf[_PREFIX + _HDR_SIZE + half:_PREFIX + _HDR_SIZE + geo.framed_len]
    framed[half:half + len(second)] = second
    avail = len(first) if len(first) < half else half + len(second)
    body, bad_chunk = _unframe(framed, geo)
    if avail < geo.framed_len:
        bad_chunk[avail // (geo.chunk + 4):] = True

    report = EccReport(level=_level_name(geo.nsym), parity_bytes=geo.nsym * geo.n_cw,
                       protected_bytes=geo.payload_len, bytes_corrected=0,
                       codewords_total=geo.n_cw, codewords_repaired=0, codewords_failed=0,
                       header_copies_damaged=int(hdr_damaged))
    plen = geo.payload_len
    if not bad_chunk.any() and zlib.crc32(body[:plen].data) == header.payload_crc:
        return body[:plen].tobytes(), report        # clean path: CRCs only

    if geo.n_cw:
        _repair(body, bad_chunk, geo, report)
    payload = body[:plen].tobytes()
    if report.codewords_failed == 0 and zlib.crc32(payload) != header.payload_crc:
        # Every codeword verified but the whole is wrong: some repair was a
        # mis-correction we cannot pin down, so none of them can be trusted.
        report.codewords_failed = max(1, report.codewords_repaired)
        report.codewords_repaired = 0
    if report.codewords_failed and strict:
        what = "truncated and " if missing else ""
        raise UncorrectableError(
            f"ECC stream {what}damaged beyond repair: {report.codewords_failed} of "
            f"{report.codewords_total} Reed–Solomon codewords failed",
            codewords_failed=report.codewords_failed,
            codewords_total=report.codewords_total, where="ecc")
    return payload, report


def _repair(body: np.ndarray, bad_chunk: np.ndarray, geo: _Geometry, report: EccReport) -> None:
    """Correct ``body`` in place, codeword by codeword, and fill in the report counts."""
    nsym, n, ke, plen = geo.nsym, geo.n_cw, geo.k_eff, geo.payload_len
    # Codeword matrix (N, n): column i is codeword i; the last message row is padded with
    # zeros (not transmitted) for columns >= plen - (ke-1)*n.
    mat = np.zeros((ke + nsym, n), np.uint8)
    mat.reshape(-1)[:plen] = body[:plen]
    mat[ke:] = body[plen:].reshape(nsym, n)
    # Positions allowed to change: bytes inside chunks whose CRC failed.  CRC-32 misses a
    # damaged chunk with probability 2**-32, so a "correction" anywhere else is a
    # mis-correction.  The zero padding must never change either.
    suspect_body = np.repeat(bad_chunk, geo.chunk)[:geo.body_len]
    suspect = np.zeros((ke + nsym, n), bool)
    suspect.reshape(-1)[:plen] = suspect_body[:plen]
    suspect[ke:] = suspect_body[plen:].reshape(nsym, n)

    recomputed = _parity(mat[:ke], nsym)
    damaged = np.nonzero(np.any(recomputed != mat[ke:], axis=0))[0]
    failed = np.zeros(0, np.intp)
    fixed_total = 0
    block = 4096                      # bounds the decoder's temporaries
    for b0 in range(0, len(damaged), block):
        cols = damaged[b0:b0 + block]
        rx = np.ascontiguousarray(mat[:, cols].T)
        sus = np.ascontiguousarray(suspect[:, cols].T)
        # Pass 1: unknown errors only (corrects nsym/2) -- right for scattered errors,
        # where nearly every chunk is hit and erasures would exceed nsym.
        fixed, ok, changed = _correct(rx, nsym)
        ok &= ~np.any(changed & ~sus, axis=1)
        # Pass 2: the rest with CRC-located erasures (corrects up to nsym) -- bursts.
        retry = np.nonzero(~ok & (sus.sum(axis=1) <= nsym) & sus.any(axis=1))[0]
        if len(retry):
            f2, ok2, ch2 = _correct(rx[retry], nsym, sus[retry])
            ok2 &= ~np.any(ch2 & ~sus[retry], axis=1)
            fixed[retry[ok2]] = f2[ok2]
            ok[retry[ok2]] = True
        good = np.nonzero(ok)[0]
        mat[:, cols[good]] = fixed[good].T
        fixed_total += int(np.count_nonzero(fixed[good] != rx[good]))
        failed = np.concatenate([failed, cols[~ok]])
    body[:plen] = mat.reshape(-1)[:plen]
    body[plen:] = mat[ke:].reshape(-1)
    report.bytes_corrected = fixed_total
    report.codewords_failed = len(failed)
    report.codewords_repaired = len(damaged) - len(failed)
