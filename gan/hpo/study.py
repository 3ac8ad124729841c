"""`gan hpo`: an Optuna study over train params that many workers share, resume and prune.

A worker (`gan hpo run`, or a task of flows/hpo.py) opens the study named `hpo.study` in
`hpo.storage` (created on first use, continued afterwards) and runs trials until the study
holds `hpo.n_trials` of them. Any number of workers, on one machine or many, may share a
storage: Optuna numbers the trials atomically, so none is lost or run twice.

A trial whose worker died is failed and queued again (gan.hpo.storage), so the study still
ends with `n_trials` trials that ran. A study remembers the settings its trials were
measured under and refuses to continue under others (gan/hpo/settings.py).

Entry points: `run` (`gan hpo run`), `best` (`gan hpo best`), `apply` (`gan hpo apply`),
`prepare` and `run_one_if_left` (flows/hpo.py), `load` (for reading).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from gan.config import HpoConfig, Params
from gan.errors import DiskError, GanError
from gan.hpo.objective import direction, load_reference, make_objective, needs_classifier
from gan.hpo.report import apply_best, write_results
from gan.hpo.settings import (
    describe_changes,
    still_settings,
    stored_settings,
    study_settings,
    train_settings,
    write_settings,
)
from gan.hpo.space import check_space, current_values
from gan.hpo.storage import (
    journal_errors,
    log,
    open_storage,
    queue_again,
    redacted,
    tidy,
    worker_identity,
)
from gan.io import read_json, write_error

optuna.logging.set_verbosity(optuna.logging.WARNING)  # we log one line per report instead


# -- sampler and pruner -----------------------------------------------------------------
class TrialSeededSampler(BaseSampler):
    """Reseeds the wrapped sampler from (seed, trial number) before each trial.

    One seed per trial, not per process: a study run by one worker is reproducible from
    `hpo.sampler.seed`, and parallel workers never draw the same random start-up params.
    """

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int) -> None:
        self._factory, self._seed = factory, seed
        self._inner = factory(seed)

    def before_trial(self, study, trial) -> None:
        seed = np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0]
        self._inner = self._factory(int(seed))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(hpo: HpoConfig) -> BaseSampler:
    s = hpo.sampler
    if s.name == "random":
        return TrialSeededSampler(lambda seed: optuna.samplers.RandomSampler(seed=seed), s.seed)
    return TrialSeededSampler(
        lambda seed: optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=s.n_startup_trials, constant_liar=True
        ),
        s.seed,
    )


def make_pruner(hpo: HpoConfig) -> optuna.pruners.BasePruner:
    p = hpo.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource or hpo.report_every,
            max_resource=hpo.budget_steps,
            reduction_factor=p.reduction_factor,
        )
    return optuna.pruners.NopPruner()


# -- the study --------------------------------------------------------------------------
CREATE_WAIT_SECONDS = 60  # how long a worker waits for another to finish creating a study


def reference_for(params: Params):
    """The study's reference data, with the classifier when the objective or the report
    metric needs it."""
    hpo = params.hpo
    classifier = needs_classifier(hpo.objective) or needs_classifier(hpo.report_metric)
    return load_reference(params.train, params.evaluate, classifier)


def _create(params: Params, storage, settings: dict[str, Any], **kwargs) -> optuna.Study:
    hpo = params.hpo
    study = optuna.create_study(
        study_name=hpo.study, storage=storage, direction=direction(hpo.objective), **kwargs
    )
    with warnings.catch_warnings():  # experimental in Optuna; names "fid", not "Objective 0"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([hpo.objective])  # what optuna-dashboard and plots show
    values = current_values(params.train, hpo.space) if hpo.enqueue_current else None
    if values is not None:  # first trial: what params.yaml trains now, as the baseline
        study.enqueue_trial(values, user_attrs={"source": "params.yaml"})
    write_settings(storage, study, settings)  # last: the study is ready (see _settings_of)
    log(f"study {hpo.study} created in {redacted(hpo.storage)}")
    return study


def _settings_of(storage, study: optuna.Study, hpo: HpoConfig) -> dict[str, Any]:
    """The study's settings, once the worker creating it has written them.

    They are written last, so a worker that loads a study another is still creating waits
    instead of asking for trial 0 before the baseline is queued.
    """
    deadline = time.monotonic() + CREATE_WAIT_SECONDS
    while (settings := stored_settings(storage, study)) is None:
        if time.monotonic() > deadline:
            raise GanError(
                f"study {hpo.study} in {redacted(hpo.storage)} has no settings (its creation "
                "stopped half-way?); set hpo.study to a new name"
            )
        time.sleep(0.1)
    return {**settings, "train": train_settings(settings.get("train", {}))}


def open_study(params: Params, ref=None) -> optuna.Study:
    """Load the study (checking its settings) or create it; validates everything first."""
    hpo = params.hpo
    check_space(params.train, hpo.space)
    ref = ref or reference_for(params)
    storage = open_storage(hpo.storage, hpo.heartbeat_seconds)
    settings = study_settings(params, ref)
    kwargs = {"sampler": make_sampler(hpo), "pruner": make_pruner(hpo)}
    try:
        study = optuna.load_study(study_name=hpo.study, storage=storage, **kwargs)
    except KeyError:
        try:
            return _create(params, storage, settings, **kwargs)
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it just now
            study = optuna.load_study(study_name=hpo.study, storage=storage, **kwargs)
    if len(study.directions) != 1:
        raise GanError(f"study {hpo.study} in {redacted(hpo.storage)} is not a ganops study")
    if study.direction.name.lower() != direction(hpo.objective):
        raise GanError(
            f"study {hpo.study} in {redacted(hpo.storage)} was created to "
            f"{study.direction.name.lower()} its objective, but hpo.objective "
            f"{hpo.objective} is to {direction(hpo.objective)}; set hpo.study to a new name"
        )
    # as today's rules see them: a key made neutral, or no longer a setting, is ignored
    old = still_settings(_settings_of(storage, study, hpo), settings)
    if old != settings:
        raise GanError(
            f"study {hpo.study} in {redacted(hpo.storage)} was started with other settings "
            f"(changed: {describe_changes(old, settings)}); restore them, or set hpo.study "
            "to a new name"
        )
    return study


def budget_left(study: optuna.Study, n_trials: int) -> int:
    """Trials still to start: waiting ones, plus n_trials less those that count.

    Every trial counts except one that died and was queued again (its retry counts).
    """
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    counted = [t for t in trials if t.number not in retried]
    waiting = sum(t.state == TrialState.WAITING for t in counted)
    return max(waiting, n_trials - len(counted) + waiting)


class Worker:
    """One worker of a study: its storage connection, reference data and objective."""

    def __init__(self, params: Params, progress: bool = False) -> None:
        self.params = params
        self.ref = reference_for(params)
        self.study = open_study(params, self.ref)
        objective = make_objective(params, self.ref, worker_identity(), log, progress)
        self._last: int | None = None
        self._disk: DiskError | None = None

        def numbered(trial: optuna.Trial) -> float:
            self._last = trial.number
            try:
                return objective(trial)
            except (DiskError, OSError) as exc:  # every later trial would fail the same way
                where = Path(getattr(exc, "filename", None) or params.hpo.runs_dir)
                self._disk = exc if isinstance(exc, DiskError) else write_error(where, exc)
                if self._disk is None:
                    raise
                raise self._disk from None

        self.objective = numbered

    def left(self) -> int:
        tidy(self.study)
        return budget_left(self.study, self.params.hpo.n_trials)

    def run_one(self) -> FrozenTrial:
        """Run one trial (a failure is recorded, not raised) and return it as stored.

        A full or read-only disk is raised instead: the trial is queued again, for when
        there is room, and the worker stops."""
        self._last, self._disk = None, None
        self.study.optimize(self.objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        if self._last is None:
            raise GanError(f"study {self.params.hpo.study}: no trial could be started")
        trial = self.study.get_trials(deepcopy=False)[self._last]
        if self._disk is not None:
            queue_again(self.study, trial, str(self._disk))
            raise self._disk
        hpo = self.params.hpo
        if trial.state == TrialState.COMPLETE:
            outcome = f"{hpo.objective} {trial.value:.4g}"
        elif trial.state == TrialState.PRUNED:
            step = max(trial.intermediate_values, default=0)
            outcome = f"at step {step} ({hpo.report_metric} {trial.value:.4g})"
        else:
            outcome = trial.user_attrs.get("fail_reason", "")
        log(f"trial {trial.number} {trial.state.name.lower()}: {outcome}")
        return trial


@journal_errors
def run(params: Params, max_trials: int | None = None) -> dict[str, Any]:
    """Run trials until the study is full (or `max_trials` ran here); returns counts."""
    if max_trials is not None and max_trials < 1:
        raise GanError(f"--trials must be at least 1, not {max_trials}")
    worker = Worker(params, progress=params.train.progress)
    ran = 0
    while (max_trials is None or ran < max_trials) and worker.left() > 0:
        worker.run_one()
        ran += 1
    return {"ran": ran, **state_counts(worker.study)}


@journal_errors
def prepare(params: Params) -> int:
    """Validate, create or check the study, fail dead workers' trials; returns trials left.

    Also registers the feature extractor in this process, before any worker thread does.
    """
    study = open_study(params)
    tidy(study)
    return budget_left(study, params.hpo.n_trials)


@journal_errors
def run_one_if_left(params: Params) -> dict[str, Any] | None:
    """One trial if the study still wants one (another machine may have filled it)."""
    worker = Worker(params)
    if worker.left() <= 0:
        return None
    t = worker.run_one()
    return {"trial": t.number, "state": t.state.name, "value": t.value}


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts = {s.name.lower(): 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] += 1
    return counts


def load(params: Params) -> optuna.Study:
    """The study for reading (no settings check, no reference data needed)."""
    hpo = params.hpo
    storage = open_storage(hpo.storage, hpo.heartbeat_seconds)
    try:
        return optuna.load_study(study_name=hpo.study, storage=storage)
    except KeyError:
        raise GanError(
            f"no study {hpo.study!r} in {redacted(hpo.storage)}; start it with `gan hpo run`"
        ) from None


@journal_errors
def best(params: Params) -> dict[str, Any]:
    """Write best.json, trials.csv/md and history.png to hpo.output; returns the best record."""
    return write_results(load(params), params.hpo)


def apply(params_path: str | Path, params: Params, best_file: str | Path | None = None):
    """Write the best params into params.yaml (from `best_file`, else from the study).

    Returns [(key, old, new)] for the values that changed.
    """
    if best_file is not None:
        path = Path(best_file)
        if not path.is_file():
            raise GanError(f"{path}: best params file not found (`gan hpo best` writes it)")
        record = read_json(path)
        if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
            raise GanError(f"{path}: has no 'params' object (`gan hpo best` writes best.json)")
    else:
        record = best(params)
    return apply_best(params_path, record["params"])
