"""`train.model.preset`: train keys derived from the data and the batch when training starts.

A family names its presets (its config class's `presets`, checked when params are
validated) and derives their values from the processed data's manifest, which exists
only once preprocess has run (`GANFamily.preset`). This module fills the keys params.yaml
leaves unset and keeps those it sets, even at their default (an explicit key always wins:
pydantic's `model_fields_set` tells which were given), and records both for run.json and
`gan train --dry-run` (docs/architecture.md, 'Configuration'). The derived values are part
of the params the run's fingerprint holds, so resuming derives them again, identically.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from gan.config import TrainConfig, dump_as_given
from gan.errors import GanError
from gan.models import get_family
from gan.models.family import DataInfo
from gan.params_file import format_error


def _section(cfg: TrainConfig, key: str) -> tuple[BaseModel | None, str]:
    """The section holding dotted `key` and its last part; None where a section on the way
    was not given (so nothing under it was)."""
    *path, name = key.split(".")
    section: BaseModel = cfg
    for part in path:
        if part not in section.model_fields_set:
            return None, name
        section = getattr(section, part)
    return section, name


def given(cfg: TrainConfig, key: str) -> bool:
    """Whether params.yaml (or an override) sets dotted `key` of the train section."""
    section, name = _section(cfg, key)
    return section is not None and name in section.model_fields_set


def value(cfg: TrainConfig, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return list(cfg) if isinstance(cfg, tuple) else cfg


def resolve_preset(cfg: TrainConfig, data: DataInfo) -> tuple[TrainConfig, dict[str, Any] | None]:
    """`cfg` with its preset's values in the keys it leaves unset, and the record of what the
    preset derived and what params.yaml kept (None without a preset). Call it once, on the
    train section as params.yaml gives it: the returned config counts the derived keys as
    given."""
    name = cfg.model.preset
    if name is None:
        return cfg, None
    where = f"train.model.preset {name}"
    batch = cfg.batch_size if given(cfg, "batch_size") else None
    family = get_family(cfg.model.family)
    try:
        values = family.preset(name, cfg.model, data, batch, cfg.world_size)
        if batch is not None and "batch_size" in values:  # the batch the given one replaced
            unbatched = family.preset(name, cfg.model, data, None, cfg.world_size)
            values = {**values, "batch_size": unbatched["batch_size"]}
    except ValueError as exc:
        raise GanError(f"{where}: {exc} (train.data: {cfg.data})") from None
    derived = {k: v for k, v in values.items() if not given(cfg, k)}
    kept = {k: {"value": value(cfg, k), "preset": v} for k, v in values.items() if given(cfg, k)}
    tree = dump_as_given(cfg)
    for key, v in derived.items():
        *path, last = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[last] = v
    try:
        resolved = TrainConfig.model_validate(tree)
        resolved.check_batch_split()
    except ValidationError as exc:
        raise GanError(format_error(exc, f"{where} (derived for {data.resolution} px)")) from None
    except ValueError as exc:
        raise GanError(f"{where}: {exc}") from None
    record = {
        "name": name,
        "resolution": data.resolution,
        "gpus": cfg.world_size,
        "derived": derived,
        "given": kept,  # the user's value wins; `preset` is what it would have derived
    }
    return resolved, record


def preset_lines(record: dict[str, Any] | None) -> list[str]:
    """The record as lines for people: one per key, derived or given."""
    if record is None:
        return []
    lines = [
        f"preset {record['name']} ({record['resolution']} px, {record['gpus']} data-parallel "
        f"device{'s' if record['gpus'] > 1 else ''}):"
    ]
    for key, v in record["derived"].items():
        lines.append(f"  {key:<24} {_show(v)}")
    for key, kept in record["given"].items():
        lines.append(
            f"  {key:<24} {_show(kept['value'])}  (given; the preset: {_show(kept['preset'])})"
        )
    return lines


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "null" if v is None else str(v)
