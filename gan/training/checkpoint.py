"""Checkpoints that resume exactly: nets, EMA, optimisers, schedulers, step and every RNG.

Files are `checkpoints/ckpt-<step>.pt`, written atomically; the newest `keep` are kept.
A checkpoint also stores a fingerprint of the config and data it was trained with, so a
run resumes only when continuing it gives the same result as starting it afresh.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from gan.config import NEUTRAL_KEYS  # train params that do not change the weights
from gan.errors import GanError
from gan.io import load_torch, save_torch

PATTERN = re.compile(r"ckpt-(\d{8})\.pt$")


def fingerprint(train_params: dict[str, Any], data_hash: str) -> str:
    relevant = {k: v for k, v in train_params.items() if k not in NEUTRAL_KEYS}
    blob = json.dumps({"params": relevant, "data": data_hash}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
    return state


def set_aside(run_dir: str | Path) -> Path | None:
    """Move checkpoints of a different config out of the way instead of deleting them."""
    found = list_checkpoints(run_dir)
    if not found:
        return None
    dest = checkpoint_dir(run_dir) / "previous"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir()
    for p in found:
        p.rename(dest / p.name)
    return dest
