"""What every reader of a dataset file shares: the items it hands preprocess, the limits
that stop a hostile archive before its content is read, and how labels become classes.

Archives are read in memory, never unpacked; an entry whose path escapes the folder it
would be unpacked into is refused all the same, as are declared sizes no real dataset has
(a zip bomb): such a file is not the dataset its user meant, and the next tool to unpack it
would be harmed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gan.config import PreprocessConfig
from gan.data.images import decode_array
from gan.errors import GanError

if TYPE_CHECKING:
    import torch

MAX_ENTRY_BYTES = 1 << 30  # one image, one CIFAR batch, one IDX file: far below this
MAX_RATIO = 100  # declared bytes per stored byte: images compress 1-4x, bombs 1000x
SLACK_BYTES = 1 << 20  # small entries (dataset.json, tiny test sets) may compress better

PICKLED_CIFAR = re.compile(r"(data_batch_\d+|test_batch|batches\.meta)")
PICKLE_HINT = (
    "the CIFAR-10 python version stores its batches as pickles, which ganops never loads "
    "(unpickling can run code): use the binary version, cifar-10-binary.tar.gz (or its "
    "extracted folder cifar-10-batches-bin)"
)


@dataclass
class Item:
    """One image and where the layout puts it; `split` is None until it is assigned."""

    rel: str  # path relative to the input folder (or name in an archive), POSIX separators
    label: int = -1
    domain: int = 0
    split: str | None = None
    image: torch.Tensor | None = None


@dataclass
class Source:
    """A dataset as read: its items (decoded, or rejected with a reason) and provenance."""

    format: str  # folder, stylegan2-zip, cifar10-binary, idx
    layout: str  # flat, classes, cyclegan
    classes: list[str]
    items: list[Item]
    rejected: list[dict[str, str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # every file read -> its sha256
    sha256: str | None = None  # the one file the dataset came in, when it came in one


def fail(path: Path, what: str) -> GanError:
    return GanError(f"{path}: {what}")


def check_entry_name(archive: Path, name: str) -> None:
    """Refuse an entry named absolutely or with `..`: unpacked, it would land elsewhere."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
        raise fail(
            archive,
            f"entry {name!r} has a path that escapes the folder it would be unpacked into: "
            "refused (a broken or hostile archive)",
        )


def is_hidden(name: str) -> bool:
    """macOS's __MACOSX/ and dot files are never data, as in image folders."""
    return any(p.startswith(".") or p == "__MACOSX" for p in name.split("/"))


class Budget:
    """Declared uncompressed sizes, checked before anything is decompressed."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.limit = MAX_RATIO * archive.stat().st_size + SLACK_BYTES
        self.total = 0

    def declare(self, name: str, size: int, stored: int | None = None) -> None:
        if size > MAX_ENTRY_BYTES:
            self._refuse(f"entry {name!r} declares {size:,} bytes, more than any dataset file")
        if stored is not None and size > SLACK_BYTES and size > MAX_RATIO * max(stored, 1):
            self._refuse(f"entry {name!r} declares {size:,} bytes from {stored:,} stored")
        self.total += size
        if self.total > self.limit:
            self._refuse(
                f"its entries declare {self.total:,}+ bytes, over {MAX_RATIO}x the "
                f"archive's {self.archive.stat().st_size:,}"
            )

    def _refuse(self, why: str) -> None:
        raise fail(self.archive, f"looks like a zip bomb: {why}; refused")


def class_index(labels: Iterable[int]) -> tuple[list[str], dict[int, int]]:
    """Class names (the label values, sorted) and each value's index. One distinct value
    carries no class information: unlabelled, as a folder with a single subfolder is."""
    values = sorted(set(labels))
    if len(values) < 2:
        return [], {v: -1 for v in values}
    return [str(v) for v in values], {v: i for i, v in enumerate(values)}


def array_items(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    split: str | None,
    index: dict[int, int],
    cfg: PreprocessConfig,
    rejected: list[dict[str, str]],
) -> list[Item]:
    """Items from a stack of uint8 arrays (N, H, W[, 3]); `name#k` names the k-th."""
    items = []
    for k, (array, label) in enumerate(zip(images, labels, strict=True)):
        decoded = decode_array(array, cfg.resolution, cfg.channels, cfg.min_size)
        if decoded.ok:
            items.append(Item(f"{name}#{k}", label=index[int(label)], split=split))
            items[-1].image = decoded.image
        else:
            rejected.append({"file": f"{name}#{k}", "reason": str(decoded.reason)})
    return items
