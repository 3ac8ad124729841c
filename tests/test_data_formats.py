"""preprocess reads datasets in the files practitioners have (issue #26): a stylegan2-ada
dataset zip, CIFAR-10's binary archive, MNIST's IDX files; faults: test_data_format_faults.py.

Fixtures: tests/dataset_files.py; the formats through the whole pipeline:
test_data_formats_pipeline.py.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import dataset_files as df
import numpy as np
import pytest
import torch

from gan.cli import main
from gan.data.loader import BatchLoader
from gan.data.shards import load_split
from gan.io import sha256_file
from gan.stage_cache import tree_content
from gan.training.streams import Streams

# ---------------------------------------------------------------- stylegan2-ada zip


def test_zip_labels_from_dataset_json_become_classes(tmp_path):
    src = df.stylegan_zip(tmp_path / "digits.zip", n=30)
    manifest = df.run(src, tmp_path / "out", test_fraction=0.2)
    assert manifest["format"] == "stylegan2-zip" and manifest["layout"] == "classes"
    assert manifest["source_sha256"] == sha256_file(src)
    assert manifest["source_files"] == {str(src): sha256_file(src)}
    _, labels = df.digits(30)
    assert manifest["classes"] == [str(c) for c in sorted(set(labels.tolist()))]
    counts = {s: manifest["splits"][s]["count"] for s in ("train", "test")}
    assert counts == {"train": 24, "test": 6}  # preprocess's own split, as for a folder
    assert manifest["rejected"] == []
    train = load_split(tmp_path / "out", "train")
    # the label of each image is the one dataset.json gives (not the 00000/ folder's)
    for name, label in zip(train.files, train.labels.tolist(), strict=True):
        k = int(name.split("img")[1][:8])
        assert manifest["classes"][label] == str(labels[k])


def test_zip_and_the_folder_it_was_made_from_give_the_same_dataset(tmp_path):
    src = df.stylegan_zip(tmp_path / "d.zip", n=5, labels=None)  # all five in 00000/
    with zipfile.ZipFile(src) as zf:
        zf.extractall(tmp_path / "unpacked")
    (tmp_path / "unpacked/dataset.json").unlink()
    from_zip = df.run(src, tmp_path / "a")
    from_folder = df.run(tmp_path / "unpacked", tmp_path / "b")
    assert from_zip["layout"] == from_folder["layout"] == "flat"
    assert from_zip["content_hash"] == from_folder["content_hash"]  # same pixels, same split
    assert (from_zip["format"], from_folder["format"]) == ("stylegan2-zip", "folder")
    assert from_folder["source_sha256"] is None and from_folder["source_files"] == {}


def test_zip_without_dataset_json_is_unlabelled_and_odd_entries_are_listed(tmp_path):
    src = df.stylegan_zip(
        tmp_path / "d.zip",
        labels="none",
        extra={"__MACOSX/._x.png": b"junk", "notes.txt": b"hi", "anim.gif": b"GIF89a",
               "broken.png": b"\x89PNG not really"},
    )  # fmt: skip
    manifest = df.run(src, tmp_path / "out")
    assert manifest["layout"] == "flat"
    assert {r["file"] for r in manifest["rejected"]} == {"anim.gif", "broken.png"}
    assert sum(s["count"] for s in manifest["splits"].values()) == 12


# ---------------------------------------------------------------- CIFAR-10 binary


@pytest.mark.parametrize("shape", ["tar", "folder", "folder holding the tar"])
def test_cifar_binary_keeps_its_splits_pixels_and_names(tmp_path, shape):
    if shape == "folder":
        src = df.cifar_folder(tmp_path / "cifar-10-batches-bin")
    else:
        src = df.cifar_tar(tmp_path / "raw" / "cifar-10-binary.tar.gz")
        src = src.parent if shape == "folder holding the tar" else src
    manifest = df.run(src, tmp_path / "out", resolution=32, channels=3, test_fraction=0.5)
    assert manifest["format"] == "cifar10-binary" and manifest["classes"] == df.CIFAR_NAMES[:4]
    counts = {s: manifest["splits"][s]["count"] for s in ("train", "test")}
    assert counts == {"train": 20, "test": 4}  # as shipped, whatever test_fraction says
    test = load_split(tmp_path / "out", "test")
    records = np.frombuffer(df.cifar_records(4, 0), np.uint8).reshape(4, 3073)
    order = [int(f.split("#")[1]) for f in test.files]
    assert test.files[0].startswith("test_batch.bin#")
    expected = torch.from_numpy(records[order, 1:].reshape(4, 3, 32, 32).copy())
    assert torch.equal(test.images, expected)  # CHW planes as stored, no resampling at 32
    assert test.labels.tolist() == records[order, 0].tolist()
    files = manifest["source_files"]
    assert (manifest["source_sha256"] is None) == (shape == "folder")
    assert len(files) == (7 if shape == "folder" else 1)


def test_cifar_without_meta_names_classes_by_number(tmp_path):
    src = df.cifar_folder(tmp_path / "c", meta=False)
    assert df.run(src, tmp_path / "out", channels=3)["classes"] == ["0", "1", "2", "3"]


# ---------------------------------------------------------------- MNIST IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reads_labels_and_the_t10k_split_beside_the_named_file(tmp_path, gz):
    src = df.mnist(tmp_path / "mnist", gz=gz)
    manifest = df.run(src, tmp_path / "out", test_fraction=0.5)
    assert manifest["format"] == "idx" and manifest["layout"] == "classes"
    counts = {s: manifest["splits"][s]["count"] for s in ("train", "test")}
    assert counts == {"train": 20, "test": 5}
    assert len(manifest["source_files"]) == 4
    assert manifest["source_sha256"] == sha256_file(src)
    train = load_split(tmp_path / "out", "train")
    images, labels = df.digits(20)
    order = [int(f.split("#")[1]) for f in train.files]
    assert torch.equal(train.images[:, 0], torch.from_numpy(images[order]))  # 8x8 as stored
    assert [manifest["classes"][y] for y in train.labels.tolist()] == [
        str(v) for v in labels[order]
    ]


def test_idx_named_t10k_file_or_mixed_compression_finds_the_rest(tmp_path):
    folder = tmp_path / "m"
    df.mnist(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    )
    (folder / "t10k-labels-idx1-ubyte.gz").rename(folder / "t10k-labels-idx1-ubyte")
    manifest = df.run(folder / "t10k-images-idx3-ubyte.gz", tmp_path / "out")
    assert {s: v["count"] for s, v in manifest["splits"].items()} == {"train": 20, "test": 5}


def test_idx_with_one_split_holds_out_test_fraction(tmp_path):
    src = df.idx_set(tmp_path / "m", "train", 20)
    manifest = df.run(src, tmp_path / "out", test_fraction=0.25)
    assert {s: v["count"] for s, v in manifest["splits"].items()} == {"train": 15, "test": 5}


def test_idx_content_for_the_flow_cache_covers_the_labels_beside_it(tmp_path):
    src = df.mnist(tmp_path / "m")
    before = tree_content(str(src))
    labels = tmp_path / "m/train-labels-idx1-ubyte.gz"
    _, y = df.digits(20)
    labels.write_bytes(gzip.compress(df.idx_bytes((y + 1) % 10, 0x801)))
    assert tree_content(str(src)) != before
    assert tree_content(str(tmp_path / "nothing")) == "missing"


# ---------------------------------------------------------------- end to end


@pytest.mark.parametrize("source", ["zip", "idx folder"])
def test_gan_preprocess_of_a_dataset_file_feeds_the_loader(tmp_path, monkeypatch, capsys, source):
    """`dvc add data/raw/<name>` of a folder holding the file, `preprocess.dataset: <name>`:
    the command writes a dataset that training's loader draws batches from."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "data/raw/mine"
    raw.mkdir(parents=True)
    if source == "zip":
        df.stylegan_zip(raw / "mine.zip", n=20)
    else:
        df.mnist(raw)
    Path("params.yaml").write_text("preprocess:\n  dataset: mine\n  resolution: 8\n")
    assert main(["preprocess"]) == 0, capsys.readouterr().err
    assert "preprocessed:" in capsys.readouterr().out
    split = load_split("data/processed/mine", "train")
    loader = BatchLoader(split, 4, torch.device("cpu"), Streams(0))
    batch = loader.next()
    assert batch["images"].shape == (4, 1, 8, 8) and batch["labels"].min() >= 0
    assert batch["images"].min() >= -1.0 and batch["images"].max() <= 1.0
