"""preprocess: layouts, splits, shards and manifest, and every kind of bad input file."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan.config import PrepareConfig, PreprocessConfig
from gan.data.builtin import prepare
from gan.data.images import decode_image
from gan.data.preprocess import preprocess
from gan.data.shards import MANIFEST, load_split
from gan.errors import GanError


def save(path: Path, img: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def grey(value: int, size: tuple[int, int] = (16, 16)) -> Image.Image:
    return Image.new("L", size, value)


def run(src: Path, out: Path, **kwargs) -> dict:
    return preprocess(PreprocessConfig(input=str(src), output=str(out), **kwargs))


def decode(path: Path, resolution: int = 16, channels: int = 1, min_size: int = 8):
    return decode_image(path, resolution=resolution, channels=channels, min_size=min_size)


# ---------------------------------------------------------------- digits end to end


@pytest.fixture(scope="module")
def digits_raw(tmp_path_factory) -> Path:
    return prepare(PrepareConfig(dataset="digits", out=str(tmp_path_factory.mktemp("raw") / "d")))


@pytest.fixture(scope="module")
def digits_processed(digits_raw, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("processed") / "d"
    return out, run(digits_raw, out)


def test_digits_counts_shapes_and_split(digits_processed):
    out, manifest = digits_processed
    assert manifest["layout"] == "classes"
    assert manifest["classes"] == [str(c) for c in range(10)]
    assert manifest["domains"] == [] and manifest["rejected"] == []
    train, test = load_split(out, "train"), load_split(out, "test")
    assert len(train) + len(test) == 1797
    assert len(test) == round(1797 * 0.2)
    assert train.images.shape[1:] == (1, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (len(test), 1, 32, 32)
    assert set(train.labels.tolist()) == set(range(10))
    assert train.domains.eq(0).all()
    assert 40 < train.images.float().mean() < 120  # dark background, bright strokes
    assert manifest["splits"]["train"]["count"] == len(train)
    assert json.loads((out / MANIFEST).read_text()) == manifest


def test_digits_split_is_stratified(digits_processed):
    out, manifest = digits_processed
    test = load_split(out, "test")
    counts = Counter(test.labels.tolist())
    totals = Counter()
    for split in ("train", "test"):
        for name, n in manifest["splits"][split]["per_class"].items():
            totals[name] += n
    assert sum(totals.values()) == 1797
    for c in range(10):
        assert manifest["splits"]["test"]["per_class"][str(c)] == counts[c]
        assert abs(counts[c] - 0.2 * totals[str(c)]) <= 1


def test_digits_hash_is_deterministic_and_seed_sensitive(digits_raw, digits_processed, tmp_path):
    _, first = digits_processed
    again = run(digits_raw, tmp_path / "again")
    assert again["content_hash"] == first["content_hash"]
    assert again["splits"] == first["splits"]
    other = run(digits_raw, tmp_path / "other", seed=1)
    assert other["content_hash"] != first["content_hash"]
    assert other["splits"]["test"]["count"] == first["splits"]["test"]["count"]


def test_params_and_source_recorded(digits_raw, digits_processed):
    _, manifest = digits_processed
    assert manifest["source"] == str(digits_raw)
    assert manifest["resolution"] == 32 and manifest["channels"] == 1
    assert manifest["params"]["seed"] == 0 and manifest["params"]["test_fraction"] == 0.2
    assert manifest["version"] == 1


# ---------------------------------------------------------------- output directory


def test_rerun_removes_stale_shards_only(tmp_path):
    src = tmp_path / "src"
    for i in range(10):
        save(src / f"{i}.png", grey(10 * i))
    out = tmp_path / "out"
    first = run(src, out, shard_size=3, resolution=8)
    assert first["splits"]["train"]["shards"] == [f"train-{k:05d}.pt" for k in range(3)]
    (out / "notes.txt").write_text("mine")
    (out / "model.pt").write_bytes(b"not a shard")
    second = run(src, out, shard_size=100, resolution=8)
    assert second["splits"]["train"]["shards"] == ["train-00000.pt"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".outputs.json",  # the files preprocess wrote: the only ones it removes
        "manifest.json",
        "model.pt",
        "notes.txt",
        "test-00000.pt",
        "train-00000.pt",
    ]
    assert second["content_hash"] == first["content_hash"]  # same data, other sharding
    assert len(load_split(out, "train")) == 8


def test_split_ignores_listing_order(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for i in range(12):
        save(src / ("a" if i % 2 else "b") / f"{i}.png", grey(20 * i))
    first = run(src, tmp_path / "one", resolution=8, test_fraction=0.3)
    original = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pat: reversed(list(original(self, pat))))
    second = run(src, tmp_path / "two", resolution=8, test_fraction=0.3)
    assert second["content_hash"] == first["content_hash"]
    assert second["splits"]["test"]["per_class"] == {"a": 2, "b": 2}


def test_zero_test_fraction_gives_empty_test_split(tmp_path):
    src = tmp_path / "src"
    save(src / "x.png", grey(1))
    manifest = run(src, tmp_path / "out", resolution=8, test_fraction=0.0)
    assert manifest["splits"]["test"]["count"] == 0
    assert load_split(tmp_path / "out", "test").images.shape == (0, 1, 8, 8)
    assert len(load_split(tmp_path / "out", "train")) == 1


# ---------------------------------------------------------------- layouts


def test_flat_nested_layout_has_no_labels(tmp_path):
    src = tmp_path / "src"
    save(src / "top.png", grey(0))
    save(src / "deep" / "er" / "a.png", grey(100))
    save(src / "deep" / "b.jpg", grey(200).convert("RGB"))
    save(src / "other" / "c.webp", grey(50))
    save(src / "other" / "d.BMP", grey(60))
    manifest = run(src, tmp_path / "out", resolution=8, test_fraction=0.25)
    assert manifest["layout"] == "flat" and manifest["classes"] == []
    assert manifest["splits"]["train"]["count"] == 4 and manifest["splits"]["test"]["count"] == 1
    assert manifest["splits"]["train"]["per_class"] == {}
    assert load_split(tmp_path / "out", "train").labels.eq(-1).all()


def test_single_folder_is_flat(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        save(src / "images" / f"{i}.png", grey(i))
    assert run(src, tmp_path / "out", resolution=8)["layout"] == "flat"


def test_class_layout_labels_by_sorted_folder_name(tmp_path):
    src = tmp_path / "src"
    for i in range(10):
        save(src / "dog" / f"{i}.png", grey(200))
        save(src / "cat" / f"{i}.png", grey(20))
    save(src / "cat" / "sub" / "deep.png", grey(20))  # nested inside a class still counts
    (src / "README.txt").write_text("ignored")
    (src / "cat" / "info.json").write_text("{}")
    manifest = run(src, tmp_path / "out", resolution=8, test_fraction=0.2)
    assert manifest["layout"] == "classes" and manifest["classes"] == ["cat", "dog"]
    assert manifest["splits"]["test"]["per_class"] == {"cat": 2, "dog": 2}
    assert manifest["splits"]["train"]["per_class"] == {"cat": 9, "dog": 8}
    assert manifest["rejected"] == []
    train = load_split(tmp_path / "out", "train")
    for label, value in ((0, 20), (1, 200)):
        assert train.images[train.labels == label].eq(value).all()


def test_cyclegan_layout_with_domains_and_classes(tmp_path):
    src = tmp_path / "src"
    for split, n in (("train", 6), ("test", 2)):
        for domain, value in (("A", 30), ("B", 220)):
            for i in range(n):
                save(src / f"{split}{domain}" / ("x" if i % 2 else "y") / f"{i}.png", grey(value))
    manifest = run(src, tmp_path / "out", resolution=8)
    assert manifest["layout"] == "cyclegan"
    assert manifest["domains"] == ["A", "B"] and manifest["classes"] == ["x", "y"]
    assert manifest["splits"]["train"]["per_domain"] == {"A": 6, "B": 6}
    assert manifest["splits"]["test"]["per_domain"] == {"A": 2, "B": 2}
    assert manifest["splits"]["test"]["per_class"] == {"x": 2, "y": 2}
    train = load_split(tmp_path / "out", "train")
    assert train.domain(0).images.eq(30).all() and train.domain(1).images.eq(220).all()
    assert set(train.labels.tolist()) == {0, 1}


def test_cyclegan_without_test_folders_splits_each_domain(tmp_path):
    src = tmp_path / "src"
    for domain in "AB":
        for i in range(10):
            save(src / f"train{domain}" / f"{i}.png", grey(i))
    manifest = run(src, tmp_path / "out", resolution=8, test_fraction=0.2)
    assert manifest["classes"] == []
    assert manifest["splits"]["test"]["per_domain"] == {"A": 2, "B": 2}
    assert load_split(tmp_path / "out", "test").labels.eq(-1).all()


def test_cyclegan_with_stray_folder_is_an_error(tmp_path):
    src = tmp_path / "src"
    save(src / "trainA" / "a.png", grey(1))
    save(src / "trainB" / "b.png", grey(1))
    save(src / "extra" / "c.png", grey(1))
    with pytest.raises(GanError, match="extra") as info:
        run(src, tmp_path / "out", resolution=8)
    assert str(src) in str(info.value)
    (src / "extra" / "c.png").unlink()
    (src / "trainB" / "b.png").unlink()
    with pytest.raises(GanError, match="without trainB"):
        run(src, tmp_path / "out", resolution=8)


# ---------------------------------------------------------------- bad and unusual files


def test_mixed_folder_rejects_bad_files_with_reasons(tmp_path):
    src = tmp_path / "src"
    save(src / "good.png", grey(128))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(buf, "PNG")
    (src / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (src / "text.PNG").write_text("this is not an image")
    save(src / "tiny.png", grey(5, size=(4, 30)))
    (src / "notes.txt").write_text("ignored silently")
    save(src / "anim.gif", grey(5))  # not an accepted format: listed with its reason
    save(src / ".hidden.png", grey(5))
    manifest = run(src, tmp_path / "out", resolution=8, test_fraction=0.0)
    reasons = {r["file"]: r["reason"] for r in manifest["rejected"]}
    assert sorted(reasons) == ["anim.gif", "text.PNG", "tiny.png", "truncated.png"]
    assert "unsupported image format .gif" in reasons["anim.gif"]
    assert "truncated" in reasons["truncated.png"] or "corrupt" in reasons["truncated.png"]
    assert "not an image" in reasons["text.PNG"]
    assert "4x30" in reasons["tiny.png"] and "8" in reasons["tiny.png"]
    assert manifest["splits"]["train"]["count"] == 1


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    a = np.zeros((16, 16), np.uint16)
    a[:, 4:8] = 257 * 100  # 100 in 8 bits
    a[:, 8:12] = 1000  # would clip to 255 with Pillow's convert
    a[:, 12:] = 65535
    path = save(tmp_path / "deep.png", Image.fromarray(a))
    with Image.open(path) as img:
        assert img.mode.startswith("I")  # the file really is 16-bit
    out = decode(path).image[0]
    assert out[:, 0].eq(0).all() and out[:, 5].eq(100).all()
    assert out[:, 9].eq(4).all() and out[:, 14].eq(255).all()


def test_palette_png_converts_colours_and_transparency(tmp_path):
    img = Image.new("P", (16, 16), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (8, 0, 16, 16))
    path = save(tmp_path / "pal.png", img)
    rgb = decode(path, channels=3).image
    assert rgb[:, 8, 2].tolist() == [255, 0, 0] and rgb[:, 8, 12].tolist() == [0, 0, 255]
    transparent = save(tmp_path / "pal_t.png", img, transparency=1)
    rgb = decode(transparent, channels=3).image
    assert rgb[:, 8, 2].tolist() == [255, 0, 0] and rgb[:, 8, 12].tolist() == [255, 255, 255]


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 8, 16))  # fully transparent black
    rgba.paste((0, 0, 0, 128), (8, 0, 12, 16))  # half transparent black
    out = decode(save(tmp_path / "a.png", rgba), channels=3).image
    assert out[:, 4, 2].tolist() == [255, 255, 255]
    assert abs(int(out[0, 4, 9]) - 127) <= 2
    assert out[:, 4, 14].tolist() == [255, 0, 0]
    la = Image.new("LA", (16, 16), (0, 0))
    assert decode(save(tmp_path / "la.png", la)).image.eq(255).all()


def test_grey_to_rgb_and_rgb_to_grey(tmp_path):
    out = decode(save(tmp_path / "g.png", grey(77)), channels=3).image
    assert out.shape == (3, 16, 16) and out.eq(77).all()
    red = Image.new("RGB", (16, 16), (255, 0, 0))
    out = decode(save(tmp_path / "r.png", red), channels=1).image
    assert out.shape == (1, 16, 16) and out.eq(76).all()  # ITU-R 601 luma of pure red


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    stored = Image.new("L", (32, 32), 0)
    stored.paste(255, (0, 0, 16, 16))  # white top-left quadrant as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # viewer must rotate 90 degrees clockwise
    path = save(tmp_path / "photo.JPG", stored, format="JPEG", quality=95, exif=exif.tobytes())
    with Image.open(path) as img:
        assert img.getexif()[0x0112] == 6
    out = decode(path, resolution=32).image[0].float()
    top_left, top_right = out[:16, :16].mean(), out[:16, 16:].mean()
    assert top_right > 200 and top_left < 50  # rotated clockwise: now the top-right


def test_short_side_resized_then_centre_cropped(tmp_path):
    wide = Image.new("L", (64, 32), 0)
    wide.paste(255, (16, 0, 48, 32))  # only the central square is white
    out = decode(save(tmp_path / "wide.png", wide), resolution=16).image
    assert out.shape == (1, 16, 16)
    assert out[:, :, 2:14].float().mean() > 250
    small = Image.new("RGB", (10, 12), (10, 20, 30))
    out = decode(save(tmp_path / "small.bmp", small), resolution=32, channels=3).image
    assert out.shape == (3, 32, 32) and out[:, 16, 16].tolist() == [10, 20, 30]


# ---------------------------------------------------------------- errors


def test_missing_input_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(GanError, match="nowhere.*not found"):
        run(missing, tmp_path / "out")


def test_no_image_files_is_an_error(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("x")
    with pytest.raises(GanError, match="no image files"):
        run(src, tmp_path / "out")


def test_empty_after_rejection_names_path_count_and_reasons(tmp_path):
    src = tmp_path / "broken"
    src.mkdir()
    (src / "a.png").write_text("not a png")
    save(src / "b.png", grey(1, size=(2, 2)))
    with pytest.raises(GanError) as info:
        run(src, tmp_path / "out")
    message = str(info.value)
    assert str(src) in message and "all 2 image files were rejected" in message
    assert "a.png: not an image" in message and "b.png: too small" in message
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_one_image_cannot_make_a_test_split(tmp_path):
    src = tmp_path / "src"
    save(src / "x.png", grey(1))
    with pytest.raises(GanError, match="test_fraction"):
        run(src, tmp_path / "out", resolution=8)
