"""The Optuna search for real: tiny studies on 16 px digits, pruning, failures, apply.

Worker processes, SIGKILL and PostgreSQL are in test_hpo_workers.py; the Prefect flow in
test_hpo_flow.py. Trials here are enqueued with fixed params, so their metrics (seeded,
on the CPU) and so the pruner's decisions are the same on every run.
"""

from __future__ import annotations

import json
import math
import time

import optuna
import pytest
import yaml
from test_hpo_support import PARAMS

from gan.config import load_params
from gan.errors import GanError
from gan.hpo import settings as settings_module
from gan.hpo import study as study_module
from gan.hpo.report import apply_best, trials_frame, write_results
from gan.hpo.space import check_space
from gan.hpo.storage import open_storage
from gan.hpo.study import best, load, make_pruner, make_sampler, open_study, prepare, run

pytest_plugins = ["test_hpo_support"]  # fixtures: params_file, classifier16


def test_space_paths_and_bounds_are_checked_before_any_work(params_file):
    train = load_params(params_file).train
    cases = {
        "optim.g_lrr": "train has no param optim.g_lrr",
        "optim": "is a section",
        "optim.g_betas.2": "is not an index",
        "optim.g_betas.0": "each beta must be in [0, 1)",
    }
    for path, message in cases.items():
        space = {path: {"low": 0.5, "high": 1.0}}
        params = load_params(params_file, [f"hpo.space={json.dumps(space)}"])
        with pytest.raises(GanError, match="hpo.space." + path.replace(".", r"\.")) as err:
            check_space(train, params.hpo.space)
        assert message in str(err.value)
    n_critic = {"model.n_critic": {"type": "int", "low": 1, "high": 30}}
    params = load_params(params_file, [f"hpo.space={json.dumps(n_critic)}"])
    with pytest.raises(GanError, match="30 is not a valid train.model.n_critic"):
        check_space(train, params.hpo.space)


def test_study_prunes_planted_bad_trial_records_failure_and_applies_best(params_file):
    overrides = [
        "hpo.n_trials=4",
        "hpo.budget_steps=30",
        "hpo.report_every=15",
        "hpo.pruner={name: median, n_startup_trials: 2, n_warmup_steps: 0}",
        "hpo.enqueue_current=false",
        "hpo.space={optim.g_lr: {low: 1.0e-4, high: 1.0e-2, log: true}, optim.d_lr: {low: 1.0e-4, high: 1.0e-2, log: true}}",
    ]
    params = load_params(params_file, overrides)
    study = open_study(params)
    good = [{"optim.g_lr": 1e-2, "optim.d_lr": 1e-2}, {"optim.g_lr": 5e-3, "optim.d_lr": 5e-3}]
    for p in good:
        study.enqueue_trial(p)
    study.enqueue_trial({"optim.g_lr": 1e-7, "optim.d_lr": 1e-7})  # never leaves its init
    study.enqueue_trial({"optim.g_lr": 1e30, "optim.d_lr": 1e30})  # diverges to NaN

    summary = run(params)

    assert summary["ran"] == 4 and summary["complete"] == 2
    trials = load(params).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    planted = trials[2]
    assert list(planted.intermediate_values) == [15]  # stopped at its first report
    assert planted.intermediate_values[15] > max(t.intermediate_values[15] for t in trials[:2])
    assert "nan" in trials[3].user_attrs["fail_reason"].lower()
    for t in trials[:2]:
        assert sorted(t.intermediate_values) == [15, 30]
        assert math.isfinite(t.value) and t.value == t.user_attrs["fid"]
        assert (params_file.parent / t.user_attrs["run_dir"] / "export").is_dir()

    best = write_results(load(params), params.hpo)
    out = params_file.parent / params.hpo.output
    assert best["trial"] == min(trials[:2], key=lambda t: t.value).number
    assert json.loads((out / "best.json").read_text())["params"] == best["params"]
    frame = trials_frame(load(params))
    assert list(frame["state"]) == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert (out / "trials.csv").is_file() and (out / "history.png").stat().st_size > 1000
    assert "| trial | state |" in (out / "trials.md").read_text()

    before = params_file.read_text()
    changes = apply_best(params_file, best["params"])
    after = params_file.read_text()
    assert {c[0] for c in changes} == {"train.optim.g_lr", "train.optim.d_lr"}
    assert "# the train section, kept by apply" in after  # comments survive
    train = yaml.safe_load(after)["train"]
    assert train["optim"]["g_lr"] == best["params"]["optim.g_lr"]
    assert isinstance(train["optim"]["g_lr"], float)  # PyYAML reads it as a number
    assert load_params(params_file).train.optim.d_lr == best["params"]["optim.d_lr"]
    untouched = [line for line in before.splitlines() if "lr:" not in line]
    assert untouched == [line for line in after.splitlines() if "lr:" not in line]


def test_rerun_continues_the_same_study_and_refuses_other_settings(params_file):
    params = load_params(
        params_file, ["hpo.n_trials=1", "hpo.budget_steps=6", "hpo.report_every=6"]
    )
    assert run(params)["ran"] == 1
    assert run(params)["ran"] == 0  # already full
    more = load_params(params_file, ["hpo.n_trials=2", "hpo.budget_steps=6", "hpo.report_every=6"])
    summary = run(more)
    assert summary["ran"] == 1 and summary["complete"] == 2
    trials = load(more).get_trials()
    assert trials[0].user_attrs.get("source") == "params.yaml"  # baseline first
    assert trials[0].params == {"optim.g_lr": PARAMS["train"]["optim"]["g_lr"]}
    changed = load_params(params_file, ["hpo.budget_steps=8", "hpo.report_every=4"])
    with pytest.raises(GanError, match="other settings.*budget_steps"):
        open_study(changed)


def test_neutral_train_keys_are_not_settings_even_in_an_older_study(params_file):
    """Workers with other thread counts share a study, also one that stored train.threads."""
    params = load_params(params_file, ["hpo.enqueue_current=false"])
    study = open_study(params)
    storage = open_storage(params.hpo.storage)
    old = settings_module.stored_settings(storage, study)
    assert "threads" not in old["train"] and "init_from" in old["train"]
    study_id = storage.get_study_id_from_name(study.study_name)
    storage.set_study_system_attr(
        study_id, settings_module.SETTINGS_KEY, {**old, "train": {**old["train"], "threads": 3}}
    )
    open_study(load_params(params_file, ["hpo.enqueue_current=false", "train.threads=2"]))


def test_study_attributes_are_short_and_older_studies_still_open(params_file):
    """`optuna studies` prints user attributes: a summary and a hash, not the settings."""
    params = load_params(params_file, ["hpo.enqueue_current=false"])
    study = open_study(params)
    assert set(study.user_attrs) == {"objective", "budget_steps", "settings_sha256"}
    assert len(json.dumps(study.user_attrs)) < 120
    storage = open_storage(params.hpo.storage)
    settings = settings_module.stored_settings(storage, study)
    assert study.user_attrs["settings_sha256"] == settings_module.settings_digest(settings)
    # a study from before: settings as a user attribute, no system attribute
    older = optuna.create_study(study_name="older", storage=storage, direction="minimize")
    older.set_user_attr("settings", {**settings, "space": settings["space"]})
    reopened = load_params(params_file, ["hpo.enqueue_current=false", "hpo.study=older"])
    assert open_study(reopened).study_name == "older"


def test_a_worker_waits_for_a_study_another_is_still_creating(params_file, monkeypatch):
    """The creator writes the settings last, after the baseline: nobody asks before it."""
    import threading

    from gan.hpo.objective import load_reference

    params = load_params(params_file)
    ref = load_reference(params.train, params.evaluate)
    storage = open_storage(params.hpo.storage)
    half = optuna.create_study(study_name="tiny", storage=storage, direction="minimize")
    settings = settings_module.study_settings(params, ref)
    threading.Timer(0.5, settings_module.write_settings, (storage, half, settings)).start()
    assert settings_module.stored_settings(storage, open_study(params, ref)) == settings
    monkeypatch.setattr(study_module, "CREATE_WAIT_SECONDS", 0.2)
    optuna.create_study(study_name="stuck", storage=storage, direction="minimize")
    stuck = load_params(params_file, ["hpo.study=stuck"])
    with pytest.raises(GanError, match="stuck .* has no settings"):
        open_study(stuck, ref)


def test_trial_seeds_follow_trial_numbers_not_processes(params_file, tmp_path):
    """Same seed, same trial number: same proposal, whichever worker asks."""
    params = load_params(params_file, ["hpo.enqueue_current=false"])
    proposals = []
    for name in ("a", "b"):
        study = optuna.create_study(sampler=make_sampler(params.hpo), study_name=name)
        proposals.append([study.ask().suggest_float("x", 0, 1) for _ in range(3)])
    assert proposals[0] == proposals[1] and len(set(proposals[0])) == 3


def test_pruners_by_name(params_file):
    def pruner(spec: str):
        overrides = ["hpo.budget_steps=40", "hpo.report_every=10", f"hpo.pruner={spec}"]
        return make_pruner(load_params(params_file, overrides).hpo)

    median = pruner("{name: median, n_startup_trials: 4, n_warmup_steps: 10}")
    assert isinstance(median, optuna.pruners.MedianPruner)
    hyperband = pruner("{name: hyperband}")
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert hyperband._min_resource == 10 and hyperband._max_resource == 40  # report_every, budget
    assert isinstance(pruner("{name: none}"), optuna.pruners.NopPruner)


def test_database_heartbeat_fails_and_retries_a_trial_lost_on_another_machine(params_file):
    url = f"sqlite:///{params_file.parent / 'hpo.db'}"
    overrides = [f"hpo.storage={url}", "hpo.heartbeat_seconds=1", "hpo.enqueue_current=false"]
    params = load_params(params_file, overrides)
    study = open_study(params)
    trial = study.ask()
    trial.suggest_float("optim.g_lr", 1e-4, 1e-2, log=True)
    elsewhere = {"host": "elsewhere", "boot": "-", "pid": 4_000_000, "started": None}
    trial.set_user_attr("worker", elsewhere)  # a pid that is not alive here: not ours to judge
    study._storage.record_heartbeat(trial._trial_id)
    assert prepare(params) == 2 and load(params).get_trials()[0].state.name == "RUNNING"
    time.sleep(2.5)  # grace period: 2 heartbeats
    assert prepare(params) == 3  # the retry waits, and the lost trial no longer counts
    lost, retry = load(params).get_trials()
    assert lost.state.name == "FAIL" and retry.state.name == "WAITING"
    assert retry.user_attrs["retry_of"] == 0 and "heartbeats" in retry.user_attrs["retry_reason"]


def test_cyclegan_trials_are_measured_as_evaluate_measures_them(params_file, unpaired16, tmp_path):
    """A translation study: each trial's objective is the mean FID of the two directions,
    the figure `gan evaluate` reports for the trial's export."""
    from gan.config import ClassifierConfig
    from gan.metrics.classifier import train_classifier
    from gan.metrics.evaluate import measure

    clf = tmp_path / "clf-unpaired"
    train_classifier(ClassifierConfig(data=str(unpaired16), output=str(clf), epochs=1))
    model = "{family: cyclegan, ngf: 4, ndf: 4, n_blocks: 1, n_layers_d: 2, pool_size: 4}"
    params = load_params(
        params_file,
        [
            f"train.data={unpaired16}",
            f"evaluate.data={unpaired16}",
            f"evaluate.classifier={clf}",
            f"train.model={model}",
            "train.batch_size=4",
            "hpo.n_trials=2",
            "hpo.budget_steps=4",
            "hpo.report_every=2",
            "hpo.objective_samples=1000",  # more than a test domain holds: all of it
        ],
    )
    summary = run(params)
    assert summary["complete"] == 2
    for trial in load(params).get_trials():
        assert sorted(trial.intermediate_values) == [2, 4]
        export = params_file.parent / trial.user_attrs["run_dir"] / "export"
        evaluated = measure(params.evaluate, export).metrics
        assert trial.value == pytest.approx(evaluated["fid"], rel=1e-5)
        assert trial.user_attrs["kid"] == pytest.approx(evaluated["kid"], rel=1e-5)


def test_the_objective_is_named_and_best_json_keeps_the_studys_budget(params_file):
    params = load_params(
        params_file, ["hpo.n_trials=1", "hpo.budget_steps=6", "hpo.report_every=6"]
    )
    run(params)
    assert load(params).metric_names == [params.hpo.objective]  # the dashboard's axis label
    later = load_params(params_file, ["hpo.budget_steps=500", "hpo.report_every=100"])
    assert best(later)["budget_steps"] == 6  # what the study ran, not today's params.yaml


def old_study(params, top: dict, train: dict | None = None) -> None:
    """A journal study as an earlier ganops created it: one finished trial, then its
    settings (today's, with the `top` and `train` keys it had then), written last."""
    from optuna.distributions import FloatDistribution

    from gan.hpo.objective import load_reference

    settings = settings_module.study_settings(params, load_reference(params.train, params.evaluate))
    settings = {**settings, **top, "train": {**settings["train"], **(train or {})}}
    storage = open_storage(params.hpo.storage)
    study = optuna.create_study(study_name=params.hpo.study, storage=storage)
    space = {"optim.g_lr": FloatDistribution(1e-4, 1e-2, log=True)}
    study.add_trial(
        optuna.trial.create_trial(params={"optim.g_lr": 1e-3}, distributions=space, value=90.0)
    )
    settings_module.write_settings(storage, study, settings)


def test_an_old_study_continues_unless_a_changed_setting_changes_its_objective(params_file):
    """Before KID used the largest subset, studies stored kid_subset_size 100. Only a KID
    objective's figure depends on it: a FID study continues (settings since removed do not
    stop it either); a KID study refuses in one line naming the key, until it is set back."""

    def params(objective: str, kid_subset: str = "null"):  # null: today's default, the largest
        journal = params_file.parent / "old.journal"
        overrides = [f"hpo.storage={journal}", f"hpo.study=old-{objective}",
                     f"hpo.objective={objective}", f"evaluate.kid_subset_size={kid_subset}"]  # fmt: skip
        return load_params(params_file, overrides)

    then = {"kid_subset_size": 100, "retired_setting": 1}
    old_study(params("fid"), then, train={"retired_key": True})
    fid = params("fid")
    assert prepare(fid) == fid.hpo.n_trials - 1  # continues, with its trial
    assert run(fid, max_trials=1)["complete"] == 2

    old_study(params("kid"), then)
    with pytest.raises(GanError) as refused:
        open_study(params("kid"))
    message = str(refused.value)
    assert "\n" not in message and "retired" not in message
    assert "(changed: evaluate.kid_subset_size 100 -> None)" in message
    assert prepare(params("kid", kid_subset="100")) == fid.hpo.n_trials - 1


def test_apply_writes_null_back_as_null(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  threads: null   # kept\n  optim:\n    g_lr: 2.0e-4\n")
    apply_best(path, {"optim.g_lr": 1e-3})
    assert "  threads: null   # kept\n" in path.read_text()
    assert load_params(path).train.optim.g_lr == 1e-3
