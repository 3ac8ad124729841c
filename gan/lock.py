"""One process at a time per folder: one `gan train` per run, one `gan preprocess` per dataset.

Two trainings of one run would move each other's checkpoints aside and both write them;
two preprocesses of one dataset would swap half-built folders in. The lock is a file beside
the folder, ``.<name>.lock``, held with flock(2) for as long as the stage runs and naming
its holder (``<pid>@<host> <what>``), so the second process refuses at once with one line
naming the first. The kernel drops a flock when its process dies, so the file a killed
process leaves behind is simply locked again by the next one: a dead holder never blocks.
The file is removed on release (docs/architecture.md, 'Locks').
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from gan.errors import DiskError, GanError
from gan.io import FILE_MODE, HOST, make_dirs, write_error

_held: dict[int, Path] = {}  # fd -> lock file, closed in forked children (below)


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of `folder`: beside it, so it survives the folder being replaced."""
    real = Path(os.path.realpath(folder))
    return real.parent / f".{real.name or 'root'}.lock"


def _holder(path: Path) -> str:
    """Who holds the lock, as its file names them (a holder writes right after locking)."""
    for _ in range(20):
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                pid_host, _, what = text.partition(" ")
                pid, _, host = pid_host.partition("@")
                return f"{what or 'another process'} (PID {pid} on {host or 'this host'})"
        time.sleep(0.05)
    return "another process"


def _open(path: Path, folder: str | os.PathLike) -> int:
    """The lock file, opened; a failure names `folder`, the one the person asked for."""
    make_dirs(Path(folder).parent, folder)  # where the person named it, not its real path
    make_dirs(path.parent, folder)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        error = write_error(path, exc)
        if error is None:
            raise GanError(f"{folder}: cannot lock ({exc.strerror or exc})") from None
        raise DiskError(folder, error.cause) from None


def acquire(folder: str | os.PathLike, what: str) -> int:
    """Lock `folder` for `what` (e.g. "gan train") or raise GanError naming the holder;
    returns the descriptor to hand to `release`."""
    path = lock_path(folder)
    while True:
        fd = _open(path, folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise GanError(
                f"{folder}: {_holder(path)} is using it; wait for it to finish or stop it"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break  # locked the file that is still there, not one a releaser just removed
        os.close(fd)
    with contextlib.suppress(OSError):  # a full disk: locked all the same, holder unnamed
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}@{HOST} {what}\n".encode())
    _held[fd] = path
    return fd


def release(fd: int) -> None:
    """Remove the lock file, then unlock (in this order, so no one locks a removed file)."""
    path = _held.pop(fd, None)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
    os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold `folder`'s lock for the block; GanError at once when another process holds it."""
    fd = acquire(folder, what)
    try:
        yield
    finally:
        release(fd)


def _forget_in_child() -> None:
    """A forked child (a data loader's worker) must not keep its parent's locks alive."""
    for fd in list(_held):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
