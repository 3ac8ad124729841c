"""Atomic file output and content hashing: a stage never leaves a half-written file.

A write goes to a hidden temp file beside its target, is fsync'ed, renamed into place and
the folder fsync'ed, so neither a crash nor a power loss leaves a torn file. A full disk
or a read-only folder becomes one GanError naming the path and the cause.

Only regular files are ever replaced: a symlink is followed and its real file replaced (the
link stays a link), and a character device or FIFO (`gan sample --out /dev/null`) is
written through, never renamed over; a block device or socket is refused.

Temp files, and the temp folders of gan/folders.py, are named
``.<name>.<pid>@<host>.<random>.tmp``. One left by a killed write is removed the next time
a process writes into (or a stage starts in) that folder, when it provably belongs to no
live process: its host is this host and its pid is gone. Temps of other hosts (a shared
folder) and of the older unnamed format are removed only once they are old
(STALE_SECONDS, LEGACY_STALE_SECONDS), as a live writer keeps touching its file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import stat
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan.errors import DiskError, GanError

if TYPE_CHECKING:  # torch is imported where it is used: `gan prepare` writes no torch file
    import torch

STALE_SECONDS = 24 * 3600  # another host's temp: surely dead after a day
LEGACY_STALE_SECONDS = 3600  # a temp without owner (older ganops): after an hour
HOST = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:32] or "host"  # as temps name it
_OWNED = re.compile(r"^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)\.[A-Za-z0-9_]+\.tmp$")
_LEGACY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_swept: set[str] = set()
FILE_MODE = 0o644
DIR_MODE = 0o755

_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "it is a folder",
    errno.ENOTDIR: "a part of its folder path is a file",
    errno.ENAMETOOLONG: "the name is too long",
}


def _disk_cause(folder: Path) -> str | None:
    """Why writing into `folder` fails, for libraries that hide the OSError (torch.save,
    safetensors report `iostream error` or a position mismatch)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return _CAUSES[errno.EROFS]
    if st.f_blocks == 0 and st.f_files == 0:  # /proc, /sys: not full, just not for files
        return "a virtual file system (such as /proc) that holds no files"
    if st.f_bavail * st.f_frsize < 1 << 20:
        return _CAUSES[errno.ENOSPC]
    if not os.access(folder, os.W_OK):
        return _CAUSES[errno.EACCES]
    return None


def write_error(path: Path, exc: BaseException) -> GanError | None:
    """The one GanError for a failed write of `path`, or None when the cause is not the disk."""
    cause = _CAUSES.get(getattr(exc, "errno", None) or -1) or _disk_cause(_existing(path.parent))
    if cause is None:
        return None
    return DiskError(path, cause)


@contextlib.contextmanager
def disk_errors_name(path: str | os.PathLike) -> Iterator[None]:
    """A disk failure in the block becomes one DiskError naming `path`: the output a person
    asked for, not the hidden temp file, the source being copied or no file at all."""
    try:
        yield
    except DiskError as exc:
        raise DiskError(path, exc.cause) from None
    except GanError:
        raise
    except Exception as exc:  # OSError, or a library's own (SafetensorError) on a full disk
        error = write_error(Path(path), exc)
        if error is None:
            raise
        raise error from None


def disk_error(exc: OSError) -> GanError | None:
    """A disk failure raised outside atomic_path (a mkdir, a library writing on its own) as
    the same one-line GanError, for the CLI's last line of defence; None for other errors."""
    cause = _CAUSES.get(exc.errno or -1)
    if cause is None or exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG):
        return None
    return GanError(f"{exc.filename}: {cause}" if exc.filename else f"cannot write: {cause}")


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def temp_prefix(name: str) -> str:
    """The start of a temp file's or folder's name: its target and its owner (module doc)."""
    return f".{name}.{os.getpid()}@{HOST}."


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """True for a temp file (or, named for its owner, temp folder) of ours that no live
    writer can still be using (see module doc)."""
    if path.is_symlink() or not (path.is_file() or path.is_dir()):
        return False
    owned, legacy = _OWNED.match(path.name), _LEGACY.match(path.name)
    if not owned and not (legacy and path.is_file()):
        return False
    age = (now or time.time()) - path.stat().st_mtime
    if owned:
        return owner_gone(int(owned["pid"]), owned["host"], age)
    return age > LEGACY_STALE_SECONDS


def owner_gone(pid: int, host: str, age: float) -> bool:
    """Whether the process a temp is named for (`<pid>@<host>`, `age` seconds old) can no
    longer be using it: gone from this host, or another host's and older than a day."""
    if host == HOST:
        return not pid_alive(pid)
    return age > STALE_SECONDS


def clean_stale_temps(folder: str | os.PathLike, force: bool = False) -> list[Path]:
    """Remove stale temp files and folders directly inside `folder`; once per folder and
    process unless `force`. Returns the removed paths."""
    folder = Path(folder)
    key = str(folder.resolve())
    if (key in _swept and not force) or not folder.is_dir():
        return []
    _swept.add(key)
    removed = []
    for p in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            if is_stale_temp(p):
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p)
    return removed


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's data, or a folder's renames, to disk; file systems that cannot fsync
    (EINVAL) are skipped."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def real_path(path: Path) -> Path:
    """Where a write of `path` lands: a symlink's final target (the link itself stays)."""
    if not path.is_symlink():
        return path
    real = Path(os.path.realpath(path))
    if real.is_symlink():
        raise GanError(f"{path}: cannot write: a loop of symlinks")
    return real


def _written_through(target: Path) -> bool:
    """True for a character device or FIFO, which a write goes into instead of replacing it;
    a block device or socket is refused."""
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return False
    if stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        what = "a block device" if stat.S_ISBLK(mode) else "a socket"
        raise GanError(f"{target}: cannot write: it is {what}, not a file")
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _target(path: Path) -> Path:
    """`path`, or the real file its symlink names; a link to a file without write permission
    (DVC's protected cache, cache.type symlink) is replaced itself, never written through."""
    real = real_path(path)
    with contextlib.suppress(OSError):
        if real != path and stat.S_ISREG(real.stat().st_mode) and not real.stat().st_mode & 0o222:
            return path
    return real


def make_dirs(folder: str | os.PathLike, written: str | os.PathLike | None = None) -> Path:
    """`mkdir -p folder`; a failure is one DiskError naming `written` (the file or folder a
    person asked for; default `folder`) and, where a file is in the way, that file (mkdir's
    own FileExistsError names only the part of the path that is a file)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # exist_ok covers folders, not files
        part = next((p for p in (*reversed(folder.parents), folder) if p.exists()
                     and not p.is_dir()), None)  # fmt: skip
        cause = f"{part} is a file, not a folder" if part else _CAUSES[errno.ENOTDIR]
        raise DiskError(written or folder, cause) from None
    except OSError as exc:
        error = write_error(folder, exc)
        if error is None:
            raise
        raise DiskError(written or folder, error.cause) from None
    return folder


def _temp_beside(target: Path) -> Path:
    make_dirs(target.parent, target)
    clean_stale_temps(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 would hide outputs from other users
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it, move it into place with
    os.replace and fsync the folder. Disk failures become one GanError naming `path`.

    A symlink's real file is replaced; a device or FIFO gets the finished bytes written
    into it from a temp file in the system's temp folder (module doc)."""
    target = _target(Path(path))
    tmp_path = None
    try:
        through = _written_through(target)
        if through:
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".tmp")
            os.close(fd)
            tmp_path = Path(tmp)
        else:
            tmp_path = _temp_beside(target)
        yield tmp_path
        if through:
            with open(tmp_path, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            fsync_path(tmp_path)
            os.replace(tmp_path, target)
            fsync_path(target.parent)
    except GanError:
        raise
    except Exception as exc:
        error = write_error(target, exc)
        if error is None:
            raise
        raise error from None
    finally:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                tmp_path.unlink(missing_ok=True)


def check_writable(folder: str | os.PathLike) -> None:
    """Fail now, naming `folder` and the cause, if a stage could not write there later."""
    folder = Path(folder)
    with disk_errors_name(folder), atomic_path(folder / ".write-check") as tmp:
        tmp.write_bytes(b"ok")
    with contextlib.suppress(OSError):
        (folder / ".write-check").unlink()
    cause = _disk_cause(folder)
    if cause:
        raise DiskError(folder, cause)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save through a temp file, so a crash mid-write keeps the previous file.

    Saving into an open file (not a path) lets a full disk surface as an OSError."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a torch file weights-only (docs/architecture.md, 'No-pickle loading')."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise GanError(f"{path}: is a folder, not a torch file")
    if not path.is_file():
        raise GanError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": it fails anyway
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch's own message runs to 7 lines and suggests unpickling
        raise GanError(f"{path}: {_torch_load_problem(exc)}") from None


def _torch_load_problem(exc: Exception) -> str:
    """What is wrong with a file torch.load refused, in a few words."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"GLOBAL (\S+)", text)
        if found:
            return f"refused: loading it would call {found[1]} (ganops loads tensors only)"
        return "not a weights-only torch file (a pickle of other objects, or corrupt)"
    if isinstance(exc, OSError):
        return f"cannot read ({exc.strerror or text})"
    if isinstance(exc, EOFError) or "central directory" in text:
        return "truncated or empty: not a whole torch file"
    return f"not a torch file, or corrupt ({type(exc).__name__}: {text.split('. ')[0][:200]})"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(root: str | os.PathLike, pattern: str = "*") -> str:
    """Hash of the relative names and contents of every file below `root`, in sorted order."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob(pattern) if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise GanError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise GanError(f"{path}: not valid JSON ({exc})") from None
    except ValueError:  # Python's limit on int(str): sys.get_int_max_str_digits()
        raise GanError(f"{path}: not valid JSON (a number with too many digits)") from None
    except OSError as exc:
        raise GanError(f"{path}: cannot read ({exc.strerror})") from None
