"""Prefect flow `hpo`: the Optuna study with concurrent trials, then the best params.

A thin caller of gan.hpo (docs/architecture.md, 'Stages'): each task runs one trial
through the same worker code as `gan hpo run`, so trials of this flow, of `gan hpo run`
processes and of other machines can share one study. The task runner is a parameter
(flows/runners.py): ``threads`` (default; concurrent trials are not bit-for-bit
reproducible), ``processes`` or ``dask`` (workers need a shared storage, e.g. PostgreSQL).

Afterwards it writes best.json (and trials.csv/md, history.png) to hpo.output, optionally
applies the best params to params.yaml, and leaves two artifacts: the trials table and
the best trial.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import torch
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.runners import Runner, make_task_runner
from gan.config import load_params
from gan.device import cpu_threads


@task(name="hpo-prepare")
def prepare_task(params_path: str, overrides: list[str]) -> int:
    from gan.hpo.study import prepare

    return prepare(load_params(params_path, overrides))


@task(name="hpo-trial", task_run_name="trial-slot-{slot}")
def trial_task(
    params_path: str, overrides: list[str], slot: int, threads: int, flow_pid: int
) -> dict[str, Any] | None:
    from gan.hpo.study import run_one_if_left

    if os.getpid() != flow_pid:  # a process of its own: share the cores with the others
        torch.set_num_threads(threads)
    return run_one_if_left(load_params(params_path, overrides))


@flow(name="hpo-trials")
def trials_flow(params_path: str, overrides: list[str], n: int, threads: int) -> list[Any]:
    pid = os.getpid()
    futures = [trial_task.submit(params_path, overrides, i, threads, pid) for i in range(n)]
    return [f.result() for f in futures]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "study"


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


@task(name="hpo-results")
def results_task(params_path: str, overrides: list[str], apply: bool) -> dict[str, Any]:
    from gan.hpo.report import apply_best, trials_frame, write_results
    from gan.hpo.study import load

    params = load_params(params_path, overrides)
    study = load(params)
    best = write_results(study, params.hpo)
    frame = trials_frame(study, params.hpo)
    key = f"hpo-{_slug(params.hpo.study)}"
    rows = [{k: _cell(v) for k, v in row.items()} for row in frame.to_dict("records")]
    create_table_artifact(rows, key=f"{key}-trials", description=f"trials of {params.hpo.study}")
    lines = [
        f"# {params.hpo.study}: best trial {best['trial']}",
        f"{best['objective']} = {best['value']:.4g} after {best['budget_steps']} steps",
        "",
        "| param | value |",
        "|---|---|",
        *[f"| train.{k} | {v} |" for k, v in best["params"].items()],
        "",
        "Train it: `gan hpo apply && dvc repro`, or `dvc exp run "
        + " ".join(f"-S {o}" for o in best["overrides"])
        + "`",
    ]
    create_markdown_artifact("\n".join(lines), key=f"{key}-best", description="best trial")
    if apply:
        best["applied"] = [list(c) for c in apply_best(params_path, best["params"])]
    return best


@flow(name="hpo", log_prints=True)
def hpo_flow(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    concurrency: int = 2,
    task_runner: Runner = "threads",
    dask_address: str | None = None,
    apply: bool = False,
) -> dict[str, Any]:
    """Run the study in params.yaml to its n_trials, `concurrency` trials at a time."""
    overrides = list(overrides or [])
    left = prepare_task(params_path, overrides)
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    runner = make_task_runner(task_runner, concurrency, dask_address)
    if left > 0:
        # threads of this process share its cores; other runners' workers set their own
        with cpu_threads(threads if task_runner == "threads" else None):
            trials_flow.with_options(task_runner=runner)(params_path, overrides, left, threads)
    return results_task(params_path, overrides, apply)


if __name__ == "__main__":
    hpo_flow()
