"""A user's own folder of images, as the README says: `dvc add`, then the pipeline on RGB.

The folder is made here: three classes of coloured digits on tinted backgrounds, saved as
PNGs in class subfolders. Every stage runs through the `gan` command on it, with the
classifier's and train's random translation on (the RGB code path that crashed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO
from dataset_files import COLOURS, make_folder
from test_pipeline_dvc import ran_stages, run, tiny_repo
from torch_fidelity.utils import prepare_input_from_descriptor

from gan.cli import main
from gan.errors import GanError
from gan.metrics.extractor_quality import WEAK_SKILL


def test_dvc_add_of_a_folder_under_data_raw(tmp_path):
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    make_folder(tmp_path / "data/raw/mine", per_class=2)
    run(["dvc", "add", "data/raw/mine"], tmp_path)
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], tmp_path)
    assert "data/raw/mine.dvc" in status  # git sees the pointer file ...
    assert "data/raw/mine/" not in status  # ... and not the images, which DVC keeps
    run(["git", "add", "data/raw/mine.dvc"], tmp_path)
    ignored = subprocess.run(["git", "check-ignore", "-q", "data/raw/mine/red/0.png"], cwd=tmp_path)
    assert ignored.returncode == 0


def test_one_name_points_every_stage_at_the_data():
    from gan.config import parse_params

    cfg = parse_params({"preprocess": {"dataset": "faces"}})
    assert cfg.preprocess.input == "data/raw/faces"
    assert cfg.preprocess.output == "data/processed/faces"
    assert cfg.train.data == cfg.evaluate.data == cfg.classifier.data == "data/processed/faces"
    assert cfg.classifier.output == cfg.evaluate.classifier == "models/faces/classifier"
    assert cfg.promote.registry == "registry/faces"
    own = parse_params({"preprocess": {"dataset": "faces", "input": "/mnt/photos"}})
    assert own.preprocess.input == "/mnt/photos"  # a key that is set wins
    assert own.preprocess.output == "data/processed/faces"
    with pytest.raises(GanError, match="preprocess.dataset"):
        parse_params({"preprocess": {"dataset": "../faces"}})  # names a folder


PARAMS = {
    "preprocess": {"input": "data/raw/mine", "output": "data/processed/mine",
                   "resolution": 16, "channels": 3},
    "classifier": {"output": "models/mine/classifier", "epochs": 8, "batch_size": 16},
    "train": {"run": "mine", "steps": 4, "batch_size": 16, "log_every": 2, "sample_every": 4,
              "checkpoint_every": 4, "device": "cpu", "threads": 1, "progress": False,
              "augment": {"flip": True, "translate": 0.125},
              "model": {"family": "dcgan", "width": 8, "z_dim": 8}},
    "evaluate": {"num_samples": 48, "device": "cpu"},  # KID: the largest subset (24)
}  # fmt: skip


def fidelity_count(folder: Path) -> int:
    """What torch-fidelity's CLI reads from a folder: RGB uint8 images."""
    ds = prepare_input_from_descriptor(
        {"input": str(folder)}, samples_find_deep=False, samples_find_ext="png",
        samples_ext_lossy="jpg", samples_resize_and_crop=0, verbose=False,
    )  # fmt: skip
    first = ds[0]
    assert first.dtype == torch.uint8 and first.shape == (3, 16, 16)
    return len(ds)


@pytest.mark.slow
def test_the_readme_steps_with_dvc_one_params_edit(tmp_path):
    """`dvc add data/raw/mine`, `preprocess.dataset: mine` (+ channels, a property of these
    images), `dvc repro`: every stage reads and writes the folders that name implies."""
    repo = tiny_repo(tmp_path, ".gitignore")
    make_folder(repo / "data/raw/mine", per_class=24)
    run(["dvc", "add", "data/raw/mine"], repo)
    run(["git", "add", "data/raw/mine.dvc"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["preprocess"].update(dataset="mine", channels=3)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo)
    assert {"preprocess", "classifier", "train", "evaluate", "promote"} <= ran_stages(out)
    manifest = json.loads((repo / "data/processed/mine/manifest.json").read_text())
    assert manifest["channels"] == 3 and manifest["classes"] == sorted(COLOURS)
    clf = json.loads((repo / "models/mine/classifier/metrics.json").read_text())
    assert clf["test_accuracy"] >= 0  # the per-dataset classifier, from the dataset's name
    assert not (repo / "models/digits").exists()
    champion = json.loads((repo / "registry/mine/champion.json").read_text())
    assert champion["version"] == 1
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "data/raw/mine" in [d["path"] for d in lock["preprocess"]["deps"]]
    assert [o["path"] for o in lock["classifier"]["outs"]] == ["models/mine/classifier"]
    assert "up to date" in run(["dvc", "status"], repo)  # dvc.yaml's paths match the stages'


@pytest.mark.slow
def test_the_pipeline_on_a_small_rgb_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    make_folder(tmp_path / "data/raw/mine")
    Path("params.yaml").write_text(yaml.safe_dump(PARAMS))
    for stage in ("preprocess", "classifier", "train", "evaluate", "promote"):
        assert main([stage]) == 0, capsys.readouterr().err
    manifest = json.loads(Path("data/processed/mine/manifest.json").read_text())
    assert manifest["channels"] == 3 and manifest["classes"] == sorted(COLOURS)
    assert Path("models/mine/classifier").is_dir()
    metrics = json.loads(Path("reports/evaluate/metrics.json").read_text())
    assert metrics["fid"] >= 0
    assert metrics["extractor_skill"] >= WEAK_SKILL  # a judge that knows the colours
    assert metrics["kid_subset_size"] == 24  # all 24 test images (48 samples)
    assert metrics["fid_real_floor"] < metrics["fid"]
    decision = json.loads(Path("reports/promote/decision.json").read_text())
    assert decision["decision"] == "promoted" and decision["version"] == 1
    assert Path(decision["registry"]) == Path("registry/mine")  # per dataset by default
    assert (tmp_path / "registry/mine/models/v1/generator.safetensors").is_file()

    # the same images for an independent FID tool: the test split and champion samples
    assert main(["export-images", "--split", "test", "--out", "pngs/test"]) == 0
    assert main(["sample", "-n", "30", "--out-dir", "pngs/fake"]) == 0
    assert fidelity_count(tmp_path / "pngs/test") == manifest["splits"]["test"]["count"]
    assert fidelity_count(tmp_path / "pngs/fake") == 30


@pytest.mark.slow
def test_the_pipeline_on_a_flat_folder_without_labels(tmp_path, monkeypatch, capsys):
    """No class subfolders: the classifier stage trains an autoencoder, evaluate measures
    offline through its encoder (no IS, no classifier figures), and the model is promoted."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    flat = tmp_path / "data/raw/flat"
    flat.mkdir(parents=True)
    for png in make_folder(tmp_path / "sorted").rglob("*.png"):
        png.rename(flat / f"{png.parent.name}-{png.name}")
    params = {
        **PARAMS,
        "preprocess": {**PARAMS["preprocess"], "input": "data/raw/flat",
                       "output": "data/processed/flat"},
        "classifier": {"epochs": 12, "batch_size": 16, "lr": 2e-3},  # 72 steps
        "train": {**PARAMS["train"], "run": "flat"},
    }  # fmt: skip
    Path("params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("preprocess", "classifier", "train", "evaluate", "promote"):
        assert main([stage]) == 0, capsys.readouterr().err
    extractor = tmp_path / "models/flat/classifier"  # the per-dataset default path
    assert sorted(p.name for p in extractor.iterdir()) == [
        "autoencoder.json", "autoencoder.safetensors", "metrics.json",
    ]  # fmt: skip
    metrics = json.loads(Path("reports/evaluate/metrics.json").read_text())
    assert metrics["extractor_skill"] >= WEAK_SKILL
    assert {"fid", "kid", "precision", "recall", "fid_real_floor", "kid_real_floor"} <= set(metrics)
    assert not {k for k in metrics if k.startswith(("is", "class"))}
    protocol = json.loads(Path("reports/evaluate/protocol.json").read_text())
    assert protocol["extractor"].startswith("ganops-autoencoder-")
    decision = json.loads(Path("reports/promote/decision.json").read_text())
    assert decision["decision"] == "promoted" and Path(decision["registry"]) == Path(
        "registry/flat"
    )
