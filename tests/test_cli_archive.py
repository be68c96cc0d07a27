"""``hlc`` on an archive as an administrator meets it (an outside tester's findings, stop 38):
every name under SRC accounted for, no converted image lost to another's output name,
the instance identity and file permissions of a lossless conversion kept, structured
reports and plans skipped (not failed), the report's path checked before the work, a
damaged .hlc signature left to the codec's error correction."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from test_cli import CT, MR, data_file, dicom_pixels, hlc, ok

from codec_core.cli.io import _umask


def _names(out: str, title: str) -> list[str]:
    """The lines of the summary's ``title:`` list."""
    lines = out.splitlines()
    if f"{title}:" not in lines:
        return []
    rest = lines[lines.index(f"{title}:") + 1:]
    return [line.strip() for line in rest[:next((i for i, x in enumerate(rest) if not x.startswith("  ")), len(rest))]]


def test_inputs_sharing_an_output_name_fail_naming_each_other_and_none_is_lost(tmp_path):
    """x.dcm, x (a PACS export's name without extension) and x.DCM: with --to hlc all three
    were x.hlc (one image kept, the others "already done", exit 0); with the default,
    x and x.dcm both x.dcm. A text file beside them is skipped, not a third claimant."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(data_file(CT), src / "x.dcm")
    shutil.copy(data_file(MR), src / "x")
    shutil.copy(data_file(MR), src / "y.dcm")
    (src / "y.txt").write_text("notes\n")
    proc = hlc("batch", src, "out", "--to", "hlc", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout
    failed = _names(proc.stdout, "failed")
    assert len(failed) == 2 and all("out/x.hlc would also be that of" in f for f in failed), proc.stdout
    assert any(f.startswith("src/x.dcm:") and f.endswith("src/x: rename one of them") for f in failed), failed
    assert "src/y.txt: not a DICOM file" in _names(proc.stdout, "skipped")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["y.hlc"]
    again = hlc("batch", src, "out", "--to", "hlc", "--no-progress", cwd=tmp_path)  # never "already done"
    assert again.returncode == 1 and "2 failed" in again.stdout, again.stdout

    proc = hlc("batch", src, "out2", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1 and len(_names(proc.stdout, "failed")) == 2, proc.stdout
    assert not (tmp_path / "out2" / "x.dcm").exists() and (tmp_path / "out2" / "y.dcm").exists()


def test_lossless_conversion_keeps_the_sop_instance_uid_and_lossy_gets_a_new_one(tmp_path):
    """The same image in another transfer syntax is the same instance: a new UID broke
    every reference to it (reports, presentation states, segmentations)."""
    ct = data_file(CT)
    uid = pydicom.dcmread(ct).SOPInstanceUID
    ok(hlc("encode", ct, "ll.dcm", cwd=tmp_path))
    ok(hlc("encode", ct, "nl.dcm", "--max-error", "2", cwd=tmp_path))
    ok(hlc("decode", "ll.dcm", "back.dcm", cwd=tmp_path))
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ct, src / "ct.dcm")
    ok(hlc("batch", src, "out", "--no-progress", cwd=tmp_path))
    for name in ("ll.dcm", "back.dcm", "out/ct.dcm"):
        ds = pydicom.dcmread(tmp_path / name)
        assert ds.SOPInstanceUID == uid and ds.file_meta.MediaStorageSOPInstanceUID == uid, name
    assert np.array_equal(dicom_pixels(tmp_path / "out" / "ct.dcm"), dicom_pixels(ct))
    nl = pydicom.dcmread(tmp_path / "nl.dcm")
    assert nl.SOPInstanceUID != uid and nl.LossyImageCompression == "01"


def test_every_name_under_src_is_accounted_for(tmp_path, monkeypatch):
    """Folders that cannot be listed failed; hidden names, empty files and links to
    folders skipped with their reason (a link is not followed: ``up -> ..`` converted a
    neighbour's files, and a link sorting before its target took its outputs' names).
    Before, all of these vanished and the summary said everything was done."""
    from codec_core.cli import batch

    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    for d in (src / "real", src / "locked", src / ".hidden_study", elsewhere / "neighbour"):
        d.mkdir(parents=True)
    shutil.copy(data_file(CT), src / "real" / "ct.dcm")
    shutil.copy(data_file(MR), src / "locked" / "mr.dcm")
    shutil.copy(data_file(MR), src / ".dotfile.dcm")
    shutil.copy(data_file(MR), elsewhere / "neighbour" / "secret.dcm")
    (src / "linked_study").symlink_to(elsewhere)
    (src / "a_link").symlink_to(src / "real")
    (src / "up").symlink_to("..")
    dst = tmp_path / "dst"
    scandir = os.scandir

    def refuse(path="."):  # (CI runs as root, whom no folder's permissions stop)
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    left_out: list = []
    tasks = batch.plan(str(src), str(dst), "dcm", left_out)
    assert [(t.rel, os.path.relpath(t.dst, dst)) for t in tasks] == [("real/ct.dcm", "real/ct.dcm")]
    why = {os.path.relpath(r.src, src): (r.status, r.reason) for r in left_out}
    assert why["locked"][0] == batch.FAILED and "cannot be listed (Permission denied)" in why["locked"][1]
    assert why[".hidden_study"] == why[".dotfile.dcm"] == (batch.SKIPPED, "hidden (its name starts with '.'): left out")
    for link in ("linked_study", "a_link", "up"):
        assert why[link][0] == batch.SKIPPED and "a link to a folder: not followed" in why[link][1], why
    assert len(why) == 6, why


def test_a_destination_holding_the_source_converts_every_folder(tmp_path):
    """``hlc batch archive/incoming archive``: every sub-folder of SRC was taken for a
    link into DST and skipped, exit 0 (this stop's first form of the link check)."""
    archive = tmp_path / "archive"
    (archive / "incoming" / "series").mkdir(parents=True)
    shutil.copy(data_file(CT), archive / "incoming" / "ct.dcm")
    shutil.copy(data_file(MR), archive / "incoming" / "series" / "mr.dcm")
    (archive / "incoming" / "empty.dcm").write_bytes(b"")
    proc = ok(hlc("batch", archive / "incoming", archive, "--no-progress", cwd=tmp_path))
    assert "3 files: 2 converted, 1 skipped, 0 failed" in proc.stdout, proc.stdout
    assert "empty.dcm: empty (0 bytes)" in proc.stdout
    assert np.array_equal(dicom_pixels(archive / "series" / "mr.dcm"), dicom_pixels(data_file(MR)))


def test_outputs_differing_in_case_only_are_one_name_where_the_destination_folds_case(tmp_path):
    from codec_core.cli.batch import Task, same_outputs

    src = tmp_path / "src"
    src.mkdir()
    for name in ("x.dcm", "X.DCM"):
        shutil.copy(data_file(CT), src / name)
    tasks = [Task(str(src / n), str(tmp_path / "out" / n), n) for n in ("X.DCM", "x.dcm")]
    assert same_outputs(tasks)[1] == []  # a case-sensitive destination holds both
    kept, failed = same_outputs(tasks, fold_case=True)
    assert kept == [] and [r.status for r in failed] == ["failed", "failed"]


def test_objects_without_an_image_are_skipped_and_a_cut_image_fails(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(data_file(CT), src / "ct.dcm")
    for name in ("rtplan.dcm", "test-SR.dcm"):
        shutil.copy(data_file(name), src / name)
    proc = ok(hlc("batch", src, "out", "--no-progress", cwd=tmp_path))
    assert "3 files: 1 converted, 2 skipped, 0 failed" in proc.stdout, proc.stdout
    assert "src/rtplan.dcm: a DICOM object without an image (RTPLAN, RT Plan Storage): nothing to compress" \
        in _names(proc.stdout, "skipped")
    (src / "cut.dcm").write_bytes(Path(data_file(MR)).read_bytes()[:700])  # (no Rows read yet)
    # an HLC DICOM file cut inside its encapsulated pixel data: pydicom reads no element at all
    ok(hlc("encode", data_file(CT), "hlc.dcm", cwd=tmp_path))
    whole = (tmp_path / "hlc.dcm").read_bytes()
    (src / "cut_hlc.dcm").write_bytes(whole[:len(whole) * 6 // 10])
    proc = hlc("batch", src, "out", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1
    assert _names(proc.stdout, "failed") == [
        "src/cut.dcm: MR Image Storage without pixel data: the file is cut short or damaged",
        "src/cut_hlc.dcm: CT Image Storage without pixel data: the file is cut short or damaged"], proc.stdout


def test_an_unwritable_report_is_refused_before_any_work(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(data_file(CT), src / "ct.dcm")
    proc = hlc("batch", src, "out", "--json", tmp_path / "nowhere" / "r.json", cwd=tmp_path)
    assert proc.returncode == 1 and "the folder" in proc.stderr and "does not exist" in proc.stderr
    assert not (tmp_path / "out" / "ct.dcm").exists(), "converted before refusing the report's path"
    ok(hlc("batch", src, "out2", "--json", "out2/report.json", "--no-progress", cwd=tmp_path))  # (inside DST)
    assert (tmp_path / "out2" / "report.json").exists()


def test_every_file_gets_its_warnings_in_every_worker(tmp_path):
    """Python shows a warning once a process by default: with three alike files in one
    worker, only the first got the "larger than its source" warning."""
    src = tmp_path / "src"
    src.mkdir()
    noise = np.random.default_rng(0).integers(0, 65535, (64, 64)).astype(np.uint16)
    for i in range(3):
        ds = pydicom.dcmread(data_file(MR))
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.PixelData = noise.tobytes()
        ds.save_as(src / f"noise{i}.dcm")
    proc = ok(hlc("batch", src, "out", "--workers", "1", "--no-progress", cwd=tmp_path))
    assert proc.stdout.count("the output is larger than the source") == 3, proc.stdout


def test_outputs_take_the_originals_permissions(tmp_path):
    """A patient's file readable by its owner only gave outputs every user could read."""
    src = tmp_path / "src"
    src.mkdir()
    private = src / "private.dcm"
    shutil.copy(data_file(CT), private)
    private.chmod(0o600)
    ok(hlc("batch", src, "out", "--no-progress", cwd=tmp_path))
    ok(hlc("encode", private, "p.hlc", cwd=tmp_path))
    ok(hlc("decode", "p.hlc", "p.npy", cwd=tmp_path))
    for out in ("out/private.dcm", "p.hlc", "p.npy"):
        assert (tmp_path / out).stat().st_mode & 0o777 == 0o600, out
    (src / "public.dcm").write_bytes(private.read_bytes())
    (src / "public.dcm").chmod(0o644)
    (src / "group.dcm").write_bytes(private.read_bytes())
    os.chown(src / "group.dcm", -1, 65534)  # (a group's file: CI runs as root, who may give it any group)
    (src / "group.dcm").chmod(0o440)        # (read-only: its output stays writable by its owner)
    ok(hlc("batch", src, "out", "--no-progress", cwd=tmp_path))
    assert (tmp_path / "out" / "public.dcm").stat().st_mode & 0o777 == 0o644 & ~_umask()
    st = (tmp_path / "out" / "group.dcm").stat()
    assert st.st_mode & 0o777 == 0o640 & ~_umask() and (os.geteuid() != 0 or st.st_gid == 65534)


def test_an_empty_file_at_an_outputs_name_is_not_a_finished_output(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(data_file(CT), src / "ct.dcm")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ct.dcm").write_bytes(b"")
    proc = hlc("batch", src, "out", "--no-progress", cwd=tmp_path)
    assert "1 repaired" in proc.stdout and "already done" not in proc.stdout, proc.stdout
    assert np.array_equal(dicom_pixels(tmp_path / "out" / "ct.dcm"), dicom_pixels(data_file(CT)))


@pytest.mark.parametrize("ecc", ["medium", None])
def test_a_damaged_signature_is_left_to_the_codec(tmp_path, ecc):
    """One flipped bit in an .hlc file's first 8 bytes: the command line refused the file
    as "neither an .hlc stream nor a DICOM file", which the codec decodes exactly (the
    error correction, or the header's copy at the end)."""
    args = ["--ecc", ecc] if ecc else []
    ok(hlc("encode", data_file(CT), "ct.hlc", *args, cwd=tmp_path))
    data = bytearray((tmp_path / "ct.hlc").read_bytes())
    data[0] ^= 0x10
    (tmp_path / "flip.hlc").write_bytes(bytes(data))
    ok(hlc("decode", "flip.hlc", "ct.npy", cwd=tmp_path))
    assert np.array_equal(np.load(tmp_path / "ct.npy"), dicom_pixels(data_file(CT)))
    ok(hlc("info", "flip.hlc", cwd=tmp_path))


def test_lenient_decode_exits_3_when_it_concealed_damage(tmp_path):
    """--lenient writes what it can; a script must tell a concealed loss from a clean
    decode (it exited 0 with a constant image)."""
    ok(hlc("encode", data_file(CT), "ct.hlc", cwd=tmp_path))
    data = (tmp_path / "ct.hlc").read_bytes()
    (tmp_path / "half.hlc").write_bytes(data[:len(data) // 2])
    proc = hlc("decode", "half.hlc", "half.npy", "--lenient", cwd=tmp_path)
    assert proc.returncode == 3 and "concealed" in proc.stdout and (tmp_path / "half.npy").exists(), proc
    ok(hlc("decode", "ct.hlc", "whole.npy", "--lenient", cwd=tmp_path))


def test_plain_messages_for_empty_files_and_folders_as_outputs(tmp_path):
    (tmp_path / "zero.hlc").write_bytes(b"")
    proc = hlc("decode", "zero.hlc", "x.npy", cwd=tmp_path)
    assert proc.returncode == 1 and "zero.hlc is empty (0 bytes)" in proc.stderr, proc.stderr
    (tmp_path / "dir.dcm").mkdir()
    proc = hlc("encode", data_file(CT), "dir.dcm", cwd=tmp_path)
    assert proc.returncode == 1 and "cannot write dir.dcm: it is a folder" in proc.stderr, proc.stderr
    assert "partial" not in proc.stderr


def test_a_larger_output_is_a_warning_naming_a_compressed_source():
    """A source compressed already (lossy above all) grew 3.6x with no word."""
    import warnings

    from pydicom.uid import JPEGBaseline8Bit

    from codec_core.cli.batch import _warn_if_grown

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        _warn_if_grown(JPEGBaseline8Bit, True, 224_902, 809_700)
        _warn_if_grown(JPEGBaseline8Bit, True, 224_902, 200_000)
    assert [str(w.message) for w in got] == [
        "the output is larger than the source (224.9 KB -> 809.7 KB): the source is lossy compressed already "
        "(JPEG Baseline (Process 1)); consider keeping it as it is"]


def test_warnings_that_differ_in_figures_only_are_one_line_with_a_count():
    from codec_core.cli.batch import _collapsed

    per_frame = [f"bpp=0.75 is below what the hybrid reaches: {b} bpp" for b in ("1.359", "1.402", "1.359")]
    assert _collapsed([*per_frame, "another warning"]) == [
        "bpp=0.75 is below what the hybrid reaches: 1.359 bpp (and 2 more like it)", "another warning"]


def test_an_rgba_npy_is_refused_not_read_as_frames(tmp_path):
    np.save(tmp_path / "rgba.npy", np.zeros((16, 16, 4), np.uint8))
    proc = hlc("encode", "rgba.npy", "x.hlc", cwd=tmp_path)
    assert proc.returncode == 1 and "looks like an image with alpha" in proc.stderr, proc.stderr


def test_a_wrapper_past_repair_gives_the_paritys_verdict_and_hints_only_where_they_help(tmp_path):
    """A damaged ECC file's error was the header CRC of the stream inside (info() read it
    first, leniently), and every HLC error pointed to --lenient: also when it was given,
    and for DICOM input, which --lenient refuses."""
    ok(hlc("encode", data_file(CT), "ct.hlc", "--ecc", "medium", cwd=tmp_path))
    ok(hlc("encode", data_file(CT), "ct.dcm", "--ecc", "medium", cwd=tmp_path))
    rng = np.random.default_rng(11)
    for name in ("ct.hlc", "ct.dcm"):
        data = np.frombuffer((tmp_path / name).read_bytes(), np.uint8).copy()
        start = 0 if name.endswith(".hlc") else len(data) - len((tmp_path / "ct.hlc").read_bytes())
        hit = start + 200 + np.nonzero(rng.random(len(data) - start - 400) < 0.2)[0]
        data[hit] ^= 0x5A
        (tmp_path / f"bad_{name}").write_bytes(data.tobytes())
    proc = hlc("decode", "bad_ct.hlc", "x.npy", cwd=tmp_path)
    assert proc.returncode == 1 and "codewords failed" in proc.stderr and "--lenient" in proc.stderr, proc.stderr
    proc = hlc("decode", "bad_ct.hlc", "x.npy", "--lenient", cwd=tmp_path)
    assert "--lenient' recovers" not in proc.stderr, proc.stderr
    (tmp_path / "text.hlc").write_text("not a stream at all\n")
    proc = hlc("decode", "text.hlc", "x.npy", cwd=tmp_path)  # (--lenient cannot read it either)
    assert proc.returncode == 1 and "not an HLC stream" in proc.stderr and "--lenient" not in proc.stderr
    proc = hlc("decode", "bad_ct.dcm", "x.npy", cwd=tmp_path)
    assert proc.returncode == 1 and "codewords failed" in proc.stderr, proc.stderr
    assert "--lenient" not in proc.stderr and "pylibjpeg" not in proc.stderr, proc.stderr


def test_far_more_workers_than_cores_is_a_warning(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(data_file(CT), src / "ct.dcm")
    proc = ok(hlc("batch", src, "out", "--workers", str(8 * (os.cpu_count() or 1)), "--no-progress", cwd=tmp_path))
    assert "warning: --workers" in proc.stderr and "cores" in proc.stderr, proc.stderr


def test_the_command_lines_alike_warnings_are_shown_once_and_counted(capsys):
    """One warning for each frame (26 lines for a 30-frame file): the first of a shape
    is shown at once, the others counted at the end of the command."""
    import warnings

    from codec_core.cli.main import _warnings_as_one_line

    saved = warnings.showwarning
    try:
        counts = _warnings_as_one_line("hlc encode")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = warnings.showwarning  # (catch_warnings restores it after)
            for bpp in ("1.359", "1.402", "1.377"):
                warnings.warn(f"frame target missed: {bpp} bpp", stacklevel=1)
            warnings.warn("another warning", stacklevel=1)
        counts()
    finally:
        warnings.showwarning = saved
    assert capsys.readouterr().err.splitlines() == [
        "hlc encode: warning: frame target missed: 1.359 bpp",
        "hlc encode: warning: another warning",
        'hlc encode: warning: 2 more like "frame target missed: 1.359 bpp"']
