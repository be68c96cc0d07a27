"""Where numba caches the compiled kernels: decided here, once, before numba loads them.

The kernels are compiled with ``cache=True`` so that the 25-36 s compile is paid
once, not per process. numba looks for a writable place itself (``NUMBA_CACHE_DIR``
if set, else ``__pycache__`` beside the sources, else the user's cache directory
under HOME) and, when none is writable (a read-only install run by a service
account or in a container without a writable HOME), raises "cannot cache function
...: no locator available" at import. This module keeps numba's own choice when it
has one and otherwise points numba at a private directory under the system's
temporary directory, or, failing that too, turns caching off (every process then
compiles the kernels itself: slow, but it works).

The private directory is ``<tempdir>/hlc-numba-cache-<uid>``, created mode 0700;
one that already exists is used only if it is a real directory (not a symlink)
owned by this user and not writable by anyone else, since numba loads code from it.
The choice is also put in the environment (``NUMBA_CACHE_DIR``), so that worker
processes (``hlc batch``) read the cache their parent filled.

Kernel modules import :data:`CACHE` from here before defining their kernels and pass
it as ``cache=CACHE``.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile

_SOURCES = os.path.dirname(os.path.abspath(__file__))


def writable_dir(path: str) -> bool:
    """Whether ``path`` is (or can be made) a directory we can write into: numba's own
    test (make the directories, create a temporary file there)."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _numba_would_cache() -> bool:
    """Whether one of numba's own cache locations for these sources is writable."""
    if os.environ.get("NUMBA_CACHE_DIR") and writable_dir(os.environ["NUMBA_CACHE_DIR"]):
        return True
    if writable_dir(os.path.join(_SOURCES, "__pycache__")):
        return True
    from numba.misc.appdirs import AppDirs  # numba's user-wide location (under HOME)
    return writable_dir(AppDirs(appname="numba", appauthor=False).user_cache_dir)


def private_cache_dir(base: str | None = None) -> str | None:
    """This user's own cache directory under ``base`` (default: the system's
    temporary directory), created 0700; None if it cannot be made or is not safe."""
    base = tempfile.gettempdir() if base is None else base
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    path = os.path.join(base, f"hlc-numba-cache-{user}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):  # a symlink or a file planted by someone else
        return None
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        return None  # another user's, or writable by others: its code cannot be trusted
    return path if writable_dir(path) else None


def choose() -> bool:
    """Decide where numba caches; returns whether it caches at all."""
    if _numba_would_cache():
        return True
    path = private_cache_dir()
    if path is None:
        return False
    os.environ["NUMBA_CACHE_DIR"] = path  # for worker processes started from here
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba already imported: its settings were read then
        config.CACHE_DIR = path
    return True


#: ``cache=`` for the kernels' ``njit``.
CACHE = choose()
