"""Thin adapters that expose :mod:`codec_core` through Pillow, numcodecs/zarr and pydicom.

After ``pip install`` nothing needs importing: numcodecs and zarr find the codecs
through their entry points, and a start-up hook (``hlc_autoregister.pth``, see
:mod:`hybrid_plugins._startup`) registers the Pillow and pydicom plugins the first
time PIL or pydicom is imported. Set ``HLC_NO_AUTOREGISTER=1`` to switch the hook off.

Frozen applications (PyInstaller and friends skip ``.pth`` files and entry points)
call :func:`register` once at start-up::

    import hybrid_plugins
    hybrid_plugins.register()

Importing this package is cheap: it imports neither the toolkits nor the codec.
``HLC_TRANSFER_SYNTAX_UID`` is made on first use (see :func:`__getattr__`).
"""
from __future__ import annotations

__all__ = [
    "HLC_TRANSFER_SYNTAX_UID",
    "HLC_UID_STRING",
    "HLC_MIME_TYPE",
    "HLC_EXTENSION",
    "register",
    "register_pillow",
    "register_pydicom",
    "register_numcodecs",
    "register_zarr",
]

from ._constants import HLC_EXTENSION, HLC_MIME_TYPE, HLC_UID_STRING


def __getattr__(name: str) -> str:
    """``HLC_TRANSFER_SYNTAX_UID``: the UID to pass to ``Dataset.compress``.

    With pydicom installed it is a ``pydicom.uid.UID`` that carries its encoding
    (explicit VR little endian); without pydicom, the plain string. pydicom is
    imported only when the name is first used, so ``import hybrid_plugins`` stays
    cheap. The encoding matters: ``compress()`` copies it from a UID object into
    the dataset's Transfer Syntax UID, and pydicom's writer needs it to write the
    dataset as explicit VR little endian. From a plain string it cannot (see
    :mod:`hybrid_plugins.pydicom_plugin`).
    """
    if name != "HLC_TRANSFER_SYNTAX_UID":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import pydicom  # noqa: F401
    except ImportError:
        value = HLC_UID_STRING
    else:
        from .pydicom_plugin import HLC_TRANSFER_SYNTAX_UID as value
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"HLC_TRANSFER_SYNTAX_UID"})


def register_pillow() -> None:
    """Register the ``.hlc`` reader and writer with Pillow (idempotent)."""
    from . import pillow_plugin

    pillow_plugin.register()


def register_pydicom() -> None:
    """Register the HLC transfer syntax, encoder and decoder with pydicom (idempotent)."""
    from . import pydicom_plugin

    pydicom_plugin.register()


def register_numcodecs() -> None:
    """Register :class:`~hybrid_plugins.numcodecs_codec.HybridCodec` with numcodecs (idempotent)."""
    import numcodecs

    from .numcodecs_codec import HybridCodec

    numcodecs.register_codec(HybridCodec)


def register_zarr() -> None:
    """Register the zarr format 3 serializer ``"hlc"`` with zarr (idempotent)."""
    from zarr.registry import register_codec

    from .zarr_codec import HlcCodec

    register_codec(HlcCodec.codec_name, HlcCodec)


def register() -> None:
    """Register every adapter explicitly, for applications that bypass entry points.

    Safe to call more than once. A toolkit that is not installed is skipped.
    """
    for toolkit, register_one in (
        ("PIL", register_pillow),
        ("pydicom", register_pydicom),
        ("numcodecs", register_numcodecs),
        ("zarr", register_zarr),
    ):
        try:
            __import__(toolkit)
        except ImportError:
            continue
        register_one()
