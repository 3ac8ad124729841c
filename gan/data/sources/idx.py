"""MNIST and Fashion-MNIST's IDX files, gzipped or not.

The images file is named (train-images-idx3-ubyte[.gz]); its labels file is found beside
it (train-labels-idx1-ubyte[.gz]), and so is the other split's pair (t10k-...), so the
train and test splits are kept as shipped. A file is a big-endian header, magic
0x00000803 for images (3 dimensions: count, rows, columns) or 0x00000801 for labels (1:
count), then exactly the bytes the dimensions promise; anything else is refused.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from gan.config import PreprocessConfig
from gan.data.sources.base import (
    MAX_ENTRY_BYTES,
    MAX_RATIO,
    SLACK_BYTES,
    Item,
    Source,
    array_items,
    class_index,
    fail,
)
from gan.io import sha256_file
from gan.messages import exception_line

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
SPLIT_PREFIXES = {"train": "train", "t10k": "test"}
OTHER_PREFIX = {"train": "t10k", "t10k": "train"}


def is_idx_name(name: str) -> bool:
    return name.lower().removesuffix(".gz").endswith("ubyte")


def is_idx_images(path: Path) -> bool:
    return is_idx_name(path.name) and "images" in path.name.lower()


def idx_files(path: Path) -> list[Path]:
    """Every file a read of the images file `path` reads: its labels, the other split's."""
    found = []
    for images in (path, *_split_images(path)):
        found += [p for p in (images, _beside(images, _labels_name(images.name))) if p]
    return list(dict.fromkeys(found))


def read_idx(path: Path, cfg: PreprocessConfig) -> Source:
    pairs = []
    for images_path in dict.fromkeys([path, *_split_images(path)]):
        images = _read(images_path, IMAGES_MAGIC)
        labels_path = _beside(images_path, _labels_name(images_path.name))
        if labels_path is None:
            raise fail(
                images_path,
                f"its labels file {_labels_name(images_path.name)}[.gz] is not beside it",
            )
        labels = _read(labels_path, LABELS_MAGIC)
        if len(images) != len(labels):
            raise fail(
                labels_path,
                f"{len(labels)} labels for the {len(images)} images of {images_path.name}",
            )
        pairs.append((images_path, images, labels))
    classes, index = class_index(v for _, _, y in pairs for v in np.unique(y).tolist())
    items: list[Item] = []
    rejected: list[dict[str, str]] = []
    total = sum(len(y) for _, _, y in pairs)
    with tqdm(total=total, desc="preprocess", unit="img", disable=None) as bar:
        for images_path, images, labels in pairs:
            split = SPLIT_PREFIXES.get(_prefix(images_path.name) or "")
            if len(pairs) == 1:
                split = None  # one split shipped: the test split is held out by test_fraction
            items += array_items(images_path.name, images, labels, split, index, cfg, rejected)
            bar.update(len(labels))
    files = {str(p): sha256_file(p) for p in idx_files(path)}
    layout = "classes" if classes else "flat"
    return Source("idx", layout, classes, items, rejected, files, files[str(path)])


def _prefix(name: str) -> str | None:
    return next((p for p in OTHER_PREFIX if name.lower().startswith(p)), None)


def _split_images(path: Path) -> list[Path]:
    """The other split's images file beside `path`, when there is one."""
    prefix = _prefix(path.name)
    if prefix is None:
        return []
    other = _beside(path, OTHER_PREFIX[prefix] + path.name[len(prefix) :])
    return [other] if other else []


def _labels_name(name: str) -> str:
    base = name.removesuffix(".gz")
    return re.sub("idx3", "idx1", re.sub("images", "labels", base, flags=re.I), flags=re.I)


def _beside(path: Path, name: str) -> Path | None:
    """`name` or `name`.gz in path's folder (the other compression is fine too)."""
    base = name.removesuffix(".gz")
    for candidate in (base, base + ".gz"):
        if (path.parent / candidate).is_file():
            return path.parent / candidate
    return None


def _read(path: Path, magic: int) -> np.ndarray:
    """The array an IDX file holds, after checking its magic number and its size."""
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or int.from_bytes(head, "big") != magic:
                raise fail(path, _wrong_magic(head, magic))
            ndim = head[3]
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise fail(path, "truncated in its header")
            dims = [int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(ndim)]
            size = math.prod(dims)
            if size > MAX_ENTRY_BYTES or (
                path.suffix == ".gz" and size > MAX_RATIO * path.stat().st_size + SLACK_BYTES
            ):
                raise fail(path, f"header promises {dims} = {size:,} bytes: refused as a bomb")
            data = f.read(size + 1)  # never more than the header promises, plus one
    except (OSError, EOFError, zlib.error) as exc:
        raise fail(path, f"truncated or corrupt ({exception_line(exc)})") from None
    if len(data) != size:
        holds = "more" if len(data) > size else f"{len(data):,}"
        raise fail(
            path,
            f"size does not match its header: dimensions {dims} promise {size:,} bytes of "
            f"data, the file holds {holds}",
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # type: ignore[return-value]


def _wrong_magic(head: bytes, magic: int) -> str:
    got = f"0x{int.from_bytes(head, 'big'):08x}" if len(head) == 4 else f"{len(head)} bytes"
    if magic == IMAGES_MAGIC and len(head) == 4 and int.from_bytes(head, "big") == LABELS_MAGIC:
        return "an IDX labels file: name the images file (…-images-idx3-ubyte) instead"
    kind = "images (uint8, 3 dimensions)" if magic == IMAGES_MAGIC else "labels (uint8, 1)"
    return f"wrong magic number {got}: not an IDX {kind} file, magic 0x{magic:08x}"
