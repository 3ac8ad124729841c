"""Folders replaced whole: all of a stage's outputs from one run, or the previous ones.

Each file is already written atomically (gan.io), but metrics.json from a new run beside a
samples.png from an old one would still be a lie, and a dataset rewritten in place is
unusable until its last shard is written. `replaced_dir` yields a fresh temp folder beside
the output, named for its process like gan.io's temps (so one left by a killed process is
swept once that process is gone); when the block succeeds the files are fsynced and the
two folders exchange places in one step (Linux's renameat2 RENAME_EXCHANGE), then the old
one is deleted. Until then the previous output stays whole and usable; a failure or a kill
leaves it as it was (docs/architecture.md, 'Atomic writes').

Where the file system cannot exchange, the old folder is renamed aside and the new one
renamed in: a crash between those two renames leaves the old outputs in
`.<name>.<owner>.<random>.tmp.old` and no output folder. Once that owner is gone, the next
write beside it, or a reader that finds the folder missing (`restore_set_aside`), renames
the old outputs back (or, where the new folder made it in, removes them).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from gan.errors import GanError
from gan.io import (
    DIR_MODE,
    clean_stale_temps,
    disk_errors_name,
    fsync_path,
    make_dirs,
    owner_gone,
    real_path,
    temp_prefix,
)

_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_SET_ASIDE = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)\.[A-Za-z0-9_]+\.tmp\.old$"
)


def _sweep_set_aside(folder: Path, name: str | None = None) -> list[Path]:
    """Settle the previous outputs that fallback swaps killed between their two renames left
    in `folder` (those of `name` only, if given): renamed back where their output folder is
    missing, removed where the new one made it in. Returns the folders settled."""
    settled = []
    for old in folder.glob(".*.tmp.old") if folder.is_dir() else ():
        found = _SET_ASIDE.match(old.name)
        if not found or (name is not None and found["name"] != name) or old.is_symlink():
            continue
        with contextlib.suppress(OSError):  # gone already (another process settled it)
            age = time.time() - old.stat().st_mtime
            if not old.is_dir() or not owner_gone(int(found["pid"]), found["host"], age):
                continue
            out = folder / found["name"]
            if out.exists() or out.is_symlink():
                shutil.rmtree(old)
            else:
                os.rename(old, out)  # the old outputs, whole, where they were
            settled.append(old)
    return settled


def restore_set_aside(out: str | os.PathLike) -> bool:
    """For a reader that finds folder `out` missing: put back the previous `out` a killed
    fallback swap left aside (module doc). True when `out` is there now."""
    out = Path(out)
    if not out.exists():
        _sweep_set_aside(out.parent, out.name)
    return out.is_dir()


def temp_dir_beside(target: Path) -> Path:
    """A new hidden folder beside `target`, after sweeping the stale temps of dead processes
    there (every time: a long-lived process, a flow server, outlives the processes it saw
    killed); the caller removes it."""
    make_dirs(target.parent, target)
    _sweep_set_aside(target.parent)
    clean_stale_temps(target.parent, force=True)
    return Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the C library or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not glibc >= 2.28
        return False
    at, name = ctypes.c_int, ctypes.c_char_p
    renameat2.argtypes = [at, name, at, name, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, out: Path) -> Path | None:
    """Put folder `tmp` in the place of `out`; returns where the previous `out` now is."""
    if not out.exists():
        os.rename(tmp, out)
        return None
    if _exchange(tmp, out):
        return tmp
    old = tmp.with_name(tmp.name + ".old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)  # put the previous outputs back
        raise
    return old


@contextlib.contextmanager
def replaced_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp dir beside `out` (a symlink's real folder); on success it becomes
    `out`, in one step."""
    out = real_path(Path(out))
    if out.exists() and not out.is_dir():
        raise GanError(f"{out}: the output must be a folder, not a file")
    tmp = temp_dir_beside(out)
    os.chmod(tmp, stat.S_IMODE(out.stat().st_mode) if out.exists() else DIR_MODE)
    old = None
    try:
        with disk_errors_name(out):
            yield tmp
            for p in tmp.rglob("*"):
                if p.is_file() and not p.is_symlink():
                    fsync_path(p)
            fsync_path(tmp)
            old = _swap_in(tmp, out)
            fsync_path(out.parent)
    finally:
        for leftover in (tmp, old):  # the new folder on failure, the old one on success
            if leftover is not None and leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst, follow_symlinks=False)


def carry(old: Path, new: Path, names: Iterable[str]) -> None:
    """Keep entries of folder `old` (the user's own files among a stage's outputs) in `new`,
    as hard links where the file system has them, so replacing the folder keeps them."""
    for name in names:
        src, dst = old / name, new / name
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(src, dst)
