"""Small datasets in the files practitioners have them in (issue #26), for tests: a
stylegan2-ada dataset zip, CIFAR-10's binary archive, MNIST's IDX files and a folder of
images in class subfolders, each in the shipped format's exact byte layout, a few 8x8
(CIFAR: 32x32, the folder: 16x16) images each. Used by test_data_formats.py,
test_data_format_faults.py, test_data_formats_pipeline.py, test_data_formats_dvc.py and
test_user_data.py.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from conftest import digits_tensors
from PIL import Image

from gan.config import PreprocessConfig
from gan.data.preprocess import preprocess

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]  # fmt: skip
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 60, 230)}


def run(src: Path, out: Path, **kwargs) -> dict:
    """preprocess `src` into `out` (8 px unless told); returns the manifest."""
    kwargs = {"resolution": 8, **kwargs}
    return preprocess(PreprocessConfig(input=str(src), output=str(out), **kwargs))


def digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n real 8x8 grey digits (uint8 [n, 8, 8]) and their labels."""
    images, labels = digits_tensors(8)
    return images[:n, 0].numpy(), labels[:n].numpy().astype(np.uint8)


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def stylegan_zip(path: Path, n: int = 12, labels: object = "digits", extra=None) -> Path:
    """dataset_tool.py's layout: 00000/img00000000.png ... (stored), plus dataset.json."""
    images, classes = digits(n)
    names = [f"{k // 5:05d}/img{k:08d}.png" for k in range(n)]
    if labels == "digits":
        labels = [[name, int(c)] for name, c in zip(names, classes, strict=True)]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, image in zip(names, images, strict=True):
            zf.writestr(name, png(image))
        if labels != "none":
            zf.writestr("dataset.json", json.dumps({"labels": labels}))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def cifar_records(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
    records[:, 0] = np.arange(n) % 10
    return records.tobytes()


def cifar_folder(folder: Path, per_batch: int = 4, meta: bool = True) -> Path:
    """cifar-10-batches-bin/: data_batch_1..5.bin, test_batch.bin, batches.meta.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, 6):
        (folder / f"data_batch_{k}.bin").write_bytes(cifar_records(per_batch, k))
    (folder / "test_batch.bin").write_bytes(cifar_records(per_batch, 0))
    if meta:
        (folder / "batches.meta.txt").write_text("\n".join(CIFAR_NAMES) + "\n\n")
    return folder


def cifar_tar(path: Path, **kwargs) -> Path:
    folder = cifar_folder(path.parent / "build" / "cifar-10-batches-bin", **kwargs)
    with tarfile.open(path, "w:gz") as tf:
        tf.add(folder, arcname="cifar-10-batches-bin")
    shutil.rmtree(folder.parent)
    return path


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


def write_maybe_gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def idx_set(folder: Path, prefix: str, n: int, gz: bool = True, offset: int = 0) -> Path:
    """<prefix>-images-idx3-ubyte[.gz] and its labels file; returns the images file."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = digits(offset + n)
    ext = ".gz" if gz else ""
    write_maybe_gz(folder / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(labels[offset:], 0x801))
    return write_maybe_gz(
        folder / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(images[offset:], 0x803)
    )


def mnist(folder: Path, gz: bool = True, train: int = 20, test: int = 5) -> Path:
    """train-* and t10k-* (the test split: other digits); returns the train images file."""
    idx_set(folder, "t10k", test, gz=gz, offset=train)
    return idx_set(folder, "train", train, gz=gz)


def make_folder(root: Path, per_class: int = 40, size: int = 16) -> Path:
    """<root>/<colour>/<i>.png, an RGB image folder in class subfolders: digit k of the
    colour's class on a random tint."""
    images, labels = digits_tensors(size)
    rng = np.random.default_rng(0)
    for k, (name, colour) in enumerate(COLOURS.items()):
        (root / name).mkdir(parents=True)
        ink = images[labels == k][:per_class].numpy()[:, 0, :, :, None] / 255.0
        for i, a in enumerate(ink):
            background = rng.integers(0, 80, size=3)
            rgb = (1 - a) * background + a * np.array(colour)
            Image.fromarray(rgb.round().astype(np.uint8), "RGB").save(root / name / f"{i}.png")
    return root
