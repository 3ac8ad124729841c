"""prepare: built-in datasets are complete, correct and byte-identical on every run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.config import PrepareConfig
from gan.data.builtin import load_digits_uint8, prepare, restyle
from gan.errors import GanError
from gan.io import sha256_tree


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digits_uint8()


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    return prepare(PrepareConfig(dataset="digits", out=str(tmp_path_factory.mktemp("d") / "raw")))


def _pngs(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*.png")}


def test_digits_read_without_sklearn_match_its_loader(digits):
    """The shipped CSV read directly gives exactly what sklearn.datasets.load_digits gives."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = digits
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    expected = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    assert np.array_equal(images, expected)
    assert np.array_equal(labels, bunch.target)


def test_digits_counts_and_classes(digits_dir, digits):
    _, labels = digits
    files = _pngs(digits_dir)
    assert len(files) == 1797
    assert sorted(p.name for p in digits_dir.iterdir()) == [str(c) for c in range(10)]
    per_class = Counter(rel.split("/")[0] for rel in files)
    assert per_class == Counter(str(c) for c in labels.tolist())


def test_digits_pixels_are_scaled_grey_levels(digits_dir, digits):
    images, labels = digits
    for i in (0, 5, 1796):
        with Image.open(digits_dir / str(labels[i]) / f"{i}.png") as img:
            assert img.mode == "L" and img.size == (8, 8)
            pixels = np.asarray(img)
        assert np.array_equal(pixels, images[i])
    assert images.max() == 255 and images.min() == 0
    # 16 grey levels -> 17 values 0..16 scaled to 0..255
    assert set(np.unique(images).tolist()) <= {round(v * 255 / 16) for v in range(17)}


def test_digits_rerun_is_byte_identical_and_repairs(digits_dir):
    def snapshot():
        return {rel: (p.read_bytes(), p.stat().st_mtime_ns) for rel, p in _pngs(digits_dir).items()}

    before = snapshot()
    prepare(PrepareConfig(dataset="digits", out=str(digits_dir)))
    assert snapshot() == before  # same bytes, and unchanged files were not even rewritten

    reference = sha256_tree(digits_dir)
    (digits_dir / "3" / "3.png").write_bytes(b"damaged")
    (digits_dir / "3" / "99999.png").write_bytes(b"stale")
    (digits_dir / "notes.txt").write_text("the user's own file")
    prepare(PrepareConfig(dataset="digits", out=str(digits_dir)))
    (digits_dir / "notes.txt").unlink()
    assert sha256_tree(digits_dir) == reference


@pytest.fixture(scope="module")
def restyled_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("r") / "raw"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    # an earlier digits run in the same folder: its files must go, the user's file must stay
    (out / "7").mkdir()
    (out / "7" / "12.png").write_bytes(b"old")
    return prepare(PrepareConfig(dataset="digits-restyled", out=str(out)))


def test_restyled_domains_are_disjoint_and_split(restyled_dir, digits):
    _, labels = digits
    out = restyled_dir
    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt",
        "testA",
        "testB",
        "trainA",
        "trainB",
    ]
    files = _pngs(out)
    counts = Counter(rel.split("/")[0] for rel in files)
    assert counts == {"trainA": 719, "testA": 180, "trainB": 718, "testB": 180}
    index = {rel: int(Path(rel).stem) for rel in files}
    a = {i for rel, i in index.items() if rel.split("/")[0].endswith("A")}
    b = {i for rel, i in index.items() if rel.split("/")[0].endswith("B")}
    assert not a & b and a | b == set(range(1797))
    assert all(i % 2 == 0 for i in a)
    # the test split is the last 20% of each domain, in index order
    assert max(i for rel, i in index.items() if rel.startswith("trainA")) < min(
        i for rel, i in index.items() if rel.startswith("testA")
    )
    for rel, i in index.items():
        assert rel.split("/")[1] == str(labels[i])


def test_restyled_b_is_inverted_and_thicker(restyled_dir, digits):
    images, labels = digits
    out = restyled_dir
    i = 1  # odd index: domain B, train split
    with Image.open(out / "trainB" / str(labels[i]) / f"{i}.png") as img:
        b = np.asarray(img)
    with Image.open(out / "trainA" / str(labels[0]) / "0.png") as img:
        assert np.array_equal(np.asarray(img), images[0])  # A is the digit as it is
    assert b.shape == (16, 16)
    assert np.array_equal(b, restyle(images[i]))
    ink_a = (images[i] > 127).mean()
    ink_b = (b < 128).mean()  # inverted: ink is dark in B
    assert ink_b > ink_a * 1.2
    assert b[0, 0] == 255 and images[i][0, 0] == 0  # background turned white


def test_restyled_truth_is_each_test_image_in_the_other_style(tmp_path, digits):
    images, _ = digits
    out, truth = tmp_path / "raw", tmp_path / "truth"
    prepare(PrepareConfig(dataset="digits-restyled", out=str(out), truth=str(truth)))
    tests = [rel for rel in _pngs(out) if rel.startswith("test")]
    assert sorted(_pngs(truth)) == sorted(tests)  # same relative paths, test files only
    for rel in (tests[0], tests[-1]):
        i = int(Path(rel).stem)
        with Image.open(truth / rel) as img:
            expected = restyle(images[i]) if rel.startswith("testA") else images[i]
            assert np.array_equal(np.asarray(img), expected), rel
    with pytest.raises(GanError, match="prepare.truth"):
        prepare(PrepareConfig(dataset="digits", out=str(tmp_path / "d"), truth=str(truth)))
