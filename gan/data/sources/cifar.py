"""CIFAR-10's binary version: cifar-10-binary.tar.gz, or its folder cifar-10-batches-bin.

Each of data_batch_1..5.bin (train) and test_batch.bin (test) is a run of 3073-byte
records, one label byte then 32x32 pixels plane by plane (R, G, B); batches.meta.txt holds
the class names. The split is kept as shipped. The python version (pickles) is refused:
reading it would mean unpickling.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from gan.config import PreprocessConfig
from gan.data.sources.base import (
    PICKLE_HINT,
    PICKLED_CIFAR,
    Budget,
    Item,
    Source,
    array_items,
    check_entry_name,
    class_index,
    fail,
)
from gan.io import sha256_file
from gan.messages import exception_line

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE
BATCHES = {**{f"data_batch_{i}.bin": "train" for i in range(1, 6)}, "test_batch.bin": "test"}
META = "batches.meta.txt"


def is_cifar_folder(folder: Path) -> bool:
    return any((folder / name).is_file() for name in BATCHES)


def is_pickled_cifar_folder(folder: Path) -> bool:
    return any(PICKLED_CIFAR.fullmatch(p.name) for p in folder.iterdir() if p.is_file())


def read_cifar_folder(folder: Path, cfg: PreprocessConfig) -> Source:
    files = {name: folder / name for name in (*BATCHES, META) if (folder / name).is_file()}
    data = {name: path.read_bytes() for name, path in files.items()}
    shas = {str(path): sha256_file(path) for path in files.values()}
    return _source(folder, data, shas, None, cfg)


def read_cifar_tar(path: Path, cfg: PreprocessConfig) -> Source:
    data: dict[str, bytes] = {}
    budget = Budget(path)
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:  # one header at a time: sizes are checked before reading
                check_entry_name(path, member.name)
                budget.declare(member.name, member.size)
                name = PurePosixPath(member.name).name
                if PICKLED_CIFAR.fullmatch(name):
                    raise fail(path, f"holds {member.name}: {PICKLE_HINT}")
                if name not in data and (name in BATCHES or name == META) and member.isfile():
                    reader = archive.extractfile(member)
                    data[name] = reader.read() if reader else b""
                    if len(data[name]) != member.size:
                        raise EOFError(f"{member.name} ends early")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise fail(
            path, f"not a readable tar archive, truncated or corrupt ({exception_line(exc)})"
        ) from None
    sha = sha256_file(path)
    return _source(path, data, {str(path): sha}, sha, cfg)


def _source(
    where: Path,
    data: dict[str, bytes],
    shas: dict[str, str],
    sha: str | None,
    cfg: PreprocessConfig,
) -> Source:
    missing = [name for name in BATCHES if name not in data]
    if len(missing) == len(BATCHES):
        raise fail(
            where,
            "not CIFAR-10's binary version: no data_batch_1..5.bin or test_batch.bin in it "
            "(CIFAR-100 and other archives are not read)",
        )
    if missing:
        raise fail(where, f"missing {', '.join(missing)} (an incomplete download?)")
    names = _class_names(data.get(META))
    batches = {name: _records(where, name, data[name], len(names)) for name in BATCHES}
    classes, index = class_index(
        v for labels, _ in batches.values() for v in np.unique(labels).tolist()
    )
    if classes and names:
        classes = [names[int(c)] for c in classes]
    items: list[Item] = []
    rejected: list[dict[str, str]] = []
    total = sum(len(labels) for labels, _ in batches.values())
    bar = tqdm(total=total, desc="preprocess", unit="img", disable=None)
    with bar:
        for name, (labels, images) in batches.items():
            items += array_items(name, images, labels, BATCHES[name], index, cfg, rejected)
            bar.update(len(labels))
    layout = "classes" if classes else "flat"
    return Source("cifar10-binary", layout, classes, items, rejected, shas, sha)


def _class_names(meta: bytes | None) -> list[str]:
    if meta is None:
        return []
    return [line.strip() for line in meta.decode("utf-8", "replace").splitlines() if line.strip()]


def _records(where: Path, name: str, data: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, images [N, 32, 32, 3]) of one batch file, checked whole."""
    if not data or len(data) % RECORD:
        raise fail(
            where,
            f"{name}: {len(data):,} bytes is not a whole number of {RECORD}-byte records "
            "(truncated, or not CIFAR-10's binary version)",
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0]
    bound = n_classes or 10
    if int(labels.max()) >= bound:
        raise fail(where, f"{name}: label {int(labels.max())} is not one of the {bound} classes")
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return labels, images
