"""The flows' own decisions as plain functions: no Prefect server needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from prefect.states import Failed

from flows import artifacts
from flows.cache import stage_key
from flows.retrain import champion_checkpoint, retrain_params, should_retrain
from flows.serve import (
    CRON_ENV,
    DEFAULT_RETRAIN_CRON,
    read_deployments,
    runner_deployments,
    schedules_of,
)
from flows.tasks import transient
from gan.config import ClassifierConfig, Params, PreprocessConfig
from gan.errors import GanError
from gan.io import sha256_file
from gan.stages import stage

CHAMPION = {"version": 3, "data_hash": "a" * 64, "run_id": "r", "checkpoint": None}


@pytest.mark.parametrize(
    ("champion", "data_hash", "force", "go", "says"),
    [
        (None, "b" * 64, False, True, "no champion yet"),
        (CHAMPION, "a" * 64, False, False, "data unchanged since champion v3"),
        (
            CHAMPION,
            "b" * 64,
            False,
            True,
            "data changed since champion v3 was trained: aaaaaaaaaaaa -> bbbb",
        ),
        (CHAMPION, "a" * 64, True, True, "forced"),
        ({**CHAMPION, "data_hash": None}, "a" * 64, False, True, "no recorded data hash"),
    ],
)
def test_should_retrain(champion, data_hash, force, go, says):
    decision, reason = should_retrain(champion, data_hash, force)
    assert decision is go and says in reason


def test_champion_checkpoint_only_when_it_still_exists_unchanged(tmp_path):
    ckpt = tmp_path / "ckpt-00000008.pt"
    ckpt.write_bytes(b"weights")
    record = {**CHAMPION, "checkpoint": {"path": str(ckpt), "sha256": sha256_file(ckpt)}}
    assert champion_checkpoint(record)[0] == str(ckpt)
    ckpt.write_bytes(b"other weights")
    assert champion_checkpoint(record) == (
        None,
        f"champion checkpoint {ckpt} changed since it was registered",
    )
    ckpt.unlink()
    assert "no longer exists" in champion_checkpoint(record)[1]
    assert champion_checkpoint(CHAMPION)[0] is None
    assert champion_checkpoint(None)[0] is None


def test_retrain_params_use_a_fresh_run_dir_for_train_evaluate_and_promote():
    cfg = Params()
    out = retrain_params(cfg, "ck.pt", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert out.train.run == f"{cfg.train.run}-retrain-20300102-030405"
    assert out.evaluate.run_dir == out.promote.run_dir == str(out.train.run_dir)
    assert out.train.init_from == "ck.pt" and cfg.train.init_from is None


def test_only_non_gan_errors_are_retried():
    assert transient(None, None, Failed(data=OSError("disk full"))) is True
    assert transient(None, None, Failed(data=RuntimeError("device lost"))) is True
    assert transient(None, None, Failed(data=GanError("bad data"))) is False


def preprocess_key(_context, parameters):
    return stage_key(stage("preprocess"))(
        _context, {"params": Params(preprocess=parameters["cfg"])}
    )


def classifier_key(_context, parameters):
    """The classifier's key while the processed data's manifest records `data_hash`."""
    cfg = parameters["cfg"]
    Path(cfg.data).mkdir(parents=True, exist_ok=True)
    (Path(cfg.data) / "manifest.json").write_text(
        json.dumps({"content_hash": parameters["data_hash"]})
    )
    return stage_key(stage("classifier"))(_context, {"params": Params(classifier=cfg)})


def test_preprocess_cache_key_follows_raw_files_and_params(tmp_path):
    (tmp_path / "a.png").write_bytes(b"1")
    cfg = PreprocessConfig(input=str(tmp_path))
    key = preprocess_key(None, {"cfg": cfg})
    assert preprocess_key(None, {"cfg": cfg}) == key
    assert preprocess_key(None, {"cfg": cfg.model_copy(update={"resolution": 16})}) != key
    (tmp_path / "a.png").write_bytes(b"2")
    assert preprocess_key(None, {"cfg": cfg}) != key
    clf = ClassifierConfig(data=str(tmp_path / "processed"))
    assert classifier_key(None, {"cfg": clf, "data_hash": "x"}) != classifier_key(
        None, {"cfg": clf, "data_hash": "y"}
    )


def test_evaluation_report_embeds_the_grid_and_tabulates_metrics(tmp_path):
    from PIL import Image

    png = tmp_path / "samples.png"
    Image.new("L", (8, 8)).save(png)
    decision = {
        "decision": "rejected",
        "reason": "fid 2 does not beat champion v1's 1",
        "version": 2,
        "primary_metric": "fid",
        "registry": str(tmp_path),
    }
    evaluation = {"metrics": {"fid": 2.0, "kid": float("nan")}}
    md = artifacts.evaluation_report({"run_id": "r", "steps": 8}, evaluation, decision, png)
    assert "# Candidate v2: rejected" in md and "data:image/png;base64," in md
    assert "| **fid** (primary) |" in md and str(png.resolve()) in md
    missing = artifacts.evaluation_report({}, evaluation, decision, tmp_path / "none.png")
    assert "_No sample grid" in missing


def test_decision_rows_first_candidate():
    rows = artifacts.decision_rows(
        {
            "decision": "promoted",
            "reason": "first",
            "version": 1,
            "run_id": "r",
            "primary_metric": "fid",
            "value": float("inf"),
            "previous_champion": None,
            "champion": 1,
            "registry": "unused",
        }
    )
    assert rows == [
        {
            "model": "candidate",
            "version": "v1",
            "run_id": "r",
            "fid": None,
            "decision": "promoted",
            "reason": "first",
            "champion now": True,
        }
    ]
    json.dumps(rows, allow_nan=False)


def build_step_cron(env: dict[str, str]) -> str:
    """Run prefect.yaml's retrain-cron build step the way `prefect deploy` does (shell)."""
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (step,) = [s["prefect.deployments.steps.run_shell_script"] for s in doc["build"]]
    assert step["id"] == "retrain-cron" and step["shell"] is True
    out = subprocess.run(step["script"], shell=True, env=env, capture_output=True, text=True)
    return out.stdout.strip()


def test_retrain_is_weekly_unless_gan_retrain_cron_says_otherwise(monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != CRON_ENV}
    assert build_step_cron(env) == DEFAULT_RETRAIN_CRON == "0 3 * * 1"
    assert build_step_cron({**env, CRON_ENV: "0 4 * * *"}) == "0 4 * * *"

    entries = {e["name"]: e for e in read_deployments(REPO)}
    assert [s["cron"] for s in entries["retrain"]["schedules"]] == ["{{ retrain-cron.stdout }}"]
    monkeypatch.delenv(CRON_ENV, raising=False)
    (weekly,) = schedules_of(entries["retrain"])
    assert weekly.cron == "0 3 * * 1" and weekly.timezone == "UTC"
    monkeypatch.setenv(CRON_ENV, "0 4 * * *")
    assert schedules_of(entries["retrain"])[0].cron == "0 4 * * *"
    assert schedules_of(entries["retrain"], cron="0 6 * * *")[0].cron == "0 6 * * *"


def test_prefect_yaml_deployments_point_at_existing_flows_and_one_pool():
    entries = {e["name"]: e for e in read_deployments(REPO)}
    assert set(entries) == {"pipeline", "retrain", "hpo"}
    for e in entries.values():
        assert (REPO / e["entrypoint"].split(":")[0]).is_file(), e["entrypoint"]
        assert e["work_pool"]["name"] == "ganops"
    assert not entries["pipeline"].get("schedules") and not entries["hpo"].get("schedules")


def test_serve_builds_every_deployment_with_its_schedule(monkeypatch):
    monkeypatch.chdir(REPO)
    deployments = {d.name: d for d in runner_deployments(".", retrain_cron="0 5 * * *")}
    assert set(deployments) == {"pipeline", "retrain", "hpo"}
    assert [s.schedule.cron for s in deployments["retrain"].schedules] == ["0 5 * * *"]
    assert deployments["retrain"].parameters["force"] is False
    assert deployments["pipeline"].entrypoint == "flows/pipeline.py:pipeline_flow"
    with pytest.raises(GanError, match="no deployment named nope"):
        runner_deployments(".", only=["nope"])


def test_progress_line_reads_like_the_bar():
    from flows.progress import progress_line

    row = {"step": 400, "loss_D_main": 1.2345, "loss_G_main": float("nan"), "lr_G": 2e-4,
           "img_per_s": 811.6}  # fmt: skip
    assert progress_line(row, 2000) == "train step 400/2000 (20%): loss_D_main 1.234, 812 img/s"


def test_artifact_keys_are_what_prefect_accepts():
    from flows.progress import artifact_key

    assert artifact_key("Digits_DCGAN.v2") == "train-progress-digits-dcgan-v2"
    assert artifact_key("__") == "train-progress-run"


def test_reporter_logs_every_row_and_moves_the_artifact_at_most_every_few_seconds():
    from flows.progress import ARTIFACT_SECONDS, TrainReporter

    now = [0.0]
    lines, moves = [], []
    report = TrainReporter(100, lines.append, moves.append, clock=lambda: now[0])
    for step in range(10, 101, 10):
        report({"step": step, "loss_G_main": 1.0})
        now[0] += ARTIFACT_SECONDS / 2
    assert len(lines) == 10
    assert moves == [10.0, 30.0, 50.0, 70.0, 90.0, 100.0]  # every other row, and the last


def test_reporting_outside_a_run_logs_through_plain_logging(tmp_path, caplog):
    """`gan train`-like use of train_task's listener: no Prefect run, no artifact."""
    from flows.progress import reporting
    from gan.training.log import MetricsLog

    with caplog.at_level("INFO", logger="ganops.train"), reporting(8, "tiny"):
        MetricsLog(tmp_path / "log.csv", live=False).append({"step": 4, "loss_D_main": 0.5})
    assert caplog.messages == ["train step 4/8 (50%): loss_D_main 0.5"]


def test_the_trainer_never_imports_prefect():
    code = "import sys, gan.cli, gan.training.loop; assert 'prefect' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_stage_runners():
    from prefect.task_runners import ProcessPoolTaskRunner

    from flows.runners import stage_runner

    assert stage_runner("inline") is None
    assert isinstance(stage_runner("processes"), ProcessPoolTaskRunner)
    assert type(stage_runner("dask", "tcp://127.0.0.1:8786")).__name__ == "DaskTaskRunner"
    with pytest.raises(GanError, match="would not match `dvc repro`"):
        stage_runner("threads")
    with pytest.raises(GanError, match="inline, processes or dask"):
        stage_runner("fibers")
