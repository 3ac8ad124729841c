"""uint8 tensor shards plus manifest.json: what preprocess writes and training reads.

Layout of a processed dataset directory:
  manifest.json          counts, classes, content hash, rejected files with reasons
  <split>-<k>.pt         {"images": uint8 [N,C,H,W], "labels": int64 [N], "domains": int64 [N]}
Labels are -1 where the data has no classes; domains are 0, or 0/1 (A/B) for unpaired data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gan.errors import GanError
from gan.io import load_torch, read_json, save_torch

MANIFEST = "manifest.json"


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


def read_manifest(processed_dir: str | Path) -> dict[str, Any]:
    processed_dir = Path(processed_dir)
    if not processed_dir.is_dir():
        raise GanError(f"{processed_dir}: processed dataset not found (run `gan preprocess` first)")
    return read_json(processed_dir / MANIFEST)


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
    files = list(splits[split].get("files") or [])
    return SplitData(images, labels, domains, manifest, files if len(files) == len(images) else [])
