"""The search space of `hpo.space`: dotted paths into the train section, sampled by Optuna.

A path names any train param of any family, e.g. ``optim.g_lr``, ``model.gp_weight``,
``model.lambda_cycle``; a number indexes a list (``optim.g_betas.0`` is beta1). The Optuna
param name is the path itself, so the dashboard, `gan hpo apply` and `-S train.<path>=...`
all speak the same names. How one searched param is written (a range or choices) is
gan/hpo/grammar.py.
"""

from __future__ import annotations

import copy
from typing import Any

import optuna
from pydantic import ValidationError

from gan.config import TrainConfig, dump_as_given
from gan.errors import GanError
from gan.hpo.grammar import SearchParam


def suggest(trial: optuna.Trial, space: dict[str, SearchParam]) -> dict[str, Any]:
    """Ask the trial for one value per path (enqueued trials get their fixed values back)."""
    values: dict[str, Any] = {}
    for path, p in space.items():
        if p.type == "categorical":
            values[path] = trial.suggest_categorical(path, p.choices)
        elif p.type == "int":
            step = int(p.step or 1)
            values[path] = trial.suggest_int(path, int(p.low), int(p.high), step=step, log=p.log)
        else:
            values[path] = trial.suggest_float(path, p.low, p.high, step=p.step, log=p.log)
    return values


def _walk(data: Any, parts: list[str], path: str) -> tuple[Any, Any]:
    """The container holding the last part of `path`, and that part as a key or index."""
    node = data
    for i, part in enumerate(parts):
        key: Any = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyError(f"{'.'.join(parts[: i + 1])} is not an index of a list")
            key = int(part)
        elif not isinstance(node, dict) or part not in node:
            raise KeyError(f"train has no param {'.'.join(parts[: i + 1])}")
        if i == len(parts) - 1:
            return node, key
        node = node[key]
    raise KeyError(path)


def get_path(data: dict[str, Any], path: str) -> Any:
    node, key = _walk(data, path.split("."), path)
    return node[key]


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    node, key = _walk(data, path.split("."), path)
    if isinstance(node[key], dict | list):
        raise KeyError(f"{path} is a section, not a single param")
    node[key] = value


def with_values(base: TrainConfig, values: dict[str, Any], **fields: Any) -> TrainConfig:
    """`base` with the searched values set (and top-level `fields` replaced), validated.

    Built from the keys `base` was given plus the searched ones, so a key left unset stays
    unset (a family's paper optimiser settings fill those: gan/models/family.py)."""
    full, data = base.model_dump(mode="json", serialize_as_any=True), dump_as_given(base)
    for path, value in values.items():
        set_path(copy.deepcopy(full), path, value)  # an unknown path or a section fails here
        *outer, last = path.split(".")
        node, given = data, full
        for part in outer:
            key = int(part) if isinstance(given, list) else part
            if isinstance(node, dict) and key not in node:  # a list whole, a section's key
                node[key] = copy.deepcopy(given[key]) if isinstance(given[key], list) else {}
            node, given = node[key], given[key]
        node[int(last) if isinstance(node, list) else last] = value
    data.update(fields)
    return TrainConfig.model_validate(data)


def check_space(base: TrainConfig, space: dict[str, SearchParam]) -> None:
    """Fail before any work when a path does not exist or a bound is not a valid value.

    Each bound (or choice) is set on its own into the train config and validated, so an
    out-of-range bound is reported with the train key and the reason, e.g. a beta of 1.
    """
    data = base.model_dump(mode="json", serialize_as_any=True)
    for path, p in space.items():
        try:
            current = get_path(data, path)
        except KeyError as exc:
            raise GanError(f"params.yaml: hpo.space.{path}: {exc.args[0]}") from None
        if isinstance(current, dict | list):
            raise GanError(f"params.yaml: hpo.space.{path}: is a section, not a single param")
        bounds = p.choices if p.type == "categorical" else [p.low, p.high]
        for value in bounds:
            if p.type == "int":
                value = int(value)
            try:
                with_values(base, {path: value})
            except ValidationError as exc:
                reason = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise GanError(
                    f"params.yaml: hpo.space.{path}: {value!r} is not a valid train.{path} ({reason})"
                ) from None


def current_values(base: TrainConfig, space: dict[str, SearchParam]) -> dict[str, Any] | None:
    """The train section's own values at the searched paths, or None if one is outside the space."""
    data = base.model_dump(mode="json", serialize_as_any=True)
    values = {}
    for path, p in space.items():
        v = get_path(data, path)
        if p.type == "categorical":
            if v not in p.choices:
                return None
        elif isinstance(v, bool) or not isinstance(v, int | float) or not p.low <= v <= p.high:
            return None
        values[path] = int(v) if p.type == "int" else v
    return values
