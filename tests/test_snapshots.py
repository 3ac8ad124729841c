"""Snapshots during training (train.metrics_every) and the best snapshot's export
(train.export: best): real tiny runs measured with a real classifier, no mocks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO, assert_same_state
from safetensors.torch import load_file
from test_hpo_support import classifier16  # noqa: F401  (a fixture: trained once per session)
from test_pipeline_dvc import run
from test_stylegan2_family import MODEL as SG_MODEL
from test_training import tiny

from gan.config import EvaluateConfig, dump_section, load_params, parse_params
from gan.errors import GanError
from gan.export import WEIGHTS
from gan.io import load_torch, read_json
from gan.models import get_family
from gan.models.family import DataInfo
from gan.training.checkpoint import list_checkpoints
from gan.training.fingerprint import fingerprint
from gan.training.inference import inference_copy, labels_for
from gan.training.log import MetricsLog
from gan.training.loop import precision_for, train
from gan.training.snapshots import snapshot_seed
from gan.training.streams import Streams

pytestmark = pytest.mark.usefixtures("one_thread")
COLUMNS = ["snapshot_fid", "snapshot_kid", "snapshot_seconds"]


@pytest.fixture
def evaluate(digits16, classifier16, tmp_path):  # noqa: F811
    return EvaluateConfig(
        data=str(digits16), classifier=str(classifier16), cache_dir=str(tmp_path / "cache")
    )


def snap(data, where, **overrides):
    """A tiny run with a snapshot every 4 steps, on 32 samples."""
    return tiny(data, where, **{"metrics_every": 4, "metrics_samples": 32, **overrides})


def final_state(cfg) -> dict:
    return load_torch(list_checkpoints(cfg.run_dir)[-1])


def run_json(cfg) -> dict:
    return json.loads((cfg.run_dir / "run.json").read_text())


def untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "seconds"}


def exported_weights(cfg) -> dict[str, torch.Tensor]:
    return load_file(str(cfg.run_dir / "export" / WEIGHTS))


def as_exported(cfg, G_ema_state: dict) -> dict[str, torch.Tensor]:
    """What the export writes for these EMA weights: their inference copy."""
    family = get_family(cfg.model.family)
    data = DataInfo.from_manifest(read_json(Path(cfg.data) / "manifest.json"))
    layout = precision_for(cfg, torch.device("cpu")).memory_format()  # as the run's nets
    G = family.build_generator(cfg.model, data).to(memory_format=layout)
    G.load_state_dict(G_ema_state)
    G = inference_copy(G, family, labels_for(data.num_classes))
    return {k: v.contiguous() for k, v in G.state_dict().items()}


def test_snapshots_reach_the_log_and_dvclive_at_their_steps(
    digits16, evaluate, tmp_path, monkeypatch
):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # dvclive's view, as under `dvc repro`
    cfg = snap(digits16, tmp_path, metrics_every=6, log_every=4)  # snapshots at 6 and 12
    summary = train(cfg, evaluate)
    log = pd.read_csv(cfg.run_dir / "log.csv")
    assert log["step"].tolist() == [4, 6, 8, 12]  # a snapshot step is a logging step too
    measured = log.set_index("step")[COLUMNS]
    assert measured.loc[[6, 12]].notna().all().all() and measured.loc[[4, 8]].isna().all().all()
    assert (measured.loc[[6, 12], "snapshot_fid"] > 0).all()
    metrics = cfg.run_dir / "dvclive" / "plots" / "metrics"
    for column in COLUMNS:
        assert pd.read_csv(metrics / f"{column}.tsv", sep="\t")["step"].tolist() == [6, 12]
    live = json.loads((cfg.run_dir / "dvclive" / "metrics.json").read_text())
    assert live["snapshot_fid"] == pytest.approx(measured.loc[12, "snapshot_fid"], rel=1e-5)
    record = summary["snapshots"]
    best = int(measured["snapshot_fid"].idxmin())
    assert record["best_step"] == best and record["metric"] == "fid"
    assert record["best"]["fid"] == pytest.approx(measured.loc[best, "snapshot_fid"], rel=1e-5)
    assert summary["export_step"] == 12  # export: last
    assert run_json(cfg)["snapshots"] == record


def test_export_best_writes_the_ema_weights_of_the_best_step(digits16, evaluate, tmp_path):
    """A learning rate of 1 wrecks the generator after its first steps (the snapshots' FID:
    1.4 at step 2, then 1.8 to 2.0), so the best snapshot is an early one. Checkpoints at
    every snapshot keep each step's EMA weights to compare the export with."""
    kw = {"metrics_every": 2, "checkpoint_every": 2, "keep_checkpoints": 6, "precision": "fp32"}
    kw["optim"] = {"g_lr": 1.0, "d_lr": 1.0}
    best = snap(digits16, tmp_path / "best", export="best", **kw)
    summary = train(best, evaluate)
    step = summary["snapshots"]["best_step"]
    assert step < best.steps  # an earlier snapshot than the last
    log = pd.read_csv(best.run_dir / "log.csv").dropna(subset=["snapshot_fid"])
    assert step == int(log.loc[log["snapshot_fid"].idxmin(), "step"])
    assert summary["export_step"] == step and run_json(best)["export_step"] == step
    at_best = load_torch(best.run_dir / "checkpoints" / f"ckpt-{step:08d}.pt")["nets"]["G_ema"]
    assert_same_state(exported_weights(best), as_exported(best, at_best), "export")
    assert final_state(best)["snapshots"]["step"] == step
    last = snap(digits16, tmp_path / "last", export="last", **kw)
    train(last, evaluate)
    final = final_state(last)["nets"]["G_ema"]
    assert_same_state(exported_weights(last), as_exported(last, final), "export")
    assert run_json(last)["export_step"] == last.steps and run_json(last)["snapshots"]
    other = exported_weights(best)
    changed = [k for k, v in exported_weights(last).items() if not torch.equal(v, other[k])]
    assert any(k.endswith("weight") for k in changed)  # best and last: other generators


def last_snapshot(cfg) -> dict[str, float]:
    row = pd.read_csv(cfg.run_dir / "log.csv").set_index("step").loc[cfg.steps]
    return {f: row[f"snapshot_{f}"] for f in ("fid", "kid")}


def evaluated(evaluate, cfg) -> dict[str, float]:
    """What `gan evaluate` reports for the run's export, on the snapshots' samples and seed."""
    from gan.metrics.evaluate import measure

    same = {
        "num_samples": cfg.metrics_samples,
        "seed": snapshot_seed(cfg),
        "metrics": ["fid", "kid"],
    }
    return measure(evaluate.model_copy(update=same), cfg.run_dir / "export").metrics


def test_the_last_snapshot_is_what_evaluate_reports_for_the_export(digits16, evaluate, tmp_path):
    cfg = snap(digits16, tmp_path, precision="fp32")
    train(cfg, evaluate)
    found, reported = last_snapshot(cfg), evaluated(evaluate, cfg)
    for f in ("fid", "kid"):  # the run's memory layout against the export's: rounding only
        assert found[f] == pytest.approx(reported[f], rel=1e-3, abs=1e-6), f


def test_translation_snapshots_translate_the_test_images_both_ways(unpaired16, tmp_path):
    from test_cyclegan import tiny as cyclegan_tiny

    from gan.config import ClassifierConfig
    from gan.metrics.classifier import train_classifier

    clf = tmp_path / "clf"
    train_classifier(ClassifierConfig(data=str(unpaired16), output=str(clf), epochs=1))
    evaluate = EvaluateConfig(data=str(unpaired16), classifier=str(clf), cache_dir=str(tmp_path))
    cfg = cyclegan_tiny(unpaired16, tmp_path, metrics_every=3, metrics_samples=1000)
    summary = train(cfg, evaluate)
    assert summary["snapshots"]["best_step"] in (3, 6)
    found, reported = last_snapshot(cfg), evaluated(evaluate, cfg)  # every test image, as here
    for f in ("fid", "kid"):  # the mean of both directions
        assert found[f] == pytest.approx(reported[f], rel=1e-3, abs=1e-6), f


@pytest.mark.parametrize(
    "model", [None, SG_MODEL], ids=["dcgan", "stylegan2"]
)  # StyleGAN2's noise inputs draw from torch's global stream while it trains
def test_training_is_bit_identical_with_snapshots_on_or_off(digits16, evaluate, tmp_path, model):
    extra = {"model": model, "batch_size": 8} if model else {}
    off = tiny(digits16, tmp_path / "off", **extra)
    train(off)
    on = snap(digits16, tmp_path / "on", metrics_every=3, export="best", **extra)
    train(on, evaluate)
    a, b = final_state(off), final_state(on)
    assert "snapshots" not in a and b["snapshots"]["step"] in (3, 6, 9, 12)
    for part in ("nets", "optimizers", "schedulers", "rng", "family_state"):
        assert_same_state(a[part], b[part], part)
    assert a["fingerprint"] == b["fingerprint"]


def test_a_resumed_run_exports_what_an_uninterrupted_one_does(digits16, evaluate, tmp_path):
    straight = snap(digits16, tmp_path / "a", metrics_every=2, export="best")
    train(straight, evaluate)
    interrupted = snap(digits16, tmp_path / "b", metrics_every=2, export="best")
    train(interrupted.model_copy(update={"steps": 8}), evaluate)  # ckpt-8 holds the best so far
    summary = train(interrupted, evaluate)
    assert summary["resumed_from_step"] == 8
    assert untimed(summary["snapshots"]) == untimed(run_json(straight)["snapshots"])
    assert summary["export_step"] == run_json(straight)["export_step"]
    assert_same_state(exported_weights(straight), exported_weights(interrupted), "export")
    assert_same_state(final_state(straight)["snapshots"], final_state(interrupted)["snapshots"])
    a = pd.read_csv(straight.run_dir / "log.csv")
    b = pd.read_csv(interrupted.run_dir / "log.csv")
    pd.testing.assert_series_equal(a["snapshot_fid"], b["snapshot_fid"])


def test_a_best_measured_under_other_settings_is_measured_again(digits16, evaluate, tmp_path):
    cfg = snap(digits16, tmp_path, export="best")
    first = train(cfg, evaluate)["snapshots"]
    again = train(cfg.model_copy(update={"metrics_samples": 48}), evaluate)["snapshots"]
    assert again["best_step"] == first["best_step"] and again["samples"] == 48
    assert again["best"]["fid"] != first["best"]["fid"]  # other samples, other figure


def test_snapshot_latents_come_from_their_own_stream(digits16, evaluate, tmp_path):
    from test_training import _session

    from gan.training.snapshots import Snapshots

    cfg = snap(digits16, tmp_path, seed=5)
    session = _session(cfg)
    before = torch.get_rng_state()
    snapshots = Snapshots.start(cfg, evaluate, session)
    assert snapshots.judge.settings.seed == Streams(5).seed("snapshots") % 2**32
    snapshots.take(4)
    assert torch.equal(torch.get_rng_state(), before)  # torch's stream as training left it


def test_two_ranks_train_while_rank_0_measures(digits16, evaluate, tmp_path):
    cfg = snap(digits16, tmp_path, steps=8, world_size=2, export="best")
    summary = train(cfg, evaluate)
    assert summary["world_size"] == 2 and summary["snapshots"]["best_step"] in (4, 8)
    log = pd.read_csv(cfg.run_dir / "log.csv")
    assert log.dropna(subset=["snapshot_fid"])["step"].tolist() == [4, 8]


def test_params_errors_name_the_key(digits16, tmp_path):
    with pytest.raises(GanError, match="train.export: best .* train.metrics_every is 0"):
        parse_params({"train": {"export": "best"}})
    with pytest.raises(GanError, match="train.metrics_every"):
        parse_params({"train": {"metrics_every": -1}})
    with pytest.raises(GanError, match="train.best_metric"):
        parse_params({"train": {"metrics_every": 5, "best_metric": "is"}})
    with pytest.raises(GanError, match="train.metrics_samples"):
        parse_params({"train": {"metrics_every": 5, "metrics_samples": 1}})
    cfg = snap(digits16, tmp_path)
    with pytest.raises(GanError, match="train.metrics_every: .* evaluate section"):
        train(cfg)
    missing = EvaluateConfig(data=str(digits16), classifier=str(tmp_path / "no-classifier"))
    with pytest.raises(GanError, match="no-classifier"):
        train(cfg, missing)
    assert not list_checkpoints(cfg.run_dir)  # it failed before the first step


def test_snapshot_keys_leave_the_fingerprint_as_it_was():
    plain = parse_params({}).train
    keys = {"metrics_every": 100, "metrics_samples": 64, "best_metric": "kid", "export": "best"}
    snapshots = parse_params({"train": keys}).train
    assert fingerprint(dump_section(snapshots), "h") == fingerprint(dump_section(plain), "h")


def test_dvc_plots_show_draws_the_snapshot_curve(tmp_path):
    """The root dvc.yaml's snapshot plot reads dvclive's history, which holds the snapshot
    steps alone: log.csv's empty cells between them would be drawn as zeros."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    run(["dvc", "init", "-q"], tmp_path)
    train = load_params(tmp_path / "params.yaml").train
    log = MetricsLog(tmp_path / train.runs_dir / train.run / "log.csv", live=True)
    for step, fid in ((50, None), (100, 40.0), (150, None), (200, 31.5)):
        log.append({"step": step, "loss_G_main": 1.0} | ({"snapshot_fid": fid} if fid else {}))
    plots = [sys.executable, "-m", "dvc", "plots", "show", "--json"]
    shown = json.loads(subprocess.run(plots, cwd=tmp_path, capture_output=True, check=True).stdout)
    (plot,) = shown["data"]["snapshot_fid"]
    values = plot["content"]["data"]["values"]
    assert [(int(v["step"]), float(v["snapshot_fid"])) for v in values] == [
        (100, 40.0),
        (200, 31.5),
    ]
