"""The steps both flows share: data in, then classifier -> train -> evaluate -> promote.

Plain functions called inside a flow; each step is a stage's task (flows/tasks.py), by
name. A failure is logged once more at flow level with what it means for the registry:
nothing promoted, the champion unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.task_runners import TaskRunner

from flows import artifacts
from flows.tasks import fresh_outputs, run_task, settled, submit
from gan import registry
from gan.config import Params
from gan.errors import GanError


def champion_label(root: str) -> str:
    record = registry.champion(root)
    return "none" if record is None else f"v{record['version']} (run {record['run_id']})"


@contextlib.contextmanager
def nothing_promoted_on_failure(cfg: Params, stage: str) -> Iterator[None]:
    """Log a failing stage with its error and the registry state it leaves, then re-raise."""
    try:
        yield
    except Exception as exc:
        what = str(exc) if isinstance(exc, GanError) else f"{type(exc).__name__}: {exc}"
        get_run_logger().error(
            "%s failed: %s. Nothing was promoted; the champion is still %s.",
            stage,
            what,
            champion_label(cfg.promote.registry),
        )
        raise


def prepared_data(cfg: Params, prepare: bool) -> dict[str, Any]:
    """Optionally materialise the built-in dataset, then preprocess (cached); the manifest."""
    log = get_run_logger()
    if prepare and Path(cfg.prepare.out) == Path(cfg.preprocess.input):
        with nothing_promoted_on_failure(cfg, "prepare"):
            run_task("prepare", cfg)
    with nothing_promoted_on_failure(cfg, "preprocess"):
        manifest, cached = fresh_outputs("preprocess", cfg)
    counts = {k: v["count"] for k, v in manifest["splits"].items()}
    log.info(
        "data %s: %s, %d rejected, hash %s%s",
        cfg.preprocess.output,
        counts,
        len(manifest.get("rejected", [])),
        manifest["content_hash"][:12],
        " (cached: raw data, params and code unchanged)" if cached else "",
    )
    return manifest


def train_to_promotion(cfg: Params, runner: TaskRunner | None = None) -> dict[str, Any]:
    """classifier (cached) -> train -> evaluate -> promote, then the two artifacts.

    With a task runner (flows/runners.py), the classifier and train, which both read only
    the processed data, run at the same time on it; otherwise one after the other.
    """
    log = get_run_logger()
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(runner) if runner is not None else None
        started = {}
        if pool is not None:
            started = {name: submit(pool, name, cfg) for name in ("classifier", "train")}
        with nothing_promoted_on_failure(cfg, "classifier"):
            clf, cached = fresh_outputs("classifier", cfg, started.get("classifier"))
        log.info(
            "classifier test accuracy %.3f%s", clf["test_accuracy"], " (cached)" if cached else ""
        )
        with nothing_promoted_on_failure(cfg, "train"):
            train = started.get("train")
            run, _ = settled(train) if train is not None else run_task("train", cfg)
    log.info("trained %s: %s steps in %s s", run["run_id"], run["steps"], run["seconds"])
    with nothing_promoted_on_failure(cfg, "evaluate"):
        evaluation, _ = run_task("evaluate", cfg)
    with nothing_promoted_on_failure(cfg, "promote"):
        decision, _ = run_task("promote", cfg)
    log.info("v%s %s: %s", decision["version"], decision["decision"], decision["reason"])
    samples = Path(cfg.evaluate.output) / "samples.png"
    artifacts.publish(
        run, evaluation, decision, samples, str(Path(cfg.promote.report) / "report.md")
    )
    return {"run": run, "metrics": evaluation["metrics"], "decision": decision}
