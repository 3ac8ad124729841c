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

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, digits_tensors
from PIL import Image
from test_pipeline_dvc import run
from torch_fidelity.utils import prepare_input_from_descriptor

from gan.cli import main

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 60, 230)}


def make_folder(root: Path, per_class: int = 40, size: int = 16) -> Path:
    """data/raw/mine/<colour>/<i>.png: digit k of the colour's class on a random tint."""
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


PARAMS = {
    "preprocess": {"input": "data/raw/mine", "output": "data/processed/mine",
                   "resolution": 16, "channels": 3},
    "classifier": {"output": "models/mine/classifier", "epochs": 1, "batch_size": 32},
    "train": {"run": "mine", "steps": 4, "batch_size": 16, "log_every": 2, "sample_every": 4,
              "checkpoint_every": 4, "device": "cpu", "threads": 1, "progress": False,
              "augment": {"flip": True, "translate": 0.125},
              "model": {"family": "dcgan", "width": 8, "z_dim": 8}},
    "evaluate": {"num_samples": 48, "kid_subset_size": 20, "device": "cpu"},
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
    decision = json.loads(Path("reports/promote/decision.json").read_text())
    assert decision["decision"] == "promoted" and decision["version"] == 1
    assert Path(decision["registry"]) == Path("registry/mine")  # per dataset by default
    assert (tmp_path / "registry/mine/models/v1/generator.safetensors").is_file()

    # the same images for an independent FID tool: the test split and champion samples
    assert main(["export-images", "--split", "test", "--out", "pngs/test"]) == 0
    assert main(["sample", "-n", "30", "--out-dir", "pngs/fake"]) == 0
    assert fidelity_count(tmp_path / "pngs/test") == manifest["splits"]["test"]["count"]
    assert fidelity_count(tmp_path / "pngs/fake") == 30
