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


def test_startup_hook_stays_light(wheel_run):
    # What keeps the hook cheap for every Python process of the venv: it imports nothing
    # heavy at start-up (its cost is a benchmark's business, not a timed test's: under
    # load, -X importtime of the standard library's own modules ran past 4 ms).
    out = wheel_run("""
        import sys
        heavy = [m for m in ("numpy", "PIL", "pydicom", "numcodecs", "zarr", "codec_core", "codec_core.api")
                 if m in sys.modules]
        assert "hybrid_plugins._startup" in sys.modules, "the .pth hook did not run"
        assert not heavy, heavy
    """, env={"PYTHONPROFILEIMPORTTIME": "1"})
    costs = [int(m.group(1)) for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \|\s+hybrid_plugins\._startup",
                                                 out.stderr)]
    assert costs, out.stderr[-2000:]  # (the hook's import is seen, and reported in benchmarks)


def test_first_pil_import_registers_pillow_plugin_without_loading_the_codec(wheel_run):
    wheel_run("""
        import sys
        from PIL import Image
        assert "HLC" in Image.OPEN and "HLC" in Image.SAVE and "HLC" in Image.SAVE_ALL
        assert Image.registered_extensions()[".hlc"] == "HLC"
        assert Image.MIME["HLC"] == "image/x-hlc"
        # the plugin reads the format's names and the options table (codec_core.format,
        # codec_core.options: the standard library only), not the codec
        assert "codec_core.api" not in sys.modules and "numpy" not in sys.modules, "import PIL must stay light"
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
    # pydicom 3.0 has no public codec registry: the plugin writes two private tables,
    # all in _install_codecs. When pydicom changes them this fails, naming the table.
    wheel_run(f"""
        import pydicom
        from pydicom.pixels import get_decoder, get_encoder
        from hybrid_plugins.pydicom_plugin import PRIVATE_TABLES, HlcDecoder, HlcEncoder
        assert pydicom.__version__.startswith("3.0."), pydicom.__version__
        names = [f"{{module.__name__}}.{{name}}" for module, name in PRIVATE_TABLES]
        assert names == ["pydicom.pixels.decoders.base._PIXEL_DATA_DECODERS",
                         "pydicom.pixels.encoders.base._PIXEL_DATA_ENCODERS"], names
        for (module, name), cls, lookup in zip(PRIVATE_TABLES, (HlcDecoder, HlcEncoder),
                                               (get_decoder, get_encoder)):
            table = getattr(module, name, None)
            where = f"{{module.__name__}}.{{name}}"
            assert isinstance(table, dict), f"pydicom changed its private table {{where}}"
            entry = table.get("{HLC_UID}")
            assert isinstance(entry, tuple) and isinstance(entry[0], cls), f"no HLC entry in {{where}}"
            assert lookup("{HLC_UID}") is entry[0], f"pydicom no longer looks codecs up in {{where}}"
    """)


def test_a_changed_private_table_is_a_loud_error_naming_it(wheel_run):
    wheel_run("""
        from pydicom.pixels.encoders import base
        from hybrid_plugins import pydicom_plugin
        del base._PIXEL_DATA_ENCODERS
        try:
            pydicom_plugin._install_codecs()
            raise AssertionError("a missing table went unnoticed")
        except RuntimeError as e:
            assert "pydicom.pixels.encoders.base._PIXEL_DATA_ENCODERS" in str(e), e
    """, env=OFF)


def test_uid_values_read_from_files_are_untouched_except_the_hlc_uid(wheel_run):
    # The raw_element_value hook is wrapped so that the HLC Transfer Syntax UID read
    # from a file carries its encoding; every other value must come out exactly as
    # pydicom's own callback makes it.
    wheel_run(f"""
        import pydicom
        from pydicom.dataelem import RawDataElement
        from pydicom.hooks import hooks
        from pydicom.tag import Tag
        import hybrid_plugins

        made = []
        def own(raw, data, **kwargs):               # a stand-in for pydicom's callback
            data["value"] = raw.value.decode().rstrip("\\0 ") if raw.VR == "UI" else raw.value
            made.append(data["value"])
        hooks.register_callback("raw_element_value", own)
        hybrid_plugins.register()
        hybrid_plugins.register()                   # idempotent: wraps once
        assert hooks.raw_element_value.hlc_wraps is own

        def convert(tag, vr, value):
            raw = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
            data = {{"VR": vr}}
            hooks.raw_element_value(raw, data, encoding=None, ds=None)
            return data["value"]

        hlc = b"{HLC_UID}\\0"
        for tag, vr, value in [(0x00020010, "UI", b"1.2.840.10008.1.2\\0"),
                               (0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.4"),
                               (0x00020010, "UI", b"1.2.840.10008.1.2.4.90"),
                               (0x00081150, "UI", b"{HLC_UID}.1\\0"),
                               (0x00200010, "SH", hlc), (0x00081030, "LO", hlc),
                               (0x00091010, "UN", hlc), (0x00090010, "OB", hlc)]:
            out = convert(tag, vr, value)
            assert out is made[-1], (tag, vr, value)   # the very object pydicom's callback made

        for tag in (0x00020010, 0x00041512):          # Transfer Syntax UID, and one in a DICOMDIR
            out = convert(tag, "UI", hlc)
            assert out == "{HLC_UID}" and out is not made[-1] and out.is_transfer_syntax
            assert (out.is_implicit_VR, out.is_little_endian) == (False, True)
    """, env=OFF)


def test_reading_any_file_gives_the_same_values_with_the_plugin_registered(wheel_run):
    code = """
        import pydicom, sys
        from pydicom.data import get_testdata_file
        out = []
        for name in ("CT_small.dcm", "rtplan.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"):
            ds = pydicom.dcmread(get_testdata_file(name))
            out += [f"{name} {e.tag} {e.VR} {type(e.value).__name__} {e.value!r}" for e in ds.iterall()]
            out += [f"{name} meta {e.tag} {e.value!r}" for e in ds.file_meta]
        print("\\n".join(out))
    """
    assert wheel_run(code).stdout == wheel_run(code, env=OFF).stdout


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
