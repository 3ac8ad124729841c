"""The metrics log's dvclive view and listeners: what `dvc exp show` and the flows read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from PIL import Image

from gan.training.live import IMAGE
from gan.training.log import MetricsLog, listening


def rows(*steps: int) -> list[dict]:
    return [
        {"step": s, "loss_G_main": 1.0 / s, "lr_G": 2e-4, "img_per_s": 100.0 + s} for s in steps
    ]


def history(run: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run / "dvclive" / "plots" / "metrics" / f"{name}.tsv", sep="\t")


def test_rows_reach_dvclive_and_listeners(tmp_path):
    seen: list[dict] = []
    with listening(seen.append):
        log = MetricsLog(tmp_path / "log.csv", live=True)
        for row in rows(4, 8):
            log.append(row)
    log.append(rows(12)[0])  # after the listener left
    assert [r["step"] for r in seen] == [4, 8]
    summary = json.loads((tmp_path / "dvclive" / "metrics.json").read_text())
    assert summary == {"step": 12, "loss_G_main": 1 / 12, "lr_G": 2e-4, "img_per_s": 112.0}
    assert history(tmp_path, "img_per_s")["step"].tolist() == [4, 8, 12]
    assert not list(tmp_path.rglob("dvc.yaml"))  # the root dvc.yaml declares the folder
    assert pd.read_csv(tmp_path / "log.csv")["step"].tolist() == [4, 8, 12]  # still the table


def test_resume_rebuilds_the_view_from_the_kept_rows(tmp_path):
    log = MetricsLog(tmp_path / "log.csv", live=True)
    for row in rows(4, 8, 12, 16):  # the run is killed after step 16, its checkpoint is step 8
        log.append(row)
    samples = tmp_path / "samples"
    samples.mkdir()
    for step, colour in ((8, "red"), (16, "blue")):
        Image.new("RGB", (4, 4), colour).save(samples / f"step-{step:08d}.png")
    resumed = MetricsLog(tmp_path / "log.csv", resume_step=8, live=True)
    resumed.append(rows(12)[0])
    assert history(tmp_path, "loss_G_main")["step"].tolist() == [4, 8, 12]  # no step twice
    shown = tmp_path / "dvclive" / "plots" / "images" / IMAGE
    assert Image.open(shown).getpixel((0, 0)) == (255, 0, 0)  # the grid of step 8, not 16
    resumed.image(samples / "step-00000016.png")
    assert Image.open(shown).getpixel((0, 0)) == (0, 0, 255)


def test_no_dvclive_unless_asked_or_under_dvc(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    log = MetricsLog(tmp_path / "log.csv")
    log.append(rows(4)[0])
    assert log.live is None and not (tmp_path / "dvclive").exists()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert MetricsLog(tmp_path / "other.csv").live is not None


def test_dvclive_never_initialises_dvc_in_a_plain_git_repository(tmp_path):
    """dvclive's own repository lookup would `dvc init` an enclosing Git repository."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    code = (
        "from gan.training.log import MetricsLog\n"
        "MetricsLog('run/log.csv', live=True).append({'step': 1, 'loss': 0.5})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DVC_ROOT"}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)
    assert (tmp_path / "run" / "dvclive" / "metrics.json").is_file()
    assert not (tmp_path / ".dvc").exists()
