"""One Prefect task per stage, each a call of the gan/ function that implements it.

Retries: a GanError means the input is wrong (bad data, bad params, a NaN loss), so a retry
cannot help and none is made; anything else (I/O, a lost device, a killed thread) is
retried. A retried train resumes from the run's last checkpoint. promote is never retried:
it appends to the registry, and a second attempt after a late failure would register twice.

preprocess and classifier are cached on the content they read (flows/cache.py); a cache
hit whose output files were deleted or overwritten since is recomputed (`fresh_outputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import Task, task
from prefect.futures import PrefectFuture
from prefect.states import State

from flows.cache import classifier_key, preprocess_key
from gan.config import (
    ClassifierConfig,
    EvaluateConfig,
    PrepareConfig,
    PreprocessConfig,
    PromoteConfig,
    TrainConfig,
)
from gan.errors import GanError
from gan.io import read_json, sha256_file


def transient(_task: Task, _run: Any, state: State) -> bool:
    """Retry unless the failure is a GanError (the user's input, not bad luck)."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:  # only classified here, never swallowed
            exc = raised
    return not isinstance(exc, GanError)


RETRY = {"retries": 2, "retry_delay_seconds": [10, 60], "retry_condition_fn": transient}


@task(name="prepare", **RETRY)
def prepare_task(cfg: PrepareConfig) -> str:
    from gan.data.builtin import prepare

    return str(prepare(cfg))


@task(name="preprocess", cache_key_fn=preprocess_key, **RETRY)
def preprocess_task(cfg: PreprocessConfig) -> dict[str, Any]:
    from gan.data.preprocess import preprocess

    return preprocess(cfg)


@task(name="classifier", cache_key_fn=classifier_key, **RETRY)
def classifier_task(cfg: ClassifierConfig, data_hash: str) -> dict[str, Any]:
    """`data_hash` is not used by the stage: it is part of the cache key."""
    from gan.metrics.classifier import train_classifier

    return train_classifier(cfg)


@task(name="train", **RETRY)
def train_task(cfg: TrainConfig) -> dict[str, Any]:
    """Also reports each logged step to the run: a log line and a progress artifact."""
    from flows.progress import reporting
    from gan.training.loop import train

    with reporting(cfg.steps, cfg.run):
        return train(cfg)


@task(name="evaluate", **RETRY)
def evaluate_task(cfg: EvaluateConfig) -> dict[str, Any]:
    from gan.metrics.evaluate import evaluate

    return evaluate(cfg)


@task(name="promote")
def promote_task(cfg: PromoteConfig, evaluation: EvaluateConfig) -> dict[str, Any]:
    from gan.registry.promote import promote

    return promote(cfg, evaluation)


def preprocessed(cfg: PreprocessConfig, manifest: dict[str, Any]) -> bool:
    """Whether cfg.output still holds the data `manifest` describes."""
    path = Path(cfg.output) / "manifest.json"
    try:
        return read_json(path).get("content_hash") == manifest["content_hash"]
    except GanError:
        return False


def classified(cfg: ClassifierConfig, data_hash: str) -> bool:
    """Whether cfg.output still holds a classifier trained on `data_hash`, intact."""
    from gan.metrics.classifier import CONFIG, WEIGHTS

    out = Path(cfg.output)
    try:
        meta = read_json(out / CONFIG)
    except GanError:
        return False
    weights = out / WEIGHTS
    return (
        meta.get("data_content_hash") == data_hash
        and weights.is_file()
        and sha256_file(weights) == meta.get("weights_sha256")
    )


def run_task(job: Task, *args: Any) -> tuple[Any, bool]:
    """Run a task in the current flow; returns (result, whether it came from the cache).

    A failed task raises its exception here, so the flow fails with it.
    """
    return settled(job(*args, return_state=True))


def settled(outcome: State | PrefectFuture) -> tuple[Any, bool]:
    """(result, whether it came from the cache) of a task's final state or future."""
    if isinstance(outcome, PrefectFuture):
        outcome.wait()
        outcome = outcome.state
    return outcome.result(), outcome.name == "Cached"


def fresh_outputs(
    job: Task, args: tuple, intact: Callable[[Any], bool], started: PrefectFuture | None = None
) -> tuple[Any, bool]:
    """run_task (or the `started` run of it), rerun with refresh_cache when
    `intact(result)` says a cached result's files were deleted or overwritten since."""
    result, cached = settled(started) if started is not None else run_task(job, *args)
    if cached and not intact(result):
        result, cached = run_task(job.with_options(refresh_cache=True), *args)
    return result, cached
