"""``hlc batch``: convert a directory tree of DICOM files, in parallel and resumably.

Guarantees:

* originals are opened for reading only, and no output may name an input;
* each output is written to a hidden temporary file beside it and renamed when it
  is complete (:func:`codec_core.cli.io.atomic_write`), so an output that exists is whole;
  leftovers of a killed run are removed when the next run starts;
* every output is read back (a fresh parse of the file, its pixels compared with
  the original within the error bound asked) before it takes its name; one that
  fails is not written and the file is reported as failed;
* a finished output is skipped by the next run (resume); with ``--verify`` it is
  read back and checked the same way first, and converted again if it fails;
* one bad file never stops the batch: it is reported with its reason;
* Ctrl-C (SIGINT), ``kill`` (SIGTERM) and a hang-up (SIGHUP) stop the batch the same
  way: the local workers are ended at once (mid-encode too), their partial files
  removed, the summary printed and the ``--json`` report written; the exit status is
  128 + the signal's number (130, 143, 129), the shell's convention.

What "checked" means: an output satisfies a run when it decodes to the original's
shape and dtype within every bound the run asks (lossless: exact; ``--max-error K``:
every sample within K; ``--roi``: the region within ``--roi-max-error``) and within
every bound its own streams state. Which coder the encoder kept does not matter: a
hybrid may be stored as the lossless stream when that is smaller, and it keeps every
promise. A lossy target (``--bpp``, ``--psnr``) is a goal of the rate control, not a
bound on any sample, so it is not measured: to encode existing outputs again at
another target, use ``--overwrite``.

Work runs in local processes (``concurrent.futures``) or on a dask.distributed
cluster (``--scheduler``); in both cases each task is :func:`convert_one`, which
never raises, and each worker runs the codec on one thread (the workers are the
parallelism). A stopped batch cannot end tasks already running on a cluster: they
finish on their own (their outputs are whole, as always).
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from .io import TEMP_SUFFIX, CliError, UsageError

__all__ = ["Task", "Result", "plan", "same_outputs", "convert_one", "verify_output", "check_written", "run_batch",
           "remove_partials", "init_worker", "end_with_parent"]

# A result's status: what happened to one input file.
CONVERTED, DONE, VERIFIED, REPAIRED, SKIPPED, FAILED = (
    "converted", "already done", "verified", "repaired", "skipped", "failed")


@dataclass
class Task:
    src: str
    dst: str
    rel: str


@dataclass
class Result:
    src: str
    dst: str
    status: str
    reason: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    max_abs_error: int | None = None
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ planning

def _inside(child: str, parent: str) -> bool:
    """Whether ``child`` is ``parent`` or below it: by path, and by the identity of the
    folders it exists in (a bind mount of SRC as DST has another path; its originals were
    then counted as outputs already done)."""
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    if child == parent or child.startswith(parent.rstrip(os.sep) + os.sep):
        return True
    if not os.path.exists(parent):
        return False
    at = child
    while True:  # (child and each folder above it that exists)
        if os.path.exists(at) and os.path.samefile(at, parent):
            return True
        up = os.path.dirname(at)
        if up == at:
            return False
        at = up


def output_name(rel: str, to: str) -> str:
    if to == "hlc":
        return os.path.splitext(rel)[0] + ".hlc"
    root, ext = os.path.splitext(rel)
    return rel if ext.lower() in (".dcm", ".dicom") else rel + ".dcm"


def plan(src_dir: str, dst_dir: str, to: str, left_out: list[Result] | None = None) -> list[Task]:
    """Every regular file under ``src_dir``, sorted. What is not a task goes to
    ``left_out`` as a result, so that the summary accounts for every name under SRC:
    hidden names (starting with '.') and links to folders skipped, folders that cannot
    be listed failed (their files were never seen). Links to folders are not followed:
    one may lead out of SRC (``up -> ..``: a neighbour's files), or to a folder converted
    under its own name already."""
    if not os.path.isdir(src_dir):
        raise UsageError(f"SRC {src_dir} is not a directory: give the folder to convert")
    if _inside(dst_dir, src_dir):
        raise UsageError(f"DST {dst_dir} is inside SRC {src_dir}: outputs would mix with the originals; "
                         "choose a destination outside SRC")
    left_out = [] if left_out is None else left_out
    tasks: list[Task] = []
    # Absolute paths: dask workers do not share our working directory.
    src_dir, dst_dir = os.path.abspath(src_dir), os.path.abspath(dst_dir)

    def unlisted(e: OSError) -> None:
        left_out.append(Result(str(e.filename), "", FAILED, f"a folder that cannot be listed "
                                                           f"({e.strerror or e}): none of its files converted"))

    for root, dirs, files in os.walk(src_dir, onerror=unlisted):
        links = {d for d in dirs if os.path.islink(os.path.join(root, d))}
        for name in sorted(dirs + files):
            path = os.path.join(root, name)
            if name.startswith("."):
                left_out.append(Result(path, "", SKIPPED, "hidden (its name starts with '.'): left out"))
            elif name in links:
                left_out.append(Result(path, "", SKIPPED, "a link to a folder: not followed (give the folder "
                                                          "itself as SRC to convert it)"))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in links)
        for name in sorted(files):
            if name.startswith("."):
                continue
            src = os.path.join(root, name)
            broken_link = os.path.islink(src) and not os.path.exists(src)  # (reported by _convert)
            if not os.path.isfile(src) and not broken_link:  # a FIFO, a device: not a file to read
                continue
            rel = os.path.relpath(src, src_dir)
            tasks.append(Task(src, os.path.join(dst_dir, output_name(rel, to)), rel))
    return tasks


def _folds_case(folder: str) -> bool:
    """Whether ``folder``'s file system takes names that differ in case for one (macOS,
    exFAT, SMB shares): then x.dcm and X.DCM are one output there."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".hlc-case-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    try:
        other = os.path.join(folder, os.path.basename(probe).upper())
        return os.path.exists(other)
    finally:
        os.unlink(probe)


def same_outputs(tasks: list[Task], fold_case: bool = False) -> tuple[list[Task], list[Result]]:
    """``tasks`` less those whose output name another DICOM input's output takes too
    (``x.dcm`` and ``x``; with ``--to hlc`` also ``x.dcm`` and ``x.dicom``), and their
    results: each such DICOM input failed, naming the others (a shared name would leave
    one converted image in place of several, the others "already done"), and a non-DICOM
    input beside them skipped at once (the others' output is not its own). ``fold_case``:
    names that differ in case only are one (:func:`_folds_case`)."""
    from . import io

    def is_dicom(t: Task) -> bool:
        try:
            return io.sniff(t.src) == "dicom"
        except CliError:
            return True  # (unreadable: it fails on its own; never let it pass as the only one)

    by_name: dict[str, list[Task]] = {}
    for t in tasks:
        by_name.setdefault(t.dst.casefold() if fold_case else t.dst, []).append(t)
    kept, results = [], []
    for same in by_name.values():
        if len(same) == 1:
            kept += same
            continue
        dicom = [t for t in same if is_dicom(t)]
        results += [Result(t.src, t.dst, SKIPPED, "not a DICOM file") for t in same if t not in dicom]
        if len(dicom) == 1:
            kept += dicom
            continue
        for t in dicom:
            others = ", ".join(_shown(o.src) for o in dicom if o is not t)
            results.append(Result(t.src, t.dst, FAILED, f"its output {_shown(t.dst)} would also be that of "
                                                        f"{others}: rename one of them"))
    return sorted(kept, key=lambda t: t.rel), results


def remove_partials(dst_dir: str) -> int:
    """Delete temporary files left by a killed run; returns how many."""
    n = 0
    for root, _dirs, files in os.walk(dst_dir):
        for name in files:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                try:
                    os.unlink(os.path.join(root, name))
                    n += 1
                except OSError:
                    pass
    return n


# ------------------------------------------------------------------ one file

def _decoded_output(dst: str) -> tuple[Any, list[bytes]]:
    """The decoded pixels of an output file (found by its content) and its HLC streams.

    A DICOM output is parsed afresh from the file and decoded through
    ``pydicom.pixels.pixel_array(path)``, as a user's pydicom would
    (:func:`codec_core.cli.io.read_back_dicom`).
    """
    import codec_core as hlc

    from . import io

    if io.sniff(dst) == "hlc":
        with open(dst, "rb") as fh:
            data = fh.read()
        return hlc.decode(data, threads=1), [data]
    return io.read_back_dicom(dst)


def _stream_roi(stream: bytes) -> Any:
    """The pixels a hybrid stream keeps within its ROI error, shaped as its image
    without colour samples; None for a stream without an ROI."""
    import numpy as np

    import codec_core as hlc
    from codec_core import container, ecc, pipeline
    from codec_core.format import ROI_CLASS

    if not hlc.info(stream)["roi"]:
        return None
    if stream[:8] != container.MAGIC:  # Reed-Solomon protected
        stream, _ = ecc.unprotect(stream)
    h, _ = container.parse_header(stream)
    if h.flags & container.FLAG_REGIONS:  # region layers: the map is in the region block
        from codec_core.regions import stream_classes

        keep = stream_classes(stream) >= ROI_CLASS
    else:
        cmap = pipeline.unpack_class_map(h.class_map, pipeline.class_map_shape(h))
        keep = np.stack([pipeline.pixel_classes(cmap[f], h.roi_block, (0, h.rows, 0, h.cols)) >= ROI_CLASS
                         for f in range(h.frames)])
    return keep if container.AXES[h.axes].startswith("Z") else keep[0]


def verify_output(dst: str, original: Any, options: dict[str, Any],
                  colour: bool = False) -> tuple[str, int | None]:
    """Read ``dst`` back and check it against ``original``; returns (problem or "", max error).

    The output must decode to the original's shape and dtype, every stream within the
    bound its header promises, and within what ``options`` ask: exact for lossless,
    ``max_error`` for near-lossless, ``roi_max_error`` inside the ROI (a mask given in
    ``options["roi"]``, and the region each hybrid stream records). Not which coder
    made it: a lossless stream passes wherever a bound is asked, and any stream that
    keeps the bounds passes a lossy target (see the module's docstring). ``colour``:
    the last axis holds the samples of a pixel.
    """
    import numpy as np

    import codec_core as hlc

    try:
        out, streams = _decoded_output(dst)
        metas = [hlc.info(s) for s in streams]
    except Exception as e:  # damaged, truncated, not ours: all are verification failures
        return f"output does not decode ({type(e).__name__}: {' '.join(str(e).split())})", None
    a = original
    if out.shape != a.shape or out.dtype != a.dtype:
        return f"decoded {out.shape} {out.dtype}, the original is {a.shape} {a.dtype}", None
    diff = np.abs(out.astype(np.int64) - a.astype(np.int64))
    err = int(diff.max(initial=0))
    mode = options.get("mode", "lossless")
    if mode == "lossless" and err:
        return f"lossless output differs from the original (max error {err})", err
    if mode == "near-lossless" and err > int(options["max_error"]):
        return f"max error {err} exceeds --max-error {options['max_error']}", err
    parts = [diff] if len(streams) == 1 else list(diff)  # a DICOM file has a stream per frame
    for i, (meta, part) in enumerate(zip(metas, parts, strict=False)):
        bound = {"lossless": 0, "near-lossless": meta["max_error"]}.get(meta["mode"])
        if bound is not None and int(part.max(initial=0)) > bound:
            return (f"stream {i} decodes with error {int(part.max())} where its header promises "
                    f"at most {bound}"), err
    if options.get("roi") is not None:
        grey = diff.max(axis=-1) if colour else diff
        keep = np.zeros(grey.shape, bool)
        if not isinstance(options["roi"], str):
            keep |= np.broadcast_to(np.asarray(options["roi"], bool), grey.shape)
        # A stream without an ROI holds the whole image within roi_max_error (the
        # codec does that when it is the smaller file): all of it is kept then.
        shapes = [p.shape[:-1] if colour else p.shape for p in parts]
        regions = [np.ones(sh, bool) if r is None else r
                   for r, sh in zip((_stream_roi(s) for s in streams), shapes, strict=False)]
        keep |= regions[0] if len(regions) == 1 else np.stack(regions)
        roi_err, bound = int(grey[keep].max(initial=0)), int(options.get("roi_max_error", 0))
        if roi_err > bound:
            return f"error {roi_err} inside the ROI exceeds --roi-max-error {bound}", err
    return "", err


def check_written(original: Any, options: dict[str, Any], colour: bool,
                  result: dict[str, Any] | None = None) -> Any:
    """An ``atomic_write`` check: the temporary output must pass :func:`verify_output`.

    The largest error found is stored in ``result["max_abs_error"]``.
    """
    def check(tmp: str) -> None:
        problem, err = verify_output(tmp, original, options, colour)
        if result is not None:
            result["max_abs_error"] = err
        if problem:
            raise CliError(f"the output failed its read-back check and was not written: {problem}")

    return check


def convert_one(src: str, dst: str, options: dict[str, Any], verify: bool = False,
                overwrite: bool = False) -> Result:
    """Convert one file; never raises (every problem becomes the result's reason)."""
    t0 = time.perf_counter()
    res = Result(src, dst, FAILED)
    try:
        _convert(res, options, verify, overwrite)
    except KeyboardInterrupt:
        raise
    except CliError as e:
        res.reason = str(e)
    except MemoryError:
        res.reason = "out of memory"
    except OSError as e:
        res.reason = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        res.reason = f"{type(e).__name__}: {e}"
    res.reason = " ".join(res.reason.split())
    if res.reason.startswith(src):  # the summary names the file already
        res.reason = res.reason[len(src):].lstrip(":").strip().removeprefix("is ")
    res.seconds = time.perf_counter() - t0
    res.warnings, _WARNED[:] = _collapsed(_WARNED), []
    return res


def _collapsed(warned: list[str]) -> list[str]:
    """Warnings that differ in their figures only (the same warning for each frame: 26
    lines for one 30-frame file) as the first and a count."""
    from .io import warning_shape

    alike: dict[str, list[str]] = {}
    for w in warned:
        alike.setdefault(warning_shape(w), []).append(w)
    return [same[0] + (f" (and {len(same) - 1} more like it)" if len(same) > 1 else "") for same in alike.values()]


def _convert(res: Result, options: dict[str, Any], verify: bool, overwrite: bool) -> None:
    from . import io

    src, dst = res.src, res.dst
    if os.path.islink(src) and not os.path.exists(src):  # (plan() keeps links whose target is gone, to say so)
        res.status, res.reason = SKIPPED, "a broken symbolic link"
        return
    if os.path.getsize(src) == 0:  # (an empty placeholder, Thumbs.db: as a text file would be)
        res.status, res.reason = SKIPPED, "empty (0 bytes)"
        return
    kind = io.sniff(src)
    if kind != "dicom":
        res.status, res.reason = SKIPPED, "not a DICOM file"
        return
    exists = os.path.exists(dst)
    if not overwrite and not verify and _finished(dst):
        res.status = DONE
        res.bytes_out = os.path.getsize(dst)
        return
    if exists and io.same_file(dst, src):
        raise CliError("the output would overwrite this input: refused")
    try:
        image = io.read_dicom(src)
    except io.NoImage as e:  # an SR, a plan, a DICOMDIR: nothing to compress
        res.status, res.reason = SKIPPED, str(e)
        return
    res.bytes_in = os.path.getsize(src)
    found_damage = ""
    colour = image.axes.endswith("C")
    if exists and not overwrite:  # verify an output finished by an earlier run
        problem, err = verify_output(dst, image.array, options, colour)
        if not problem:
            res.status, res.bytes_out, res.max_abs_error = VERIFIED, os.path.getsize(dst), err
            return
        found_damage = problem
    # (the source's transfer syntax and lossy mark, before encoding rewrites the dataset)
    source = image.dataset.file_meta.TransferSyntaxUID, image.dataset.get("LossyImageCompression") == "01"
    data = io.encode_bytes(image, dst, dict(options, threads=1))
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    # Every new output is read back before it takes its name; one that fails is
    # removed, and so is an earlier output that failed verification (a later run
    # would take it for a finished one).
    checked: dict[str, Any] = {}
    try:
        res.bytes_out = io.atomic_write(dst, data, check_written(image.array, options, colour, checked), like=src)
    except CliError:
        if found_damage:
            os.unlink(dst)
        raise
    res.max_abs_error = checked.get("max_abs_error")
    _warn_if_grown(*source, res.bytes_in, res.bytes_out)
    if found_damage:
        res.status, res.reason = REPAIRED, f"existing output failed verification ({found_damage}); converted again"
    else:
        res.status = CONVERTED


def _warn_if_grown(ts: Any, lossy: bool, bytes_in: int, bytes_out: int) -> None:
    """A warning (the summary's, per file) when an output is larger than its source: a
    source compressed already, lossily above all, is better left as it is (its
    decoded pixels, what HLC keeps, also differ a little between JPEG decoders)."""
    import warnings

    if bytes_out <= bytes_in:
        return
    why = ""
    if ts.is_compressed:
        why = f": the source is {'lossy ' if lossy else ''}compressed already ({ts.name}); consider keeping it as it is"
    warnings.warn(f"the output is larger than the source ({_fmt_bytes(bytes_in)} -> {_fmt_bytes(bytes_out)}){why}",
                  stacklevel=2)


# ------------------------------------------------------------------ running

class Stopped(KeyboardInterrupt):
    """A signal that stops the batch: a KeyboardInterrupt, so that ``kill`` (SIGTERM) and
    a hang-up (SIGHUP) go the way of Ctrl-C (workers ended, summary and report written)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: The signals that stop a batch (no SIGHUP on Windows).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


@contextmanager
def stop_signals() -> Iterator[Callable[[], None]]:
    """Within: SIGINT, SIGTERM and SIGHUP raise :class:`Stopped` in the main thread.

    The first one only: later ones are ignored until the block ends, so that they
    cannot cut short the ending of the workers and the summary (SIGKILL still can).
    A signal ignored when the batch starts stays ignored (``nohup`` ignores SIGHUP).
    Yields a function that raises :class:`Stopped` again once a signal has come: the
    exception a handler raises is lost where it lands in code that ignores
    exceptions (a ``__del__``, a callback), so the batch checks between results too.
    """
    came: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        if not came:
            came.append(signum)
            raise Stopped(signum)

    def check() -> None:
        if came:
            raise Stopped(came[0])

    before = {s: signal.signal(s, stop) for s in STOP_SIGNALS if signal.getsignal(s) != signal.SIG_IGN}
    try:
        yield check
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


#: How often a worker looks for its batch, and how long it then has to stop cleanly.
PARENT_POLL_SECONDS, PARENT_GONE_GRACE_SECONDS = 0.5, 10.0


#: The warnings of the file a local worker is converting (see :func:`init_worker`).
_WARNED: list[str] = []


def init_worker(parent: int) -> None:
    """Initializer of a local pool's worker: its warnings go to the result of the file
    being converted (the summary and ``--json`` name the file), and it ends with the batch."""
    import warnings

    def keep(message: Warning | str, *_args: Any, **_kwargs: Any) -> None:
        _WARNED.append(" ".join(str(message).split()))

    warnings.showwarning = keep
    warnings.simplefilter("always")  # (Python's default shows a warning once a process: once a worker here)
    end_with_parent(parent)


def end_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the batch process ``parent`` is gone.

    A batch stopped by a signal it can catch ends its workers itself; one killed by
    SIGKILL (the OOM killer, ``kill -9``, a scheduler's hard stop) cannot, and its
    workers would wait on their task queue for ever, holding their memory. A daemon
    thread sees the parent go (the worker is re-parented): it interrupts the worker's
    main thread, so that a file being written is removed as on Ctrl-C (its output
    silenced), and exits the process if that has not ended it within the grace time.
    """
    import _thread
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        quiet = os.open(os.devnull, os.O_WRONLY)  # (no one reads them now: no traceback
        os.dup2(quiet, 1)                         # on the terminal the batch ran in)
        os.dup2(quiet, 2)
        _thread.interrupt_main()
        time.sleep(PARENT_GONE_GRACE_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="hlc-batch-parent-watch", daemon=True).start()


def _local_results(tasks: list[Task], options: dict, verify: bool, overwrite: bool,
                   workers: int) -> Generator[Result, None, None]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # The workers are the parallelism: keep each one's numeric libraries on one thread
    # (set before the children import numpy). A value the user set wins.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # spawn: workers start clean (no inherited thread pools or locks), on every platform.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(os.getpid(),))
    pending: set = set()
    todo = iter(tasks)
    try:
        while True:
            while len(pending) < 2 * workers:
                t = next(todo, None)
                if t is None:
                    break
                pending.add(pool.submit(convert_one, t.src, t.dst, options, verify, overwrite))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
    except BaseException:
        # Interrupted, or abandoned by the caller: end the workers now, mid-encode too,
        # rather than wait for their files (a worker sent no signal would go on
        # writing outputs after we are gone). The pool's workers are this process's
        # only multiprocessing children. The caller removes their partial files.
        for p in multiprocessing.active_children():
            p.terminate()
        for p in multiprocessing.active_children():
            p.join()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask_results(tasks: list[Task], options: dict, verify: bool, overwrite: bool,
                  address: str) -> Generator[Result, None, None]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise CliError("--scheduler needs dask.distributed: pip install 'hlc-codec[cluster]'") from None
    try:
        client = Client(address, timeout="15s")
    except ValueError as e:  # (raised parsing the address, before any connection)
        raise CliError(f"--scheduler {address} is not a dask scheduler address ({e}); "
                       "give it as tcp://HOST:PORT") from None
    except (OSError, TimeoutError) as e:
        raise CliError(f"cannot reach the dask scheduler at {address} ({e}); check the address "
                       "and that 'dask scheduler' is running") from None
    except Exception as e:  # noqa: BLE001 - something answered, in another protocol
        # (an HTTP server's reply read as a dask message asked numpy for 3 EiB: the
        # MemoryError was reported as "out of memory")
        raise CliError(f"the service at {address} did not answer as a dask scheduler (its reply read "
                       f"as a dask message gave {type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                       "check the address and port") from None
    try:
        window = 4 * max(1, len(client.scheduler_info().get("workers", {})))
        todo = iter(tasks)
        ac = as_completed()
        for t in (next(todo, None) for _ in range(window)):
            if t is not None:
                ac.add(client.submit(convert_one, t.src, t.dst, options, verify, overwrite, pure=False))
        for fut in ac:
            yield fut.result()
            t = next(todo, None)
            if t is not None:
                ac.add(client.submit(convert_one, t.src, t.dst, options, verify, overwrite, pure=False))
    finally:
        client.close()


def _finished(dst: str) -> bool:
    """Whether ``dst`` holds an output an earlier run finished: it exists and is not
    empty (outputs take their name whole, so an empty file there is not one of ours)."""
    return os.path.exists(dst) and os.path.getsize(dst) > 0


def _quick_done(tasks: list[Task], verify: bool, overwrite: bool) -> tuple[list[Task], list[Result]]:
    """Outputs that exist are done without asking a worker (unless they are to be checked)."""
    if verify or overwrite:
        return tasks, []
    todo, done = [], []
    for t in tasks:
        if _finished(t.dst):
            done.append(Result(t.src, t.dst, DONE, bytes_out=os.path.getsize(t.dst)))
        else:
            todo.append(t)
    return todo, done


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _shown(path: str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def summary_text(results: list[Result], total: int, seconds: float, where: str,
                 stopped_by: signal.Signals | None, removed: int) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    made = [r for r in results if r.status in (CONVERTED, REPAIRED)]
    bin_, bout = sum(r.bytes_in for r in made), sum(r.bytes_out for r in made)
    order = (CONVERTED, DONE, VERIFIED, REPAIRED, SKIPPED, FAILED)
    of = f" of {total}" if len(results) < total else ""  # (a stopped batch)
    shown = [s for s in order if counts.get(s) or s in (CONVERTED, FAILED)]
    lines = [f"{len(results)}{of} files: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in shown)]
    if made:
        lines.append(f"converted {_fmt_bytes(bin_)} -> {_fmt_bytes(bout)} (ratio {bin_ / max(bout, 1):.2f}) "
                     f"in {seconds:.1f} s, {len(made) / max(seconds, 1e-9):.2f} files/s, "
                     f"{bin_ / 1e6 / max(seconds, 1e-9):.1f} MB/s on {where}")
    else:
        lines.append(f"{seconds:.1f} s on {where}")
    if removed:
        lines.append(f"removed {removed} partial file(s) left by an interrupted run")
    for status, title in ((REPAIRED, "repaired"), (SKIPPED, "skipped"), (FAILED, "failed")):
        bad = [r for r in results if r.status == status]
        if bad:
            lines.append(f"{title}:")
            lines += [f"  {_shown(r.src)}: {r.reason}" for r in bad]
    warned = [r for r in results if r.warnings]
    if warned:
        lines.append("warnings:")
        lines += [f"  {_shown(r.src)}: {w}" for r in warned for w in r.warnings]
    if stopped_by:
        how = "Ctrl-C" if stopped_by == signal.SIGINT else stopped_by.name
        lines.append(f"interrupted ({how}): run the same command again to resume (finished files are skipped)")
    return "\n".join(lines)


def run_batch(args) -> int:
    with stop_signals() as check_stopped:
        return _run_batch(args, check_stopped)


def _run_batch(args, check_stopped: Callable[[], None]) -> int:
    from .io import check_can_write

    options = _batch_options(args)
    src, dst = args.source, args.destination
    left_out: list[Result] = []
    tasks = plan(src, dst, args.to, left_out)
    os.makedirs(dst, exist_ok=True)
    if args.json:  # (found after hours of work, a bad path lost the record of them)
        check_can_write(args.json)
    removed = remove_partials(dst)
    if not tasks and not left_out:
        print(f"hlc batch: no files under {src}")
        return 0
    total = len(tasks) + len(left_out)
    tasks, results = same_outputs(tasks, _folds_case(dst))
    results += left_out
    inputs = {os.path.realpath(t.src) for t in tasks}
    clash = [t for t in tasks if os.path.realpath(t.dst) in inputs]
    todo, done = _quick_done([t for t in tasks if t not in clash], args.verify, args.overwrite)
    results += done
    results += [Result(t.src, t.dst, FAILED, "the output would overwrite an input file: refused") for t in clash]
    workers = args.workers or max(1, os.cpu_count() or 1)
    where = f"dask scheduler {args.scheduler}" if args.scheduler else f"{workers} worker process(es)"
    t0 = time.perf_counter()
    stopped_by = _convert_all(todo, results, total, options, args, workers, check_stopped)
    seconds = time.perf_counter() - t0
    # The report first: after a hang-up the terminal may take no summary.
    report_error = None
    if args.json:
        from .io import atomic_write, json_text

        payload = {"seconds": seconds, "where": where, "options": dict(options),
                   "interrupted": stopped_by is not None, "signal": stopped_by.name if stopped_by else None,
                   "results": [asdict(r) for r in results]}
        try:
            atomic_write(args.json, json_text(payload, indent=1).encode())
        except (CliError, OSError) as e:  # (a full disk: the summary below is then the only record)
            report_error = f"hlc batch: error: the report {args.json} was not written ({e})"
    print(summary_text(results, total, seconds, where, stopped_by, removed), flush=True)
    if report_error:
        print(report_error, file=sys.stderr)
    if stopped_by:
        return 128 + stopped_by
    return 1 if report_error or any(r.status in (FAILED, REPAIRED) for r in results) else 0


def _batch_options(args) -> dict[str, Any]:
    """The codec's keywords for every file, and the checks of the batch's own flags."""
    from .parser import codec_options

    options = codec_options(args)
    if args.roi is not None and args.roi != "auto":
        raise UsageError("in a batch --roi must be 'auto' (one mask cannot fit every image)")
    if args.roi == "auto":
        options["roi"] = "auto"
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers is not None and args.scheduler:
        raise UsageError("--workers is for local processes; with --scheduler the cluster decides")
    cores = os.cpu_count() or 1
    if args.workers is not None and args.workers > 4 * cores:
        import warnings

        warnings.warn(f"--workers {args.workers} on {cores} cores: each worker process holds the codec and "
                      "an image in memory, and they share the cores (the default is one a core)", stacklevel=2)
    return options


def _convert_all(todo: list[Task], results: list[Result], total: int, options: dict, args, workers: int,
                 check_stopped: Callable[[], None]) -> signal.Signals | None:
    """Convert ``todo`` on the workers, appending to ``results`` with a progress bar;
    returns the signal that stopped the batch, if one did (the workers' partial files
    then removed)."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=len(results), unit="file", dynamic_ncols=True,
               disable=True if args.no_progress else None, file=sys.stderr)
    try:
        if todo:
            stream: Generator[Result, None, None] = (
                _dask_results(todo, options, args.verify, args.overwrite, args.scheduler) if args.scheduler
                else _local_results(todo, options, args.verify, args.overwrite, min(workers, len(todo))))
            with closing(stream):  # (a signal between two results ends the workers too)
                for r in stream:
                    results.append(r)
                    bar.update(1)
                    if r.status == FAILED and not bar.disable:
                        bar.write(f"failed: {_shown(r.src)}: {r.reason}", file=sys.stderr)
                    check_stopped()
    except KeyboardInterrupt as e:
        remove_partials(args.destination)  # those of the workers just ended
        return signal.Signals(getattr(e, "signum", signal.SIGINT))
    finally:
        bar.close()
    return None
