"""Atomic file output and content hashing: a stage never leaves a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success move it into place with os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save through a temp file, so a crash mid-write keeps the previous file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a torch file without executing code from it (DESIGN principle 5)."""
    from gan.errors import GanError

    path = Path(path)
    if not path.is_file():
        raise GanError(f"{path}: file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated or not a torch file
        raise GanError(
            f"{path}: cannot be read as a checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


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
    from gan.errors import GanError

    path = Path(path)
    if not path.is_file():
        raise GanError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GanError(f"{path}: not valid JSON ({exc})") from exc
