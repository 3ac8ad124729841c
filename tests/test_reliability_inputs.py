"""One clear error for every bad input file (#14): a corpus of hand-edited and corrupt
files (tests/corpus/), changed shards, bad image folders, a torn log.csv and a truncated
latest checkpoint, each refused with a GanError naming the file or recovered, saying so."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import assert_same_state
from PIL import Image
from test_training import tiny

from gan.config import PreprocessConfig
from gan.data.preprocess import preprocess
from gan.data.shards import load_split, read_manifest
from gan.errors import GanError
from gan.export import CONFIG, load_export
from gan.io import load_torch, save_torch
from gan.metrics.classifier import load_classifier
from gan.training.checkpoint import list_checkpoints
from gan.training.log import MetricsLog
from gan.training.loop import train

CORPUS = Path(__file__).parent / "corpus"


def corpus(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).iterdir())


@pytest.mark.parametrize("bad", corpus("export"), ids=lambda p: p.stem)
def test_bad_generator_config_is_one_error(dcgan_export, bad, tmp_path):
    load_export(dcgan_export)  # the intact export loads
    copy = Path(shutil.copytree(dcgan_export, tmp_path / "copy"))
    shutil.copy(bad, copy / CONFIG)
    with pytest.raises(GanError, match=str(copy)):
        load_export(copy)


@pytest.mark.parametrize("bad", corpus("manifest"), ids=lambda p: p.stem)
def test_bad_manifest_is_one_error_naming_it(bad, tmp_path):
    shutil.copy(bad, tmp_path / "manifest.json")
    with pytest.raises(GanError, match="manifest.json"):
        read_manifest(tmp_path)
    with pytest.raises(GanError, match="manifest.json"):
        load_split(tmp_path, "train")


def test_classifier_config_without_accuracy_is_one_error(tmp_path):
    (tmp_path / "classifier.safetensors").write_bytes(b"")
    (tmp_path / "classifier.json").write_text('{"architecture": {}, "classes": []}')
    with pytest.raises(GanError, match="classifier.json: test_accuracy missing"):
        load_classifier(tmp_path)
    (tmp_path / "classifier.json").write_text('{"test_accuracy": 0.9, "architecture": [1]}')
    with pytest.raises(GanError, match="architecture"):
        load_classifier(tmp_path)


@pytest.mark.parametrize("bad", corpus("log"), ids=lambda p: p.stem)
def test_unreadable_log_on_resume_starts_afresh_saying_so(bad, tmp_path, capsys):
    path = tmp_path / "log.csv"
    shutil.copy(bad, path)
    log = MetricsLog(path, resume_step=8)
    assert log.rows == [] and "starting a fresh log" in capsys.readouterr().out
    log.append({"step": 9, "loss_G": 1.0})
    assert MetricsLog(path, resume_step=9).rows == [{"step": 9, "loss_G": 1.0}]


# ------------------------------------------------------------------ checkpoints


def test_truncated_latest_checkpoint_falls_back_to_the_intact_one(digits16, tmp_path, capsys):
    straight = train(tiny(digits16, tmp_path / "a", steps=16))
    cfg = tiny(digits16, tmp_path / "b")
    train(cfg)
    latest = list_checkpoints(cfg.run_dir)[-1]
    latest.write_bytes(latest.read_bytes()[:1000])  # a write cut short
    capsys.readouterr()
    summary = train(cfg.model_copy(update={"steps": 16}))
    out = capsys.readouterr().out
    assert summary["resumed_from_step"] == 8
    assert "ckpt-00000012.pt" in out and "using ckpt-00000008.pt" in out
    assert (cfg.run_dir / "checkpoints" / "ckpt-00000012.pt.corrupt").exists()
    a = load_torch(straight["checkpoint"])["nets"]
    assert_same_state(a, load_torch(summary["checkpoint"])["nets"])  # still exact


def test_batch_larger_than_the_data_is_refused_naming_both(digits16, tmp_path):
    with pytest.raises(GanError, match=f"train.batch_size 5000 .*train.data {digits16}"):
        train(tiny(digits16, tmp_path, batch_size=5000))


# ------------------------------------------------------------------ preprocess


def _images(src: Path, n: int = 6) -> Path:
    src.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("L", (16, 16), 30 * i).save(src / f"{i}.png")
    return src


def _run(src: Path, out: Path, **kw) -> dict:
    return preprocess(PreprocessConfig(input=str(src), output=str(out), resolution=8, **kw))


def test_changed_shard_pixels_are_refused_on_load(tmp_path):
    out = tmp_path / "out"
    _run(_images(tmp_path / "src"), out, test_fraction=0.0)
    shard = load_torch(out / "train-00000.pt")
    shard["images"][0, 0, 0, 0] ^= 1
    save_torch(out / "train-00000.pt", shard)
    with pytest.raises(GanError, match="changed after preprocessing"):
        load_split(out, "train")


def test_preprocess_never_removes_or_overwrites_a_users_file(tmp_path):
    src, out = _images(tmp_path / "src"), tmp_path / "out"
    out.mkdir()
    mine = out / "train-00007.pt"
    mine.write_bytes(b"the user's")
    _run(src, out, shard_size=2, test_fraction=0.0)  # writes train-00000..00002
    _run(src, out, shard_size=100, test_fraction=0.0)  # removes its own 00001, 00002 only
    assert mine.read_bytes() == b"the user's"
    assert not (out / "train-00001.pt").exists()
    with pytest.raises(GanError, match="train-00007.pt: exists but was not written"):
        _run(_images(src, 16), out, shard_size=2, test_fraction=0.0)
    assert mine.read_bytes() == b"the user's"


def test_links_folders_and_gifs_are_listed_as_rejected(tmp_path):
    src = _images(tmp_path / "src", 3)
    (src / "folder.png").mkdir()
    (src / "dangling.png").symlink_to(src / "nothere.png")
    (src / "loop.png").symlink_to(src / "loop.png")
    (src / "sub").mkdir()
    (src / "sub" / "up").symlink_to(src, target_is_directory=True)  # a folder loop
    (src / "good-link.png").symlink_to(src / "0.png")
    Image.new("L", (16, 16)).save(src / "anim.gif")
    (src / "notes.txt").write_text("not data, not listed")
    manifest = _run(src, tmp_path / "out", test_fraction=0.0)
    reasons = {r["file"]: r["reason"] for r in manifest["rejected"]}
    assert sorted(reasons) == ["anim.gif", "dangling.png", "folder.png", "loop.png", "sub/up"]
    assert "broken symbolic link" in reasons["dangling.png"]
    assert "loop" in reasons["loop.png"] and "folder" in reasons["folder.png"]
    assert "not followed" in reasons["sub/up"] and ".gif" in reasons["anim.gif"]
    assert manifest["splits"]["train"]["count"] == 4  # 3 images and the good link
    assert os.path.islink(src / "good-link.png")
