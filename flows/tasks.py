"""A Prefect task per stage of the stage table (gan/stages.py); flows only wrap.

What a task calls, how it is retried and how its cached result is checked are the table's:
a task runs `Stage.run` on the params, is retried after the table's delays unless the
failure is a GanError (`gan.stages.retryable`: the user's input, not bad luck), and, for a
stage with a `cache`, is cached on the content of its inputs (flows/cache.py). A retried
train resumes from the run's last checkpoint. A cache hit whose output files were deleted
or overwritten since is recomputed (`fresh_outputs`).

The one thing added here is a flow run's view of a stage (AROUND): train reports its
progress to the run (flows/progress.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.states import State

from flows.cache import stage_key
from flows.progress import reporting
from gan.config import Params
from gan.stages import STAGES, Stage, retryable, stage


def transient(_task: Task, _run: Any, state: State) -> bool:
    """Retry unless the table's rule says the failure cannot pass (a GanError)."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:  # only classified here, never swallowed
            exc = raised
    return retryable(exc)


# What a flow run adds around a stage, by name: train's progress in the Prefect UI.
AROUND: dict[str, Callable[[Params], contextlib.AbstractContextManager]] = {
    "train": lambda params: reporting(params.train.steps, params.train.run),
}


def stage_task(entry: Stage) -> Task:
    """The Prefect task of a stage: `Stage.run` with the table's retries and cache."""

    def run(params: Params) -> Any:
        with AROUND.get(entry.name, lambda _: contextlib.nullcontext())(params):
            return entry.run(params)

    run.__name__ = run.__qualname__ = f"{entry.name.replace('-', '_')}_task"
    options: dict[str, Any] = {"name": entry.name}
    if entry.retry_delays:
        options |= {
            "retries": len(entry.retry_delays),
            "retry_delay_seconds": list(entry.retry_delays),
            "retry_condition_fn": transient,
        }
    # uncached stages run every time: their tasks share one source and take the same params
    options |= (
        {"cache_key_fn": stage_key(entry)} if entry.flow_cache else {"cache_policy": NO_CACHE}
    )
    return task(**options)(run)


def stage_tasks(stages: tuple[Stage, ...] = STAGES) -> dict[str, Task]:
    """A task per stage, by name."""
    return {s.name: stage_task(s) for s in stages}


TASKS = stage_tasks()


def run_task(name: str, params: Params, refresh: bool = False) -> tuple[Any, bool]:
    """Run a stage's task in the current flow; returns (result, whether it came from the
    cache). A failed task raises its exception here, so the flow fails with it."""
    job = TASKS[name].with_options(refresh_cache=True) if refresh else TASKS[name]
    return settled(job(params, return_state=True))


def submit(pool: Any, name: str, params: Params) -> PrefectFuture:
    """Start a stage's task on a task runner (flows/runners.py)."""
    return pool.submit(TASKS[name], parameters={"params": params})


def settled(outcome: State | PrefectFuture) -> tuple[Any, bool]:
    """(result, whether it came from the cache) of a task's final state or future."""
    if isinstance(outcome, PrefectFuture):
        outcome.wait()
        outcome = outcome.state
    return outcome.result(), outcome.name == "Cached"


def fresh_outputs(
    name: str, params: Params, started: PrefectFuture | None = None
) -> tuple[Any, bool]:
    """run_task (or the `started` run of it), rerun with refresh_cache when the stage's
    output check says a cached result's files were deleted or overwritten since."""
    result, cached = settled(started) if started is not None else run_task(name, params)
    check = stage(name).flow_cache
    if cached and check is not None and not check.intact(params, result):
        result, cached = run_task(name, params, refresh=True)
    return result, cached
