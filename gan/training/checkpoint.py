"""Checkpoints that resume exactly: nets, EMA, optimisers, schedulers, step and every RNG.

Files are `checkpoints/ckpt-<step>.pt`, written atomically; the newest `keep` are kept.
A checkpoint also stores a fingerprint of the config and data it was trained with
(gan/training/fingerprint.py), so a run resumes only when continuing it gives the same
result as starting it afresh.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from gan.errors import GanError
from gan.io import load_torch, save_torch

PATTERN = re.compile(r"ckpt-(\d{8})\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if PATTERN.search(p.name)), key=lambda p: p.name)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int) -> Path:
    path = checkpoint_dir(run_dir) / f"ckpt-{step:08d}.pt"
    save_torch(path, state)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    state = load_torch(path)
    required = {"step", "nets", "optimizers", "schedulers", "rng", "fingerprint"}
    if not isinstance(state, dict) or not required <= set(state):
        missing = sorted(required - set(state if isinstance(state, dict) else {}))
        raise GanError(f"{path}: not a ganops checkpoint (missing {', '.join(missing)})")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise GanError(f"{path}: not a ganops checkpoint ('step' is {step!r}, not a count)")
    if not isinstance(state["fingerprint"], str):
        raise GanError(f"{path}: not a ganops checkpoint ('fingerprint' is not a string)")
    return state


SET_ASIDE = re.compile(r"previous-(\d+)$")


def newest_readable(
    paths: list[Path],
) -> tuple[dict[str, Any] | None, Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint of `paths` (oldest first) that loads, its path, and the newer
    ones that did not, each with the reason."""
    broken = []
    for path in reversed(paths):
        try:
            return load_checkpoint(path), path, broken
        except GanError as exc:
            broken.append((path, str(exc)))
    return None, None, broken


def set_aside_dirs(run_dir: str | Path) -> list[Path]:
    """The set-aside generations, oldest first (`previous-1`, `previous-2`, ...)."""
    d = checkpoint_dir(run_dir)
    found = [p for p in d.iterdir() if p.is_dir() and SET_ASIDE.match(p.name)] if d.is_dir() else []
    return sorted(found, key=lambda p: int(SET_ASIDE.match(p.name)[1]))


def set_aside(run_dir: str | Path, keep: int = 3) -> Path | None:
    """Move checkpoints of a different config out of the way instead of deleting them.

    Each call makes a new generation `previous-<n>`; the newest `keep` generations are
    kept (0: none, the checkpoints are deleted). The older `previous` folder of earlier
    versions is left alone."""
    found = list_checkpoints(run_dir)
    if not found:
        return None
    existing = set_aside_dirs(run_dir)
    n = int(SET_ASIDE.match(existing[-1].name)[1]) + 1 if existing else 1
    dest = checkpoint_dir(run_dir) / f"previous-{n}"
    dest.mkdir()
    for p in found:
        p.rename(dest / p.name)
    for old in set_aside_dirs(run_dir)[: max(0, len(existing) + 1 - keep)]:
        shutil.rmtree(old)
    return dest if dest.exists() else None


def quarantine(path: str | Path) -> Path:
    """Rename an unreadable checkpoint so it is neither resumed from nor counted as kept."""
    path = Path(path)
    dest = path.with_name(path.name + ".corrupt")
    path.replace(dest)
    return dest
