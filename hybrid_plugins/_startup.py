"""Start-up hook: register the Pillow and pydicom plugins when those toolkits are imported.

``hlc_autoregister.pth`` (installed at the top of site-packages) imports this module
when the interpreter starts. Pillow has no plugin entry points and pydicom has no
public codec registry, so the hook puts a tiny finder at the front of
``sys.meta_path``. The finder does nothing until ``PIL.Image`` or ``pydicom`` is
imported; then it wraps that module's loader so that, right after the module has
executed, the matching ``hybrid_plugins.register_*`` function runs. Once both
toolkits have been seen the finder removes itself.

Cost at start-up: this module plus ``hybrid_plugins/__init__`` (and its ``_constants``); nothing else is
imported (no numpy, no toolkit). ``HLC_NO_AUTOREGISTER=1`` switches the hook off.
"""
from __future__ import annotations

import os
import sys

ENV_SWITCH = "HLC_NO_AUTOREGISTER"

# module whose first import triggers registration -> name of the register function
_TRIGGERS = {"PIL.Image": "register_pillow", "pydicom": "register_pydicom"}


class _RegisteringLoader:
    """Delegates to the real loader, then registers the HLC plugin for the module."""

    def __init__(self, loader, register_name: str) -> None:
        self._loader = loader
        self._register_name = register_name

    def __getattr__(self, name):  # get_resource_reader, get_data, is_package, ...
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        # Put the real loader back first so that nothing sees this wrapper later.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        try:
            import hybrid_plugins

            getattr(hybrid_plugins, self._register_name)()
        except Exception as exc:  # never break the user's import because of HLC
            import warnings

            warnings.warn(f"HLC plugin registration failed ({self._register_name}): {exc!r}",
                          RuntimeWarning, stacklevel=2)


class RegisterOnImportFinder:
    """Meta-path finder that only reacts to the trigger modules, then removes itself."""

    def __init__(self) -> None:
        self.pending = dict(_TRIGGERS)

    def find_spec(self, fullname, path=None, target=None):
        register_name = self.pending.get(fullname)
        if register_name is None:
            return None
        del self.pending[fullname]
        if not self.pending:
            self.uninstall()
        spec = None
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisteringLoader(spec.loader, register_name)  # type: ignore[assignment]  # a wrapper
        return spec

    def uninstall(self) -> None:
        try:  # noqa: SIM105 (contextlib is not imported at start-up for this)
            sys.meta_path.remove(self)
        except ValueError:
            pass


def install() -> RegisterOnImportFinder | None:
    """Install the finder once per process, unless ``HLC_NO_AUTOREGISTER=1``."""
    if os.environ.get(ENV_SWITCH, "").strip() not in ("", "0"):
        return None
    for finder in sys.meta_path:
        if isinstance(finder, RegisterOnImportFinder):
            return finder
    finder = RegisterOnImportFinder()
    sys.meta_path.insert(0, finder)
    return finder


install()
