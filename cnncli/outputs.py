"""Writing files safely: the one place that decides whether a path may be written, and writes it.

- :func:`check_output` refuses to write over any input of the run (ever, ``--force`` or not), a
  directory, or an existing file without ``force``.
- :func:`atomic_write` writes to a hidden temp file beside the target and renames it into place,
  so a reader never sees a partial file. The temp file is named after the process
  (``.NAME.<pid>-<random>.part``): a run killed with SIGKILL leaves one behind, and the next run
  writing to the same folder removes those whose process is gone.
- :func:`install_signal_handlers`: SIGINT, SIGTERM and SIGHUP remove every temp file still being
  written, print one line and end the process (exit 128 + the signal number).

Pure Python (no numpy): ``cnncli summary --svg`` writes through here too.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType

from cnncli.errors import CnnCliError

#: Temp files being written now; removed by the signal handlers.
_pending: set[str] = set()
_lock = threading.Lock()
#: Longest file name (bytes) most file systems take.
_NAME_MAX = 255
#: Temp names for targets whose own name leaves no room for the suffix.
_SHORT_PREFIX = ".cnncli."
_PART = re.compile(r"\.(\d+)-[0-9a-f]{8}\.part$")


class OutputError(CnnCliError):
    """An output that must not or cannot be written (exit 1)."""


def describe_os_error(err: OSError) -> str:
    """``"No space left on device"`` style text for an OSError, with the common cases named."""
    if err.errno == errno.ENAMETOOLONG:
        return "file name too long; use a shorter name"
    return err.strerror or str(err)


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (symlinks, hard links, ``..`` resolved)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError, ValueError):  # a loop of links, a bad name: not the same
        return False


def check_output(path: Path, inputs: Iterable[Path], force: bool) -> None:
    """Refuse to write ``path`` over an input of this run (ever), a directory, or an existing
    file without ``force``. ``inputs`` are every file the run reads: images, kernels, models."""
    for src in inputs:
        if same_file(src, path):
            which = "" if str(src) == str(path) else f" ({src})"
            raise OutputError(
                f"{path}: is an input of this run{which}; refusing to overwrite it, even with "
                "--force; choose another output name"
            )
    try:
        if path.is_dir():
            raise OutputError(f"{path}: is a directory; give a file name")
        exists = path.exists() or path.is_symlink()
        kind = _special_kind(path) if exists else None
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({describe_os_error(err)})") from None
    if kind is not None:
        # Renaming a file over /dev/null (as root) would replace the device itself.
        raise OutputError(f"{path}: is {kind}, not a regular file; give a file name")
    if exists and not force:
        raise OutputError(f"{path}: already exists; use --force to overwrite it")


def check_folder(path: Path) -> None:
    """Refuse an output whose folder does not exist, before any work (:func:`check_output`
    refuses devices and pipes)."""
    try:
        if not (path.parent if str(path.parent) else Path(".")).is_dir():
            raise OutputError(f"{path}: the folder {path.parent} does not exist")
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({describe_os_error(err)})") from None


def _special_kind(path: Path) -> str | None:
    """What an existing non-regular file is (``"a character device"``…), or None."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:  # a dangling link: writing replaces the link, not its target
        return None
    for test, kind in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive, leave its file alone
        return True
    return True


#: Per folder: the temp files of dead runs found there, listed once per process (a batch
#: writing many files into one folder would otherwise list it again for every file).
_leftovers: dict[str, list[os.DirEntry[str]]] = {}


def _dead_runs_files(parent: Path) -> list[os.DirEntry[str]]:
    key = os.path.abspath(parent)
    if key not in _leftovers:
        try:
            entries = list(os.scandir(parent))
        except OSError:
            entries = []
        found = []
        for entry in entries:
            m = _PART.search(entry.name) if entry.name.startswith(".") else None
            if m is not None and not _alive(int(m.group(1))):
                found.append(entry)
        _leftovers[key] = found
    return _leftovers[key]


def sweep_stale(parent: Path, name: str) -> None:
    """Remove temp files that a killed run writing ``name`` in ``parent`` left behind."""
    prefixes = (f".{name}.", _SHORT_PREFIX)
    files = _dead_runs_files(parent)
    for entry in [e for e in files if e.name.startswith(prefixes)]:
        files.remove(entry)
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def _temp_path(parent: Path, name: str) -> tuple[int, str]:
    tag = f"{os.getpid()}-{os.urandom(4).hex()}.part"
    prefix = f".{name}."
    if len((prefix + tag).encode()) > _NAME_MAX:
        prefix = _SHORT_PREFIX
    tmp = os.path.join(parent, prefix + tag)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    return os.open(tmp, flags, 0o600), tmp


def atomic_write(path: Path, write: Callable[[Path], None], make_dir: bool = False) -> None:
    """Call ``write(tmp_path)`` on a temp file next to ``path``, then rename it into place.

    Nothing is left behind if ``write`` fails or a signal ends the run; the file gets the usual
    umask permissions (the temp file is created 0600).
    """
    parent = path.parent if str(path.parent) else Path(".")
    if len(path.name.encode()) > _NAME_MAX:
        raise OutputError(f"{str(path)[:80]}…: file name too long; use a shorter name")
    if make_dir and not parent.is_dir():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(
                f"{parent}: cannot create the output directory ({describe_os_error(err)})"
            ) from None
    sweep_stale(parent, path.name)
    try:
        with _lock:
            fd, tmp = _temp_path(parent, path.name)
            _pending.add(tmp)
    except FileNotFoundError as err:
        if not parent.is_dir():
            raise OutputError(f"{path}: directory {str(parent)!r} does not exist") from None
        # The folder exists but takes no new files (/proc, /sys).
        raise OutputError(f"{path}: cannot write ({describe_os_error(err)})") from None
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({describe_os_error(err)})") from None
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise OutputError(f"{path}: cannot write ({describe_os_error(err)})") from None
        raise
    finally:
        with _lock:
            _pending.discard(tmp)


def write_text(path: Path, text: str, make_dir: bool = False) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)

    atomic_write(path, write, make_dir)


_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    """Remove every temp file being written, say so in one line, end the process now."""
    with _lock:
        leftovers = list(_pending)
        _pending.clear()
    for tmp in leftovers:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    name = signal.Signals(signum).name
    note = "; the unfinished output was removed" if leftovers else ""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    os.write(2, f"cnncli: error: interrupted by {name}{note}\n".encode())
    os._exit(128 + signum)


def install_signal_handlers() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to the cleanup above (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in _SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                signal.signal(sig, _on_signal)
            except (OSError, ValueError):  # not settable here (embedded interpreter)
                pass
