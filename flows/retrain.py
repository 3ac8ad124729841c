"""Prefect flow `retrain`: retrain only when the data changed since the champion was trained.

The registry records the content hash of the processed data each version was trained on.
The flow preprocesses the current data (a cache hit when the raw folder, params and code
are unchanged, so an idle week costs a few seconds), compares the hashes, and either ends
saying so or trains a new run, evaluates it and puts it through the promotion gate.

A retrain trains into a run dir of its own (`<train.run>-retrain-<UTC time>`): the
champion's run dir, its checkpoints and export stay as the registry recorded them.
With `warm_start`, the networks start from the champion's checkpoint (if it still exists
unchanged) instead of from scratch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows import artifacts
from flows.runners import StageRunner, stage_runner
from flows.stages import prepared_data, train_to_promotion
from gan import registry
from gan.config import Params, load_params
from gan.io import sha256_file


def should_retrain(
    champion: dict[str, Any] | None, data_hash: str, force: bool
) -> tuple[bool, str]:
    """Whether to retrain, and why, from the champion record and the current data hash."""
    if champion is None:
        return True, "the registry has no champion yet"
    v, old = f"v{champion['version']}", champion.get("data_hash")
    if force:
        return True, f"forced (champion {v} was trained on data {str(old)[:12]})"
    if not old:
        return True, f"champion {v} has no recorded data hash"
    if old != data_hash:
        return True, f"data changed since champion {v} was trained: {old[:12]} -> {data_hash[:12]}"
    return False, f"data unchanged since champion {v} was trained (hash {data_hash[:12]})"


def champion_checkpoint(champion: dict[str, Any] | None) -> tuple[str | None, str]:
    """The champion's checkpoint path when it still exists unchanged, else None and why."""
    if champion is None:
        return None, "there is no champion"
    ckpt = champion.get("checkpoint") or {}
    path = ckpt.get("path")
    if not path:
        return None, f"champion v{champion['version']} recorded no checkpoint"
    if not Path(path).is_file():
        return None, f"champion checkpoint {path} no longer exists"
    if ckpt.get("sha256") and sha256_file(path) != ckpt["sha256"]:
        return None, f"champion checkpoint {path} changed since it was registered"
    return path, f"warm-starting from champion v{champion['version']}'s checkpoint {path}"


def retrain_params(cfg: Params, init_from: str | None, now: datetime | None = None) -> Params:
    """cfg with a fresh run dir for train, evaluate and promote, and the warm start."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    train = cfg.train.model_copy(
        update={"run": f"{cfg.train.run}-retrain-{stamp}", "init_from": init_from}
    )
    run_dir = str(train.run_dir)
    return cfg.model_copy(
        update={
            "train": train,
            "evaluate": cfg.evaluate.model_copy(update={"run_dir": run_dir}),
            "promote": cfg.promote.model_copy(update={"run_dir": run_dir}),
        }
    )


@flow(name="retrain")
def retrain_flow(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    force: bool = False,
    warm_start: bool = False,
    task_runner: StageRunner = "inline",
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Retrain, evaluate and promote if the data changed since the champion (or `force`).

    `task_runner` processes or dask runs the classifier beside train (flows/runners.py)."""
    log = get_run_logger()
    cfg = load_params(params_path, overrides)
    runner = stage_runner(task_runner, dask_address)
    champion = registry.champion(cfg.promote.registry)
    manifest = prepared_data(cfg, prepare=False)
    data_hash = manifest["content_hash"]
    go, reason = should_retrain(champion, data_hash, force)
    if not go:
        log.info("Nothing to do: %s.", reason)
        artifacts.retrain_skipped(reason)
        return {"retrained": False, "reason": reason}
    log.info("Retraining: %s.", reason)
    init_from = None
    if warm_start:
        init_from, why = champion_checkpoint(champion)
        (log.info if init_from else log.warning)("%s%s", why, "" if init_from else "; from scratch")
    result = train_to_promotion(retrain_params(cfg, init_from), runner)
    return {"retrained": True, "reason": reason, **result}


if __name__ == "__main__":
    retrain_flow()
