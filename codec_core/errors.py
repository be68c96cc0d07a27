"""Exceptions raised by HLC.

Every problem found in a byte stream raises a subclass of :class:`HlcError`;
problems with arguments passed to ``encode`` raise :class:`ValueError`.
"""
from __future__ import annotations


class HlcError(Exception):
    """Base class of every error about an HLC byte stream."""


class NotHlcError(HlcError):
    """The bytes do not start with the HLC signature."""


class UnsupportedStreamError(HlcError):
    """The stream is HLC but uses a version or feature this decoder does not know."""


class CorruptStreamError(HlcError):
    """The stream is damaged: a CRC, a length or a field is wrong.

    ``where`` names the damaged part (for example ``"header"`` or ``"frame 0 tile 3"``).
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.where = where


class TruncatedStreamError(CorruptStreamError):
    """The stream ends before the data its header announces."""


class UncorrectableError(CorruptStreamError):
    """Reed–Solomon parity could not repair the damage.

    ``codewords_failed`` and ``codewords_total`` give the counts.
    """

    def __init__(self, message: str, codewords_failed: int = 0, codewords_total: int = 0,
                 where: str | None = None) -> None:
        super().__init__(message, where)
        self.codewords_failed = codewords_failed
        self.codewords_total = codewords_total


class DecompressionBombError(HlcError):
    """The header claims more pixels than the configured limit allows."""
