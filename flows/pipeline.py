"""Prefect flow `pipeline`: the whole pipeline, stage by stage, as dvc.yaml runs it.

Each stage is a task calling the same gan/ function as `gan <stage>` and `dvc repro`, on
the same params.yaml (plus `overrides`, as `-S key=value` does), so either runner
produces the same files. A flow run adds what DVC does not: retries, a UI with logs, the
evaluation report and the promotion decision as artifacts, and schedules.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.runners import StageRunner, stage_runner
from flows.stages import prepared_data, train_to_promotion
from gan.config import load_params


@flow(name="pipeline")
def pipeline_flow(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    prepare: bool = True,
    task_runner: StageRunner = "inline",
    dask_address: str | None = None,
) -> dict[str, Any]:
    """prepare -> preprocess -> classifier -> train -> evaluate -> promote.

    `prepare` materialises the built-in dataset when preprocess reads prepare's output;
    preprocess and the classifier are skipped (cached) while their inputs are unchanged.
    `task_runner` processes or dask runs the classifier beside train (flows/runners.py).
    Invalid params fail the run before any stage starts.
    """
    cfg = load_params(params_path, overrides)
    runner = stage_runner(task_runner, dask_address)
    prepared_data(cfg, prepare)
    return train_to_promotion(cfg, runner)


if __name__ == "__main__":
    pipeline_flow()
