"""Bad dataset files (issue #26): each is one GanError naming the file, no traceback, no
unpickling, and the dataset already written is left as it was."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dataset_files import (
    cifar_folder,
    cifar_records,
    cifar_tar,
    digits,
    idx_bytes,
    idx_set,
    mnist,
    png,
    run,
    stylegan_zip,
)

from gan.cli import main
from gan.data.sources import base
from gan.errors import GanError


def refused(src: Path, out: Path, match: str, **kwargs) -> str:
    with pytest.raises(GanError, match=match) as caught:
        run(src, out, **kwargs)
    message = str(caught.value)
    assert message.startswith(str(src)) or str(src) in message, message
    return message


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# ---------------------------------------------------------------- truncated archives


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_zip(tmp_path, keep):
    src = truncate(stylegan_zip(tmp_path / "d.zip"), keep)
    refused(src, tmp_path / "out", "not a readable zip archive, truncated or corrupt")


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_cifar_tar(tmp_path, keep):
    src = truncate(cifar_tar(tmp_path / "cifar-10-binary.tar.gz"), keep)
    refused(src, tmp_path / "out", "truncated or corrupt|missing .* incomplete download")


def test_zip_entry_with_a_bad_crc(tmp_path):
    src = stylegan_zip(tmp_path / "d.zip")
    data = bytearray(src.read_bytes())
    start = data.index(b"\x89PNG") + 40  # inside the first stored image
    data[start] ^= 0xFF
    src.write_bytes(bytes(data))
    refused(src, tmp_path / "out", "cannot be read: corrupt archive")


def test_zip_entry_packed_by_a_method_zipfile_lacks(tmp_path):
    """A PPMd entry (7-Zip can write one): zipfile raises NotImplementedError, not
    BadZipFile, and it is one error naming the archive all the same."""
    src = stylegan_zip(tmp_path / "d.zip")
    data = bytearray(src.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local, central
        at = data.index(signature) + offset
        data[at : at + 2] = (98).to_bytes(2, "little")  # 98: PPMd
    src.write_bytes(bytes(data))
    refused(src, tmp_path / "out", "compression method is not supported")


def test_cifar_batch_not_whole_records(tmp_path):
    src = cifar_folder(tmp_path / "c")
    truncate(src / "data_batch_3.bin", 0.7)
    refused(src, tmp_path / "out", "data_batch_3.bin: .* not a whole number of 3073-byte")


def test_cifar_missing_batch_and_label_out_of_range(tmp_path):
    src = cifar_folder(tmp_path / "c")
    (src / "data_batch_5.bin").unlink()
    refused(src, tmp_path / "out", "missing data_batch_5.bin")
    records = bytearray(cifar_records(4, 5))
    records[0] = 12
    (src / "data_batch_5.bin").write_bytes(bytes(records))
    refused(src, tmp_path / "out", "label 12 is not one of the 10 classes")


# ---------------------------------------------------------------- dataset.json


def test_zip_labels_naming_missing_files(tmp_path):
    labels = [[f"{k // 5:05d}/img{k:08d}.png", 0] for k in range(12)] + [["gone.png", 1]]
    src = stylegan_zip(tmp_path / "d.zip", labels=labels)
    msg = refused(src, tmp_path / "out", "dataset.json: labels name 1 file")
    assert "gone.png" in msg


def test_zip_labels_of_the_wrong_count(tmp_path):
    labels = [[f"{k // 5:05d}/img{k:08d}.png", k % 2] for k in range(11)]  # 11 of 12
    src = stylegan_zip(tmp_path / "d.zip", labels=labels)
    refused(src, tmp_path / "out", r"11 labels for 12 images \(wrong count\)")


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({"labels": {"a": 1}}).encode(), "must be null or a list"),
        (json.dumps({"labels": [["a.png"]]}).encode(), r"labels\[0\]: expected a \[file"),
        (json.dumps({"labels": [["a.png", [0.1, 0.9]]]}).encode(), "vector labels"),
        (json.dumps({"labels": [["a.png", 1], ["a.png", 2]]}).encode(), "labelled twice"),
    ],
)
def test_zip_malformed_dataset_json(tmp_path, meta, match):
    src = tmp_path / "d.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("a.png", png(digits(1)[0][0]))
        zf.writestr("dataset.json", meta)
    refused(src, tmp_path / "out", match)


# ---------------------------------------------------------------- IDX


def test_idx_wrong_magic_number(tmp_path):
    src = idx_set(tmp_path / "m", "train", 10)
    src.write_bytes(gzip.compress(b"\x00\x00\x08\x02" + gzip.decompress(src.read_bytes())[4:]))
    refused(src, tmp_path / "out", "wrong magic number 0x00000802: not an IDX images")


def test_idx_labels_file_named_instead_of_images(tmp_path):
    idx_set(tmp_path / "m", "train", 10)
    src = tmp_path / "m/train-labels-idx1-ubyte.gz"
    refused(src, tmp_path / "out", "an IDX labels file: name the images file")


@pytest.mark.parametrize("extra", [-7, 5])
def test_idx_size_not_matching_its_header(tmp_path, extra):
    src = idx_set(tmp_path / "m", "train", 10, gz=False)
    data = src.read_bytes()
    src.write_bytes(data[:extra] if extra < 0 else data + bytes(extra))
    refused(src, tmp_path / "out", "size does not match its header")


def test_idx_truncated_gzip_and_missing_or_short_labels(tmp_path):
    src = mnist(tmp_path / "m")
    truncate(src, 0.6)
    refused(src, tmp_path / "out", "truncated or corrupt")
    src = idx_set(tmp_path / "n", "train", 10)
    (tmp_path / "n/train-labels-idx1-ubyte.gz").unlink()
    refused(
        src, tmp_path / "out", r"its labels file train-labels-idx1-ubyte\[\.gz\] is not beside it"
    )
    _, labels = digits(9)
    (tmp_path / "n/train-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 0x801))
    with pytest.raises(GanError, match="9 labels for the 10 images"):
        run(src, tmp_path / "out")


def test_idx_header_promising_a_bomb(tmp_path):
    src = tmp_path / "train-images-idx3-ubyte.gz"
    header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (60000, 512, 512))
    src.write_bytes(gzip.compress(header + bytes(1000)))
    refused(src, tmp_path / "out", "refused as a bomb")


# ---------------------------------------------------------------- bombs and escaping paths


def test_zip_bomb_by_ratio_and_by_total(tmp_path):
    src = stylegan_zip(tmp_path / "d.zip")
    with zipfile.ZipFile(src, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.png", bytes(4 << 20))  # 4 MiB of zeros in ~4 KiB
    refused(src, tmp_path / "out", "looks like a zip bomb: entry 'zeros.png' declares")
    many = stylegan_zip(tmp_path / "e.zip")
    with zipfile.ZipFile(many, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        for k in range(8):  # each small enough to pass alone, 4 MiB together
            zf.writestr(f"zeros{k}.png", bytes(512 << 10))
    refused(many, tmp_path / "out", "looks like a zip bomb: its entries declare")


def test_tar_member_declaring_a_huge_size(tmp_path):
    src = tmp_path / "cifar-10-binary.tar.gz"
    info = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
    info.size = base.MAX_ENTRY_BYTES + 1
    src.write_bytes(gzip.compress(info.tobuf() + bytes(4096)))  # a header, no body
    refused(src, tmp_path / "out", "looks like a zip bomb: entry .* declares")


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:evil.png"])
def test_zip_entry_escaping_the_target(tmp_path, name):
    src = stylegan_zip(tmp_path / "d.zip", extra={name: png(digits(1)[0][0])})
    refused(src, tmp_path / "out", "escapes the folder it would be unpacked into")


def test_tar_entry_escaping_the_target(tmp_path):
    src = tmp_path / "cifar-10-binary.tar.gz"
    data = cifar_records(2, 0)
    with tarfile.open(src, "w:gz") as tf:
        info = tarfile.TarInfo("../data_batch_1.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    refused(src, tmp_path / "out", "'../data_batch_1.bin' has a path that escapes")


# ---------------------------------------------------------------- pickles, never loaded


class Plant:
    """Unpickled, this would write `marker`; nothing may unpickle it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


def python_cifar(folder: Path, marker: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (folder / name).write_bytes(pickle.dumps(Plant(marker)))
    return folder


@pytest.mark.parametrize("shape", ["tar", "renamed tar", "folder", "batch file"])
def test_cifar_python_version_is_refused_unread(tmp_path, shape):
    marker = tmp_path / "MARKER"
    folder = python_cifar(tmp_path / "build/cifar-10-batches-py", marker)
    if shape in ("tar", "renamed tar"):
        name = "cifar-10-python.tar.gz" if shape == "tar" else "mine.tar.gz"
        src = tmp_path / name
        with tarfile.open(src, "w:gz") as tf:
            tf.add(folder, arcname="cifar-10-batches-py")
    else:
        src = folder if shape == "folder" else folder / "data_batch_1"
    msg = refused(src, tmp_path / "out", "never loads")
    assert "cifar-10-binary.tar.gz" in msg
    assert not marker.exists()


# ---------------------------------------------------------------- the CLI and what is kept


def test_unknown_file_and_ambiguous_folder(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("hello")
    refused(src, tmp_path / "out", "not a dataset file preprocess reads")
    two = tmp_path / "two"
    two.mkdir()
    stylegan_zip(two / "a.zip")
    stylegan_zip(two / "b.zip")
    refused(two, tmp_path / "out", "no image files found")


def test_a_bad_source_is_one_error_line_and_the_old_dataset_is_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    good = stylegan_zip(tmp_path / "good.zip")
    bad = stylegan_zip(tmp_path / "bad.zip", labels=[["00000/img00000000.png", 1]])
    params = tmp_path / "params.yaml"
    params.write_text("preprocess:\n  dataset: mine\n  resolution: 8\n")
    assert main(["preprocess", "-S", f"preprocess.input={good}"]) == 0
    manifest = tmp_path / "data/processed/mine/manifest.json"
    before = {p.name: p.read_bytes() for p in manifest.parent.iterdir()}
    capsys.readouterr()
    assert main(["preprocess", "-S", f"preprocess.input={bad}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: dataset.json: 1 labels for 12 images"), err
    assert "Traceback" not in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in manifest.parent.iterdir()} == before
    assert json.loads(manifest.read_text())["source"] == str(good)
    assert np.array_equal(np.frombuffer(before["manifest.json"], np.uint8),
                          np.frombuffer(manifest.read_bytes(), np.uint8))  # fmt: skip


def test_input_that_is_neither_folder_nor_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused(fifo, tmp_path / "out", "must be a folder of images or a dataset file")
