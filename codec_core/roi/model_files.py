"""The bundled model files: where they are, their SHA-256 check, and loading them once.

The models are installed as data of :mod:`codec_core.models` (the repository's
``models/`` folder): ``roi_features.onnx`` (the CNN feature extractor),
``roi_svm.pkl`` (the block classifier) and ``denoiser.onnx``, listed with their
SHA-256 in ``SHA256SUMS`` and described in ``models/MODEL_CARD.md``. Every file is
checked against its sum before it is loaded; a missing or altered file raises
:class:`ModelIntegrityError`. onnxruntime and scikit-learn are imported only when a
model is loaded.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

FEATURES_FILE = "roi_features.onnx"
SVM_FILE = "roi_svm.pkl"
DENOISER_FILE = "denoiser.onnx"
SUMS_FILE = "SHA256SUMS"
MODEL_FILES = (FEATURES_FILE, SVM_FILE, DENOISER_FILE)
#: The package the model files are installed in (the repository's models/ folder).
MODELS_PACKAGE = "codec_core.models"


class ModelIntegrityError(RuntimeError):
    """A bundled model file is missing or does not match its SHA-256 in SHA256SUMS."""


class _Store:
    """The directory chosen by :func:`set_model_dir` and the models loaded from it."""

    def __init__(self) -> None:
        self.override: Path | None = None
        self.lock = threading.Lock()
        self.loaded: dict[tuple[str, str], Any] = {}


_STORE = _Store()


def set_model_dir(path: str | os.PathLike[str] | None) -> None:
    """Load models from ``path`` instead of the installed :mod:`codec_core.models`.

    ``None`` restores the default. Clears the cache of loaded models. Meant for tests
    and for sites that ship their own validated models.
    """
    with _STORE.lock:
        _STORE.override = None if path is None else Path(path)
        _STORE.loaded.clear()


def model_dir() -> Path:
    """The directory the models are loaded from.

    Order: :func:`set_model_dir`, the ``HLC_MODEL_DIR`` environment variable, the
    installed :mod:`codec_core.models` package, then ``models/`` beside ``codec_core/``
    in a source tree that is not installed.
    """
    if _STORE.override is not None:
        return _STORE.override
    env = os.environ.get("HLC_MODEL_DIR")
    if env:
        return Path(env)
    try:
        from importlib.resources import files

        candidate = Path(str(files(MODELS_PACKAGE)))
        if (candidate / SUMS_FILE).is_file():
            return candidate
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "models"


def _expected_sums(directory: Path) -> dict[str, str]:
    path = directory / SUMS_FILE
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelIntegrityError(f"model checksum file {path} is missing or unreadable: {exc}") from exc
    sums: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def verified_bytes(name: str) -> tuple[Path, bytes]:
    """Read a model file and check it against SHA256SUMS; raise ModelIntegrityError."""
    directory = model_dir()
    sums = _expected_sums(directory)
    path = directory / name
    if name not in sums:
        raise ModelIntegrityError(f"model file {name} has no entry in {directory / SUMS_FILE}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"model file {path} is missing or unreadable: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sums[name]:
        raise ModelIntegrityError(
            f"model file {path} fails its SHA-256 check (expected {sums[name]}, got {digest}); "
            "reinstall hlc-codec or run python -m models.training.train in the repository")
    return path, data


def verify_models() -> dict[str, str]:
    """Check every bundled model file; return {name: sha256}. Raises ModelIntegrityError."""
    return {name: hashlib.sha256(verified_bytes(name)[1]).hexdigest() for name in MODEL_FILES}


def cached(name: str, loader: Callable[[Path, bytes], Any]) -> Any:
    """The model file ``name`` loaded by ``loader(path, verified bytes)``, once per directory."""
    key = (str(model_dir()), name)
    with _STORE.lock:
        if key in _STORE.loaded:
            return _STORE.loaded[key]
    value = loader(*verified_bytes(name))
    with _STORE.lock:
        return _STORE.loaded.setdefault(key, value)


def import_onnxruntime() -> Any:
    """onnxruntime, imported with its telemetry off unless the user chose otherwise.

    onnxruntime 1.29 and newer (Linux too) starts a telemetry uploader when it is
    imported: it sends a process event to Microsoft, writes a device id under HOME and,
    where HOME is not writable (a service account), prints a warning on every run. A
    codec for medical images loads its ROI model without either: ``ORT_DISABLE_TELEMETRY=1``,
    read once when onnxruntime starts, turns all of it off. A value the user set is kept;
    an onnxruntime the process had already imported keeps the setting it started with.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


def onnx_session(path: Path, data: bytes) -> Any:
    """An onnxruntime session on one thread (the codec's threads are the parallelism)."""
    ort = import_onnxruntime()

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def load_svm(path: Path, data: bytes) -> Any:
    """The pickled scikit-learn classifier, checked to classify as its arrays say.

    scikit-learn warns (``InconsistentVersionWarning``) whenever an estimator is
    unpickled under another version than the one that saved it: every user but those
    on the training's version would see three such warnings on the first ``roi="auto"``.
    That warning is ignored here, and instead the loaded pipeline is held to what it
    stores (the scaler's mean and scale, the linear SVM's weights, intercepts and
    classes) on probe inputs: a scikit-learn that unpickles it into something that
    classifies otherwise is an error, not a warning to read past.
    """
    import pickle
    import warnings

    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings():  # (only that warning: any other goes on as it came)
        warnings.filterwarnings("ignore", category=InconsistentVersionWarning)
        # The bytes were checked against SHA256SUMS just above: this is the only pickle
        # HLC ever loads, and only after its hash matched.
        model = pickle.loads(data)  # noqa: S301
    _check_linear_pipeline(model, path, data)
    return model


def _check_linear_pipeline(model: Any, path: Path, data: bytes) -> None:
    """Raise unless ``model`` (a Pipeline of StandardScaler and LinearSVC) gives, on probe
    inputs, the decision values and classes its stored arrays give."""
    import numpy as np
    import sklearn

    try:
        scaler, svm = model.steps[0][1], model.steps[-1][1]
        mean, scale = np.asarray(scaler.mean_, float), np.asarray(scaler.scale_, float)
        weights, bias, classes = np.asarray(svm.coef_, float), np.asarray(svm.intercept_, float), svm.classes_
        probe = mean + scale * np.random.default_rng(0).normal(size=(64, mean.size)) * 3
        expected = ((probe - mean) / scale) @ weights.T + bias
        consistent = np.allclose(model.decision_function(probe), expected, rtol=1e-9, atol=1e-9) \
            and np.array_equal(model.predict(probe), classes[expected.argmax(1)])
    except (AttributeError, IndexError, TypeError, ValueError):  # (not the pipeline it was saved as)
        consistent = False
    if not consistent:
        raise RuntimeError(f"{path.name} (saved by scikit-learn {_saved_version(data)}) does not load as the "
                           f"classifier it stores under scikit-learn {sklearn.__version__}: install the version "
                           "that saved it")


def _saved_version(data: bytes) -> str:
    """The scikit-learn version a pickle was saved by (the string after its estimators'
    ``_sklearn_version`` key), read without loading it."""
    import pickletools

    strings = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
    try:
        return strings[strings.index("_sklearn_version") + 1]
    except (ValueError, IndexError):
        return "an unknown version"
