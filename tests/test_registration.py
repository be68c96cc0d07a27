"""Registration without code changes, its off switch, and the explicit register().

Each test runs in a fresh interpreter of a venv holding the installed wheel
(``wheel_run`` from conftest), never in the test process: registration is
process-wide state, and the claim is about what ``pip install`` gives a user.
"""
from __future__ import annotations

import re

OFF = {"HLC_NO_AUTOREGISTER": "1"}
HLC_UID = "2.25.220595007392293823743213383891695951969"


def test_startup_imports_nothing_heavy(wheel_run):
    out = wheel_run("import sys; print(' '.join(sorted(sys.modules)))").stdout.split()
    for heavy in ("numpy", "PIL", "pydicom", "codec_core", "zarr", "numcodecs", "numba"):
        assert heavy not in out, f"{heavy} imported at start-up"
    assert "hybrid_plugins._startup" in out


def test_startup_hook_costs_under_5_ms(wheel_run):
    # -X importtime reports the hook's own import cost, free of process-start noise.
    err = wheel_run("pass", env={"PYTHONPROFILEIMPORTTIME": "1"}).stderr
    costs = [int(m.group(1)) for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \|\s+hybrid_plugins\._startup",
                                                 err)]
    assert costs and costs[0] < 5000, err[-2000:]


def test_first_pil_import_registers_pillow_plugin_without_loading_the_codec(wheel_run):
    wheel_run("""
        import sys
        from PIL import Image
        assert "HLC" in Image.OPEN and "HLC" in Image.SAVE and "HLC" in Image.SAVE_ALL
        assert Image.registered_extensions()[".hlc"] == "HLC"
        assert Image.MIME["HLC"] == "image/x-hlc"
        assert "codec_core" not in sys.modules, "import PIL must stay light"
    """)


def test_script_that_never_imports_hybrid_plugins_opens_hlc_with_pillow(wheel_run):
    wheel_run("""
        import numpy as np, codec_core
        a = (np.arange(48 * 40) % 251).astype("uint8").reshape(48, 40)
        open("x.hlc", "wb").write(codec_core.encode(a))
        from PIL import Image
        with Image.open("x.hlc") as im:
            assert im.format == "HLC" and (np.asarray(im) == a).all()
    """)


def test_first_pydicom_import_registers_transfer_syntax_and_codecs(wheel_run):
    wheel_run(f"""
        import pydicom
        from pydicom.pixels import get_decoder, get_encoder
        from pydicom.uid import PrivateTransferSyntaxes
        assert "{HLC_UID}" in PrivateTransferSyntaxes
        assert get_decoder("{HLC_UID}").is_available
        assert get_encoder("{HLC_UID}").is_available
    """)


def test_pydicom_private_tables_hold_hlc_entries_on_pinned_pydicom(wheel_run):
    # pydicom has no public codec registry; the plugin writes its private tables.
    wheel_run(f"""
        import pydicom
        assert pydicom.__version__.startswith("3.0."), pydicom.__version__
        from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS
        from pydicom.pixels.encoders.base import _PIXEL_DATA_ENCODERS
        from hybrid_plugins.pydicom_plugin import HlcDecoder, HlcEncoder
        assert isinstance(_PIXEL_DATA_DECODERS["{HLC_UID}"][0], HlcDecoder)
        assert isinstance(_PIXEL_DATA_ENCODERS["{HLC_UID}"][0], HlcEncoder)
    """)


def test_off_switch_leaves_pillow_and_pydicom_untouched(wheel_run):
    wheel_run(f"""
        import sys
        from PIL import Image
        import pydicom
        from pydicom.uid import PrivateTransferSyntaxes
        assert "HLC" not in Image.OPEN
        assert "{HLC_UID}" not in PrivateTransferSyntaxes
        assert "hybrid_plugins.pillow_plugin" not in sys.modules
    """, env=OFF)


def test_explicit_register_works_with_hook_off_and_is_idempotent(wheel_run):
    wheel_run(f"""
        import hybrid_plugins
        hybrid_plugins.register()
        hybrid_plugins.register()
        from PIL import Image
        from pydicom.pixels import get_decoder
        from pydicom.uid import PrivateTransferSyntaxes
        import numcodecs
        assert Image.ID.count("HLC") == 1
        assert PrivateTransferSyntaxes.count("{HLC_UID}") == 1
        assert get_decoder("{HLC_UID}").available_plugins == ("hlc",)
        assert numcodecs.get_codec({{"id": "hlc"}}).codec_id == "hlc"
        assert hybrid_plugins.HLC_TRANSFER_SYNTAX_UID == "{HLC_UID}"
    """, env=OFF)


def test_numcodecs_finds_codec_through_entry_point_without_import(wheel_run):
    wheel_run("""
        import sys, numcodecs
        codec = numcodecs.get_codec({"id": "hlc", "mode": "near-lossless", "max_error": 1})
        assert type(codec).__module__ == "hybrid_plugins.numcodecs_codec" and codec.max_error == 1
    """, env=OFF)


def test_zarr_finds_v3_serializer_through_entry_point_without_import(wheel_run):
    wheel_run("""
        from zarr.registry import get_codec_class
        cls = get_codec_class("hlc")
        assert cls.__module__ == "hybrid_plugins.zarr_codec"
    """, env=OFF)
