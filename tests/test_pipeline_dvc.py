"""The real DVC pipeline on a tiny config in a temporary repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_repo

pytestmark = pytest.mark.slow

TINY = {
    "preprocess": {"resolution": 16},
    "classifier": {"epochs": 1},
    "train": {"steps": 8, "batch_size": 16, "log_every": 4, "sample_every": 8, "checkpoint_every": 4,
              "model": {"width": 8, "z_dim": 8}},
    "evaluate": {"num_samples": 128, "kid_subset_size": 50},
    "promote": {"allow_weak_extractor": True},  # a one-epoch classifier is a weak judge
}  # fmt: skip


def merge(base: dict, extra: dict) -> dict:
    for k, v in extra.items():
        if isinstance(v, dict):
            merge(base.setdefault(k, {}), v)
        else:
            base[k] = v
    return base


def run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout + proc.stderr


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def tiny_repo(root: Path, *extra: str) -> Path:
    """A committed git + DVC repo: gan/, dvc.yaml, the TINY params and `extra` repo files."""
    shutil.copytree(REPO / "gan", root / "gan", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    for name in extra:
        shutil.copy(REPO / name, root / name)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny pipeline"], root)
    return root


@pytest.fixture(scope="module")
def repo(reproduced_repo, tmp_path_factory) -> Path:
    return copy_repo(reproduced_repo[0], tmp_path_factory.mktemp("pipeline") / "repo")


def test_repro_runs_every_stage_and_writes_declared_outputs(reproduced_repo, repo):
    out = reproduced_repo[1]  # the first `dvc repro` of the committed tiny pipeline
    assert ran_stages(out) == {
        "prepare",
        "preprocess",
        "classifier",
        "train",
        "evaluate",
        "promote",
    }
    metrics = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    assert {"fid", "kid", "is", "precision", "recall"} <= set(metrics)
    assert (repo / "registry/digits/champion.json").is_file()
    assert (repo / "reports/promote/report.md").is_file()
    shown = run(["dvc", "metrics", "show", "--json"], repo)
    assert "fid" in shown
    (live,) = json.JSONDecoder().raw_decode(shown, shown.index("{"))[0].values()  # workspace
    live = live["data"]
    assert live["runs/digits-dcgan/dvclive/metrics.json"]["data"]["step"] == 8  # dvclive's
    assert run(["git", "status", "--porcelain"], repo) == ""  # the fixture committed the run


def test_second_repro_reruns_nothing(repo):
    out = run(["dvc", "repro"], repo)
    assert ran_stages(out) == set()


def test_changing_a_train_param_reruns_train_and_later_stages_only(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["steps"] = 12
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo)
    assert ran_stages(out) == {"train", "evaluate", "promote"}
    assert "resumed from" in out  # only steps changed: the run continues from step 8
    history = (repo / "registry/digits/history.jsonl").read_text().splitlines()
    assert len(history) == 2
