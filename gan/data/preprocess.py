"""The preprocess stage: an image folder in, uint8 tensor shards plus manifest.json out.

Three folder layouts are recognised, so users need no index file:

- ``cyclegan``: top-level trainA/trainB (optionally testA/testB); A is domain 0, B domain 1,
  the split comes from the folder (or, without any test folder, from test_fraction);
- ``classes``: every image inside one of at least two top-level folders, whose sorted names
  give the class indices;
- ``flat``: anything else (nesting allowed); no labels (-1).

Class subfolders inside the CycleGAN folders give labels the same way. The train/test split
is a pure function of the relative paths, the seed and test_fraction, so it does not
depend on the order the file system lists files in.

The input may also be a dataset file (a stylegan2-ada zip, CIFAR-10's binary archive, IDX
files): gan/data/sources/ reads those, and the splits they ship with are kept.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gan.config import PreprocessConfig, dump_section
from gan.data.images import IMAGE_EXTENSIONS, decode_image, is_image_file, skip_reason
from gan.data.shards import (
    MANIFEST,
    OUTPUTS,
    owned_outputs,
    record_outputs,
    tensor_hash,
    write_split,
)
from gan.data.sources import Item, Source, folder_source, read_file
from gan.errors import GanError
from gan.folders import carry, replaced_dir
from gan.io import is_stale_temp, real_path, write_json
from gan.lock import folder_lock

MANIFEST_VERSION = 1
SPLITS = ("train", "test")
DOMAINS = ("A", "B")
CYCLEGAN_DIRS = frozenset({"trainA", "trainB", "testA", "testB"})


def preprocess(cfg: PreprocessConfig) -> dict[str, Any]:
    """Decode, validate, split and shard the images under `cfg.input`; returns the manifest.

    One preprocess per output folder at a time (gan/lock.py); the new dataset is built
    beside the old one and swapped in whole (gan/folders.py)."""
    with folder_lock(cfg.output, "gan preprocess"):
        return _preprocess(cfg)


def _preprocess(cfg: PreprocessConfig) -> dict[str, Any]:
    root = Path(cfg.input)
    if not root.exists():
        raise GanError(
            f"{root}: preprocess.input not found (run `gan prepare` or point it at your images)"
        )
    if not (root.is_dir() or root.is_file()):
        raise GanError(f"{root}: preprocess.input must be a folder of images or a dataset file")
    source = read_file(root, cfg) if root.is_file() else _read_folder(root, cfg)
    layout, classes, items = source.layout, source.classes, source.items
    rejected = sorted(source.rejected, key=lambda r: r["file"])
    items = [it for it in items if it.image is not None]
    if not items:
        first = "; ".join(f"{r['file']}: {r['reason']}" for r in rejected[:3])
        raise GanError(
            f"{root}: no usable images: all {len(rejected)} image files were rejected "
            f"(first reasons: {first})"
        )
    _assign_splits(items, cfg)

    out = Path(cfg.output)
    kept = _users_files(out, _planned(items, cfg))
    with replaced_dir(out) as new:  # the old dataset stays whole and usable until the swap
        splits = {}
        for split in SPLITS:
            part = [it for it in items if it.split == split]
            splits[split] = _write_split(new, split, part, classes, layout, cfg)
        manifest = {
            "version": MANIFEST_VERSION,
            "layout": layout,
            "format": source.format,
            "source": str(cfg.input),
            "source_sha256": source.sha256,  # the file the dataset came in, if one
            "source_files": source.files,  # every dataset file read (not a folder's images)
            "resolution": cfg.resolution,
            "channels": cfg.channels,
            "classes": classes,
            "domains": list(DOMAINS) if layout == "cyclegan" else [],
            "splits": splits,
            "content_hash": _combine([splits[s]["hash"] for s in SPLITS]),
            "rejected": rejected,
            "params": dump_section(cfg),
        }
        record_outputs(new, {name for s in splits.values() for name in s["shards"]})
        write_json(new / MANIFEST, manifest)
        carry(real_path(out), new, kept)
    return manifest


def _read_folder(root: Path, cfg: PreprocessConfig) -> Source:
    """A folder of images in one of the layouts above, or a folder holding a dataset file."""
    skipped: list[dict[str, str]] = []
    files = find_images(root, skipped, cfg.follow_symlinks)
    source = folder_source(root, cfg, has_images=bool(files))
    if source is not None:
        return source
    if not files:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        why = f"; skipped {skipped[0]['file']}: {skipped[0]['reason']}" if skipped else ""
        raise GanError(f"{root}: no image files found (looked recursively for {exts}){why}")
    layout, classes, items = detect_layout(files, root)
    if layout == "cyclegan" and any(f.startswith("test") for f in files):
        for it in items:  # the folders give the split
            it.split = "test" if it.rel.startswith("test") else "train"
    rejected = skipped + _decode_all(root, items, cfg)
    return Source("folder", layout, classes, items, rejected)


def _planned(items: list[Item], cfg: PreprocessConfig) -> set[str]:
    """The shard names this run writes."""
    planned = set()
    for split in SPLITS:
        n = sum(it.split == split for it in items)
        planned |= {f"{split}-{k:05d}.pt" for k in range(max(1, math.ceil(n / cfg.shard_size)))}
    return planned


def _users_files(out: Path, planned: set[str]) -> list[str]:
    """The entries of an existing `out` that preprocess did not write: they are kept in the
    new dataset folder. One named like a shard this run writes is refused, not replaced."""
    if not out.is_dir():
        return []
    owned = owned_outputs(out) | {MANIFEST, OUTPUTS}
    users = sorted(p.name for p in out.iterdir() if p.name not in owned and not is_stale_temp(p))
    foreign = [name for name in users if name in planned]
    if foreign:
        raise GanError(
            f"{out / foreign[0]}: exists but was not written by preprocess; it would be "
            "overwritten, so move it away (or choose another preprocess.output)"
        )
    return users


def find_images(
    root: Path, skipped: list[dict[str, str]] | None = None, follow_symlinks: bool = False
) -> list[str]:
    """Relative POSIX paths of image files below `root`, sorted; hidden files and folders skipped.

    Hidden entries (.git, .dvc, macOS "._x.png" resource forks) are never data. Entries
    that look like images but cannot be read as files (broken links, folders named x.png,
    GIFs, unless `follow_symlinks` links to files outside `root`) are appended to `skipped`
    with their reason.
    """
    found = []
    inside = None if follow_symlinks else root.resolve()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        reason = skip_reason(path, inside)
        if reason is not None:
            if skipped is not None:
                skipped.append({"file": rel.as_posix(), "reason": reason})
        elif is_image_file(path):
            found.append(rel.as_posix())
    return sorted(found)


def detect_layout(files: list[str], root: Path) -> tuple[str, list[str], list[Item]]:
    """Name the layout of the sorted relative paths; returns (layout, class names, items)."""
    top_dirs = {f.split("/")[0] for f in files if "/" in f}
    top_files = [f for f in files if "/" not in f]
    if top_dirs & CYCLEGAN_DIRS:
        others = sorted(top_dirs - CYCLEGAN_DIRS) + top_files
        if others:
            raise GanError(
                f"{root}: looks like a CycleGAN layout (trainA/trainB/testA/testB) but has images "
                f"outside those folders, e.g. {others[0]!r}: move or remove them"
            )
        missing = sorted({"trainA", "trainB"} - top_dirs)
        if missing:
            raise GanError(f"{root}: CycleGAN layout without {' and '.join(missing)} (both needed)")
        inner = [f.split("/", 1)[1] for f in files]
        classes = _class_names(inner)
        items = [
            Item(f, label=_label(inner_f, classes), domain=DOMAINS.index(f.split("/")[0][-1]))
            for f, inner_f in zip(files, inner, strict=True)
        ]
        return "cyclegan", classes, items
    classes = _class_names(files)
    if classes:
        return "classes", classes, [Item(f, label=_label(f, classes)) for f in files]
    return "flat", [], [Item(f) for f in files]


def _class_names(paths: list[str]) -> list[str]:
    """Sorted class names when every path sits in one of at least two top-level folders.

    A single folder carries no class information, so it is treated as unlabelled data.
    """
    if any("/" not in p for p in paths):
        return []
    names = sorted({p.split("/")[0] for p in paths})
    return names if len(names) >= 2 else []


def _label(path: str, classes: list[str]) -> int:
    return classes.index(path.split("/")[0]) if classes else -1


def _decode_all(root: Path, items: list[Item], cfg: PreprocessConfig) -> list[dict[str, str]]:
    rejected = []
    for it in tqdm(items, desc="preprocess", unit="img", disable=None):
        result = decode_image(root / it.rel, cfg.resolution, cfg.channels, cfg.min_size)
        if result.ok:
            it.image = result.image
        else:
            rejected.append({"file": it.rel, "reason": result.reason})
    return rejected


def _assign_splits(items: list[Item], cfg: PreprocessConfig) -> None:
    """The split a source gave (CycleGAN's test folders, CIFAR-10's and MNIST's test sets)
    is kept; the rest are stratified by seed.

    Strata are (domain, class). The test count is round(N * test_fraction), at least one
    when test_fraction > 0, shared out over strata by largest remainder; within a stratum
    the test images are those with the smallest hash of (seed, path).
    """
    items = [it for it in items if it.split is None]
    if not items:
        return
    if cfg.test_fraction > 0 and len(items) < 2:
        raise GanError(
            f"{cfg.input}: only {len(items)} usable image, cannot hold out a test split "
            f"(set preprocess.test_fraction: 0 or add images)"
        )
    strata: dict[tuple[int, int], list[Item]] = {}
    for it in items:
        strata.setdefault((it.domain, it.label), []).append(it)
    keys = sorted(strata)
    quotas = _apportion([len(strata[k]) for k in keys], cfg.test_fraction)
    for key, quota in zip(keys, quotas, strict=True):
        ranked = sorted(strata[key], key=lambda it: _split_key(cfg.seed, it.rel))
        for rank, it in enumerate(ranked):
            it.split = "test" if rank < quota else "train"


def _apportion(sizes: list[int], fraction: float) -> list[int]:
    """Per-stratum test counts summing to round(N * fraction) (>= 1 when fraction > 0)."""
    total = round(sum(sizes) * fraction)
    if fraction > 0:
        total = max(total, 1)
    exact = [n * fraction for n in sizes]
    quotas = [math.floor(x) for x in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in order[: max(0, total - sum(quotas))]:
        quotas[i] += 1
    return quotas


def _split_key(seed: int, rel: str) -> str:
    return hashlib.sha256(f"{seed}\0{rel}".encode()).hexdigest()


def _write_split(
    out: Path,
    split: str,
    items: list[Item],
    classes: list[str],
    layout: str,
    cfg: PreprocessConfig,
) -> dict[str, Any]:
    shape = (cfg.channels, cfg.resolution, cfg.resolution)
    images = (
        torch.stack([it.image for it in items])
        if items
        else torch.empty((0, *shape), dtype=torch.uint8)
    )
    labels = torch.tensor([it.label for it in items], dtype=torch.int64)
    domains = torch.tensor([it.domain for it in items], dtype=torch.int64)
    shards = write_split(out, split, images, labels, domains, cfg.shard_size)
    per_class = Counter(it.label for it in items)
    info: dict[str, Any] = {
        "count": len(items),
        "shards": shards,
        "per_class": {name: per_class.get(i, 0) for i, name in enumerate(classes)},
        "hash": tensor_hash(images, labels, domains),
        "files": [it.rel for it in items],  # in shard order: lets evaluation find ground truth
    }
    if layout == "cyclegan":
        per_domain = Counter(it.domain for it in items)
        info["per_domain"] = {name: per_domain.get(d, 0) for d, name in enumerate(DOMAINS)}
    return info


def _combine(hashes: list[str]) -> str:
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()
