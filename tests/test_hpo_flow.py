"""The Prefect flow: concurrent trials in threads, best params written and applied, artifacts."""

from __future__ import annotations

import json

import pytest
import yaml
from prefect.artifacts import Artifact
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
from prefect.testing.utilities import prefect_test_harness

from flows.hpo import hpo_flow, make_task_runner
from gan.config import load_params
from gan.hpo.study import load

pytest_plugins = ["test_hpo_support"]  # fixtures: params_file, classifier16
pytestmark = pytest.mark.slow


def test_task_runners_are_chosen_by_name():
    assert isinstance(make_task_runner("threads", 3), ThreadPoolTaskRunner)
    assert isinstance(make_task_runner("processes", 2), ProcessPoolTaskRunner)
    prefect_dask = pytest.importorskip("prefect_dask", reason="prefect-dask is not installed")
    runner = make_task_runner("dask", 2, "tcp://127.0.0.1:8786")
    assert isinstance(runner, prefect_dask.DaskTaskRunner)


def test_flow_runs_trials_concurrently_writes_and_applies_best(params_file):
    params_file.write_text(params_file.read_text().replace("n_trials: 3", "n_trials: 2"))
    with prefect_test_harness(server_startup_timeout=120):
        best = hpo_flow(str(params_file), concurrency=2, apply=True)
        trials_artifact = Artifact.get("hpo-tiny-trials")
        best_artifact = Artifact.get("hpo-tiny-best")

    params = load_params(params_file)
    trials = load(params).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    starts = sorted(t.datetime_start for t in trials)
    assert starts[1] < min(t.datetime_complete for t in trials)  # they overlapped
    on_disk = json.loads((params_file.parent / "reports/hpo/best.json").read_text())
    assert on_disk["trial"] == best["trial"] and on_disk["value"] == best["value"]
    applied = yaml.safe_load(params_file.read_text())["train"]["optim"]["g_lr"]
    assert applied == best["params"]["optim.g_lr"]
    rows = json.loads(trials_artifact.data)
    assert [r["trial"] for r in rows] == [0, 1] and rows[0]["state"] == "COMPLETE"
    assert f"best trial {best['trial']}" in best_artifact.data
