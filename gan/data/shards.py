"""uint8 tensor shards plus manifest.json: what preprocess writes and training reads.

Layout of a processed dataset directory:
  manifest.json          counts, classes, content hash, rejected files with reasons
  <split>-<k>.pt         {"images": uint8 [N,C,H,W], "labels": int64 [N], "domains": int64 [N]}
  .outputs.json          the files preprocess wrote here: the only ones it ever removes
Labels are -1 where the data has no classes; domains are 0, or 0/1 (A/B) for unpaired data.
Loading checks the manifest's shape and each split's content hash, so a hand-edited
manifest or a shard whose pixels were changed is refused, naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gan.errors import GanError
from gan.folders import restore_set_aside
from gan.io import load_torch, read_json, save_torch, write_json

MANIFEST = "manifest.json"
OUTPUTS = ".outputs.json"


@dataclass
class SplitData:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N], -1 where unknown
    domains: torch.Tensor  # int64 [N]
    manifest: dict[str, Any]
    files: list[str] = field(default_factory=list)  # source paths, where preprocess kept them

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def domain(self, d: int) -> SplitData:
        keep = self.domains == d
        files = [f for f, k in zip(self.files, keep.tolist(), strict=False) if k]
        return SplitData(
            self.images[keep], self.labels[keep], self.domains[keep], self.manifest, files
        )


def write_split(
    out_dir: str | Path,
    split: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    domains: torch.Tensor,
    shard_size: int,
) -> list[str]:
    """Write one split as shards of at most `shard_size` images; returns the file names."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("images must be a uint8 tensor [N, C, H, W]")
    out_dir = Path(out_dir)
    names = []
    for k, start in enumerate(range(0, max(len(images), 1), shard_size)):
        name = f"{split}-{k:05d}.pt"
        sl = slice(start, start + shard_size)
        save_torch(
            out_dir / name,
            {
                "images": images[sl].contiguous().clone(),
                "labels": labels[sl].to(torch.int64).clone(),
                "domains": domains[sl].to(torch.int64).clone(),
            },
        )
        names.append(name)
    return names


def tensor_hash(*tensors: torch.Tensor) -> str:
    """sha256 of the shard contents (dtype, shape, bytes), independent of torch's file format."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def owned_outputs(out_dir: str | Path) -> set[str]:
    """Names of the files preprocess wrote in `out_dir`: its ledger, plus the shards an
    older manifest (from before the ledger) lists. Anything else there is the user's."""
    out_dir = Path(out_dir)
    names: set[str] = set()
    for file, key in ((OUTPUTS, "files"), (MANIFEST, None)):
        try:
            data = read_json(out_dir / file) if (out_dir / file).is_file() else {}
        except GanError:
            continue
        if not isinstance(data, dict):
            continue
        if key:
            names |= {n for n in data.get(key) or [] if isinstance(n, str)}
        elif isinstance(data.get("splits"), dict):
            for info in data["splits"].values():
                shards = info.get("shards") if isinstance(info, dict) else None
                names |= {n for n in shards or [] if isinstance(n, str)}
    return {n for n in names if n and Path(n).name == n}  # plain names in this folder only


def record_outputs(out_dir: str | Path, names: set[str]) -> None:
    write_json(Path(out_dir) / OUTPUTS, {"files": sorted(names)})


def _fail(path: Path, what: str) -> GanError:
    return GanError(f"{path}: {what} (rerun `gan preprocess` to rebuild it)")


def check_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    """The keys training and evaluation read, with their types; one error naming the key."""
    if not isinstance(manifest, dict):
        raise _fail(path, "not a manifest (expected a JSON object)")
    for key, kind in (("resolution", int), ("channels", int), ("content_hash", str)):
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise _fail(path, f"{key}: missing or not a {kind.__name__}")
    for key in ("classes", "domains"):
        value = manifest.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(path, f"{key}: must be a list of names")
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise _fail(path, "splits: missing or not a mapping of split names")
    for name, info in splits.items():
        shards = info.get("shards") if isinstance(info, dict) else None
        count = info.get("count") if isinstance(info, dict) else None
        if not isinstance(shards, list) or not all(isinstance(n, str) for n in shards):
            raise _fail(path, f"splits.{name}.shards: must be a list of file names")
        if any(Path(n).name != n or n in ("", ".", "..") for n in shards):
            raise _fail(path, f"splits.{name}.shards: names must be files in this folder")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise _fail(path, f"splits.{name}.count: must be a whole number >= 0")
    return manifest


def read_manifest(processed_dir: str | Path) -> dict[str, Any]:
    processed_dir = Path(processed_dir)
    if not restore_set_aside(processed_dir):  # or put back where a killed rewrite left it
        raise GanError(f"{processed_dir}: processed dataset not found (run `gan preprocess` first)")
    path = processed_dir / MANIFEST
    return check_manifest(read_json(path), path)


def load_split(processed_dir: str | Path, split: str) -> SplitData:
    processed_dir = Path(processed_dir)
    manifest = read_manifest(processed_dir)
    splits = manifest.get("splits", {})
    if split not in splits:
        raise GanError(f"{processed_dir / MANIFEST}: no split {split!r} (has {sorted(splits)})")
    parts = [load_torch(processed_dir / name) for name in splits[split]["shards"]]
    try:
        images = torch.cat([p["images"] for p in parts])
        labels = torch.cat([p["labels"] for p in parts])
        domains = torch.cat([p["domains"] for p in parts])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise GanError(
            f"{processed_dir}: shards of split {split!r} are malformed ({exc})"
        ) from None
    if images.dtype != torch.uint8 or len(images) != splits[split]["count"]:
        raise GanError(f"{processed_dir}: shards of split {split!r} do not match manifest.json")
    expected = splits[split].get("hash")  # written by preprocess (hand-made sets may lack it)
    if expected is not None and tensor_hash(images, labels, domains) != expected:
        raise GanError(
            f"{processed_dir}: shards of split {split!r} were changed after preprocessing "
            "(content hash differs from manifest.json); rerun `gan preprocess`"
        )
    files = list(splits[split].get("files") or [])
    return SplitData(images, labels, domains, manifest, files if len(files) == len(images) else [])
