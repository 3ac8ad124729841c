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


def hold(paths: list[Path]) -> dict[Path, tuple]:
    """Each file opened (as a reader would hold it), with its content and inode now."""
    return {p: (open(p, "rb"), p.read_bytes(), p.stat().st_ino) for p in paths}  # noqa: SIM115


def release(held: dict[Path, tuple]) -> None:
    for handle, _, _ in held.values():
        handle.close()


def test_every_file_is_replaced_whole_through_a_rename(tmp_path, monkeypatch):
    """No file of the view (nor dvclive's VS Code step signal) is ever written in place: each
    write makes a new file and renames it over the old, so a reader holding the old one, or
    a write killed half-way, still has the old file, complete."""
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # as `dvc exp run` sets it
    run = tmp_path / "runs" / "tiny"
    (run / "samples").mkdir(parents=True)
    grids = []
    for step, colour in ((4, "red"), (8, "blue")):
        grids.append(run / "samples" / f"step-{step:08d}.png")
        Image.new("RGB", (4, 4), colour).save(grids[-1])
    signal = tmp_path / ".dvc" / "tmp" / "exps" / "run" / "DVCLIVE_STEP_COMPLETED"

    def files() -> list[Path]:
        return sorted(p for p in (run / "dvclive").rglob("*") if p.is_file()) + [signal]

    log = MetricsLog(run / "log.csv")
    log.append(rows(4)[0])
    log.image(grids[0])
    before = files()
    assert [p.name for p in before] == [
        "metrics.json", "samples.png", "img_per_s.tsv", "loss_G_main.tsv", "lr_G.tsv",
        "DVCLIVE_STEP_COMPLETED",
    ]  # fmt: skip
    held = hold(before)

    def assert_all_replaced() -> None:
        for path, (old, content, inode) in held.items():
            assert path.stat().st_ino != inode, f"{path.name} was written in place"
            old.seek(0)
            assert old.read() == content, f"{path.name}: the old file changed"

    log.append(rows(8)[0])
    log.image(grids[1])
    assert_all_replaced()
    assert history(run, "loss_G_main")["step"].tolist() == [4, 8]
    assert json.loads(signal.read_text())["step"] == 8

    release(held)
    held = hold(files()[:-1])  # the rebuild logs no step, so it gives no signal
    stale = run / "dvclive" / "plots" / "metrics" / "loss_gone.tsv"
    stale.write_text("step\tloss_gone\n4\t1.0\n")
    MetricsLog(run / "log.csv", resume_step=4)  # killed after step 8, resumed from 4
    assert_all_replaced()  # rebuilt by replacing, not by emptying the folder first
    assert history(run, "loss_G_main")["step"].tolist() == [4]
    assert not stale.exists()  # dropped once the rest was in place
    assert Image.open(run / "dvclive/plots/images" / IMAGE).getpixel((0, 0)) == (255, 0, 0)
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]

    log.append(rows(8)[0])
    assert signal.is_file()
    log.end()  # the run finished: the VS Code step signal goes, the view stays
    assert not signal.exists() and (run / "dvclive" / "metrics.json").is_file()
    release(held)
