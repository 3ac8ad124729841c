"""Reference features on disk in a format that cannot run code: safetensors, verified on load.

torch-fidelity's own cache (``cache=True``) unpickles ``.pt`` files with weights_only off,
so a file planted in its cache folder would run when evaluation starts
(docs/architecture.md, 'No-pickle loading'). We never turn it on; the reference side's
features are kept here instead, one file per reference:

    <cache_dir>/<readable prefix>-<first 16 hex of the key's sha256>.safetensors

The key (stored in full in the file's metadata) names everything the features depend on:
the sha256 of the reference pixels themselves, the extractor's registered name and weights
hash, its extra kwargs, the feature layers, the batch size and the device type. A file is
used only if its metadata key equals the expected one, it holds exactly the expected layers,
each a 2-D float32/float64 tensor with one row per reference image, and each tensor's bytes
match the sha256 recorded beside it. Anything else (an unreadable file, a pickle under our
name, a stale or tampered entry) is ignored with a warning, recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gan.io import atomic_path

FORMAT = "ganops-reference-features/1"
SUFFIX = ".safetensors"
FLOAT_DTYPES = (torch.float32, torch.float64)

Features = dict[str, torch.Tensor]


def images_sha256(images: torch.Tensor) -> str:
    """sha256 of a uint8 image tensor's shape and bytes: the data the features come from."""
    x = images.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{x.dtype}{tuple(x.shape)}".encode())
    h.update(x.numpy().tobytes())
    return h.hexdigest()


def tensor_sha256(t: torch.Tensor) -> str:
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_path(cache_dir: str | Path, prefix: str, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(_key_json(key).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{prefix}-{digest}{SUFFIX}"


def _key_json(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _verified(path: Path, key: dict[str, Any], layers: list[str], count: int) -> Features:
    """The features in `path`; raises ValueError saying why they cannot be used."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if meta.get("key") != _key_json(key):
            raise ValueError("its key differs from this reference's")
        if sorted(f.keys()) != sorted(layers):
            raise ValueError(f"holds layers {sorted(f.keys())}, expected {sorted(layers)}")
        features = {name: f.get_tensor(name) for name in layers}
    hashes = json.loads(meta.get("sha256", "{}"))
    for name, t in features.items():
        if t.ndim != 2 or t.shape[0] != count or t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"layer {name!r} is {t.dtype} {tuple(t.shape)}, expected {count} rows")
        if hashes.get(name) != tensor_sha256(t):
            raise ValueError(f"layer {name!r} does not match its recorded sha256")
    return features


def load_features(
    path: Path, key: dict[str, Any], layers: list[str], count: int
) -> Features | None:
    """Verified features, or None (with a warning when a file was there but unusable)."""
    if not path.is_file():
        return None
    try:
        return _verified(path, key, layers, count)
    except Exception as exc:  # safetensors refuses anything that is not its format
        warnings.warn(
            f"{path}: ignoring the cached reference features ({exc}); recomputing", stacklevel=3
        )
        return None


def save_features(path: Path, key: dict[str, Any], features: Features) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in features.items()}
    meta = {
        "format": FORMAT,
        "key": _key_json(key),
        "sha256": json.dumps({k: tensor_sha256(v) for k, v in tensors.items()}, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def cached_features(
    cache_dir: str | Path,
    prefix: str,
    key: dict[str, Any],
    layers: list[str],
    count: int,
    compute: Callable[[], Features],
) -> Features:
    """The reference's features from the cache when it holds a valid entry, else computed
    and stored (atomically) for next time."""
    path = cache_path(cache_dir, prefix, key)
    features = load_features(path, key, layers, count)
    if features is None:
        features = {k: v for k, v in compute().items() if k in layers}
        save_features(path, key, features)
    return features
