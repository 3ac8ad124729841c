"""Datasets in the files practitioners already have, read offline and without unpickling.

`preprocess.input` names a folder of images (gan/data/preprocess.py reads those), or a
file: a stylegan2-ada dataset zip, CIFAR-10's binary archive, an IDX images file
(MNIST, Fashion-MNIST). A folder holding CIFAR-10's batches, or holding no images but one
such file, is read as that file, so `dvc add data/raw/<name>` works for every format.
Anything else, or a damaged file, is one GanError naming the file.
"""

from __future__ import annotations

from pathlib import Path

from gan.config import PreprocessConfig
from gan.data.sources.base import PICKLE_HINT, PICKLED_CIFAR, Item, Source, fail
from gan.data.sources.cifar import (
    is_cifar_folder,
    is_pickled_cifar_folder,
    read_cifar_folder,
    read_cifar_tar,
)
from gan.data.sources.idx import idx_files, is_idx_images, is_idx_name, read_idx
from gan.data.sources.stylegan_zip import read_zip

__all__ = ["Item", "Source", "folder_source", "input_files", "read_file"]

ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar")
PICKLES = (".pkl", ".pickle", ".pck")


def folder_source(folder: Path, cfg: PreprocessConfig, has_images: bool) -> Source | None:
    """A folder read as a dataset file: CIFAR-10's batches, or (when it has no images) the
    one dataset file it holds. None: an image folder, for preprocess's own reading."""
    if is_cifar_folder(folder):
        return read_cifar_folder(folder, cfg)
    if has_images:
        return None
    if is_pickled_cifar_folder(folder):
        raise fail(folder, PICKLE_HINT)
    found = _dataset_file(folder)
    return read_file(found, cfg) if found else None


def read_file(path: Path, cfg: PreprocessConfig) -> Source:
    """The dataset in one file, by its name; refused when no reader knows the name."""
    name = path.name.lower()
    if ("python" in name and "cifar" in name) or PICKLED_CIFAR.fullmatch(name):
        raise fail(path, PICKLE_HINT)
    if name.endswith(PICKLES):
        raise fail(path, "a pickled file: ganops never unpickles data (it can run code)")
    if name.endswith(".zip"):
        return read_zip(path, cfg)
    if name.endswith(ARCHIVES):
        return read_cifar_tar(path, cfg)
    if is_idx_name(name):
        return read_idx(path, cfg)
    if name.endswith(".bin"):
        raise fail(path, f"name the folder that holds it ({path.parent}) to read CIFAR-10")
    raise fail(
        path,
        "not a dataset file preprocess reads: name a folder of images, a stylegan2-ada "
        "dataset .zip, cifar-10-binary.tar.gz (or its folder) or an IDX images file "
        "(train-images-idx3-ubyte[.gz])",
    )


def input_files(path: Path) -> list[Path]:
    """The files a read of the file `path` opens (an IDX file's labels and other split)."""
    return idx_files(path) if is_idx_images(path) else [path]


def _dataset_file(folder: Path) -> Path | None:
    """The dataset file a folder without images holds: the train images of an IDX set, or
    its only archive. Several archives are ambiguous: None, and preprocess says no images."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    idx = [p for p in files if is_idx_images(p)]
    if idx:
        return next((p for p in idx if p.name.lower().startswith("train")), idx[0])
    archives = [p for p in files if p.name.lower().endswith(ARCHIVES)]
    return archives[0] if len(archives) == 1 else None
