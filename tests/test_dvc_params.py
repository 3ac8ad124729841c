"""dvc.yaml reads params.yaml itself: its `${...}` must name keys that the file holds.

Derived keys (train.data, evaluate.run_dir, ...) exist only in gan/config.py, so the
pipelines name the source keys; plots and metrics follow `train.run` instead of a literal
run dir. Checked with the real `dvc` in a temporary repository (no stage runs).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_pipeline_dvc import run


@pytest.fixture
def repo(tmp_path):
    for path in [REPO / "dvc.yaml", *REPO.glob("params*.yaml")]:
        shutil.copy(path, tmp_path / path.name)
    # the pipelines as written, without any run's lock (its outputs are not in this repo)
    shutil.copytree(
        REPO / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("dvc.lock")
    )
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"]["run"] = "renamed"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    run(["dvc", "init", "-q"], tmp_path)
    return tmp_path


def test_every_pipeline_resolves_from_the_params_files_alone(repo):
    stages = run(["dvc", "stage", "list", "--all"], repo)
    assert "runs/renamed" in stages  # train's output follows train.run
    for line in (
        "pipelines/hpo/dvc.yaml:hpo",
        "pipelines/cyclegan/dvc.yaml:promote",
        "pipelines/stylegan2/dvc.yaml:promote",
        "pipelines/biggan/dvc.yaml:promote",
    ):
        assert line in stages


def test_plots_follow_train_run(repo):
    log = repo / "runs/renamed/log.csv"
    log.parent.mkdir(parents=True)
    log.write_text("step,loss_D_main,loss_G_main,img_per_s\n1,0.5,0.7,10\n2,0.4,0.6,12\n")
    dvc = Path(sys.executable).parent / "dvc"
    out = subprocess.run([dvc, "plots", "show", "--json"], cwd=repo, capture_output=True, text=True)
    shown = json.loads(out.stdout)
    assert [len(p["content"]["data"]["values"]) for p in shown["data"]["throughput"]] == [2]
    errors = {e["name"]: e.get("source") for e in shown.get("errors", [])}
    assert "losses" not in errors and "throughput" not in errors
    # no run yet for the cyclegan pipeline: its plot names params-cyclegan.yaml's run
    assert errors["cyclegan_losses"] == "runs/digits-restyled-cyclegan/log.csv"
