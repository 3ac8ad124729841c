"""Built-in datasets as image folders, without any download (docs/architecture.md, 'Offline first').

`prepare` writes PNG files in the same folder layouts a user's own data would have, so the
preprocess stage treats built-in and user data identically:

- ``digits``: scikit-learn's 8x8 digits as ``<out>/<class>/<index>.png``;
- ``digits-restyled``: an unpaired two-domain set for CycleGAN,
  ``<out>/{trainA,trainB,testA,testB}/<class>/<index>.png``; domain B is thickened,
  inverted and 16x16. Even source indices go to A and odd ones to B, so no source image
  appears in both domains; the last 20% of each domain (in index order) is its test split.
  With ``prepare.truth``, the exact translation of every test image is written there under
  the same relative path (testA/3/120.png: digit 120 in B's style; testB: in A's), so
  evaluation can measure how far a translation is from the truth, not only its class.

Files are encoded deterministically and rewritten only when their bytes change, so a rerun
leaves the folder byte-identical.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from gan.config import PrepareConfig
from gan.errors import GanError
from gan.io import atomic_path

RESTYLED_TEST_FRACTION = 0.2

# Files this stage may have written earlier; only these are ever removed as stale.
_OWNED = re.compile(r"^((train|test)[AB]/)?\d/\d+\.png$")
_OWNED_DIR = re.compile(r"^((train|test)[AB]|((train|test)[AB]/)?\d)$")


def prepare(cfg: PrepareConfig) -> Path:
    """Write the configured built-in dataset into `cfg.out`; returns that folder."""
    builders: dict[str, Callable[[], Iterator[tuple[str, np.ndarray]]]] = {
        "digits": _digits_files,
        "digits-restyled": _restyled_files,
    }
    if cfg.dataset not in builders:
        raise GanError(f"prepare.dataset: unknown built-in dataset {cfg.dataset!r}")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise GanError(f"{out}: prepare.out exists and is not a folder")
    _write_all(out, builders[cfg.dataset]())
    if cfg.truth:
        if cfg.dataset != "digits-restyled":
            raise GanError(f"prepare.truth: {cfg.dataset!r} has no ground-truth translations")
        _write_all(Path(cfg.truth), _restyled_truth_files())
    return out


def _write_all(out: Path, files: Iterator[tuple[str, np.ndarray]]) -> None:
    written = set()
    for rel, pixels in files:
        _write_png(out / rel, pixels)
        written.add(rel)
    _remove_stale(out, written)


def load_digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (bundled with the package) as uint8 [N, 8, 8] in 0..255 and labels.

    Read from the CSV file scikit-learn ships (64 pixels in 0..16, then the label, per row)
    without importing scikit-learn, which costs seconds; its loader where the file moved."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise GanError(
            "prepare.dataset digits: scikit-learn, which ships the digits, is not installed"
        )
    csv = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if csv.is_file():
        with gzip.open(csv, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
        pixels, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels, target = bunch.images, bunch.target
    images = np.rint(pixels * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, target.astype(np.int64)


def restyle(image: np.ndarray) -> np.ndarray:
    """Domain B of digits-restyled: thick dark strokes on white, at twice the size (16x16).

    The image is doubled (nearest neighbour) before the 3x3 max filter: at 8x8 the filter
    grows each stroke by a whole source pixel per side and most digits become blobs.
    """
    big = image.repeat(2, axis=0).repeat(2, axis=1)
    padded = np.pad(big, 1, mode="constant", constant_values=0)
    h, w = big.shape
    windows = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    return (255 - np.max(windows, axis=0)).astype(np.uint8)


def _digits_files() -> Iterator[tuple[str, np.ndarray]]:
    images, labels = load_digits_uint8()
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        yield f"{label}/{i}.png", img


def _restyled_split() -> Iterator[tuple[str, str, int, np.ndarray, int]]:
    """(split, domain, source index, source digit, label) for every image of the pair."""
    images, labels = load_digits_uint8()
    for domain, first in (("A", 0), ("B", 1)):
        indices = list(range(first, len(images), 2))
        n_train = len(indices) - round(len(indices) * RESTYLED_TEST_FRACTION)
        for pos, i in enumerate(indices):
            yield ("train" if pos < n_train else "test"), domain, i, images[i], int(labels[i])


def _restyled_files() -> Iterator[tuple[str, np.ndarray]]:
    for split, domain, i, digit, label in _restyled_split():
        yield f"{split}{domain}/{label}/{i}.png", digit if domain == "A" else restyle(digit)


def _restyled_truth_files() -> Iterator[tuple[str, np.ndarray]]:
    """Each test image's counterpart in the other domain: the same source digit, restyled."""
    for split, domain, i, digit, label in _restyled_split():
        if split == "test":
            yield f"test{domain}/{label}/{i}.png", restyle(digit) if domain == "A" else digit


def _write_png(path: Path, pixels: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    data = buf.getvalue()
    if path.is_file() and path.read_bytes() == data:
        return  # unchanged: keep the file (and its timestamp) as it is
    # Atomic but without fsync: the files are regenerable, and 1,797 fsyncs cost seconds.
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _remove_stale(out: Path, written: set[str]) -> None:
    """Delete files an earlier prepare wrote that this run did not (e.g. another dataset)."""
    for path in sorted(out.rglob("*.png")):
        rel = path.relative_to(out).as_posix()
        if _OWNED.match(rel) and rel not in written:
            path.unlink()
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        if _OWNED_DIR.match(folder.relative_to(out).as_posix()) and not any(folder.iterdir()):
            folder.rmdir()
