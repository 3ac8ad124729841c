"""A study's settings: what makes its trials comparable, stored with the study.

A study remembers the settings its trials were measured under and refuses to continue
under others, naming what changed. Only what changes a trial's figures counts: a setting
today's code no longer has (a removed train key; KID's subset size in a study whose
objective is not KID) cannot have changed, so it does not stop an old study.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import optuna

from gan.config import Params
from gan.hpo.objective import metric_writing
from gan.hpo.space import set_path
from gan.training.fingerprint import NEUTRAL_KEYS, fingerprinted

# Train keys that do not change what a trial measures: the neutral ones (hpo.budget_steps
# replaces `steps`), less init_from (a warm start changes a fresh trial), plus device
# (workers on other machines share one study). See gan/training/fingerprint.py.
NOT_SETTINGS = (NEUTRAL_KEYS - {"init_from"}) | {"device"}
HPO_KEYS = "budget_steps report_every report_metric report_samples objective objective_samples"
# the params key behind a setting, for messages, where it is not hpo.<key> or train.<key>
PARAM_OF = {
    "space": "hpo.space",
    "kid_subset_size": "evaluate.kid_subset_size",
    "evaluate_seed": "evaluate.seed",
    "extractor": "evaluate.extractor",
    "confident_threshold": "evaluate.confident_threshold",
    **{k: f"hpo.{k}" for k in HPO_KEYS.split()},
}


def train_settings(train: dict[str, Any]) -> dict[str, Any]:
    """A dumped train section as the run fingerprint sees it (a key added since a study
    began adds no setting at its default), less the keys that are not study settings."""
    return {k: v for k, v in fingerprinted(train).items() if k not in NOT_SETTINGS}


def study_settings(params: Params, ref) -> dict[str, Any]:
    """What makes the trials of a study comparable; a study refuses to continue under others."""
    hpo = params.hpo
    objective = metric_writing(hpo.objective)
    base = params.train.model_dump(mode="json", serialize_as_any=True)
    for path in hpo.space:
        set_path(base, path, None)  # searched: its value in params.yaml does not matter
    return {
        **{k: getattr(hpo, k) for k in HPO_KEYS.split()},
        "space": {
            k: v.model_dump(mode="json", serialize_as_any=True) for k, v in hpo.space.items()
        },
        "train": train_settings(base),
        "data_content_hash": ref.content_hash,
        "extractor": ref.settings.extractor.name,
        "extractor_weights_sha256": ref.settings.extractor.weights_sha256,
        "evaluate_seed": ref.settings.seed,
        # the settings only the objective's metric depends on (gan.metrics.registry), and
        # only for it: studies of other objectives keep the settings they stored. KID's
        # subset size makes a KID objective's figure; a KID report metric estimates the
        # same quantity with any subset (only its noise changes), so pruning stays fair
        **(
            {"classifier_weights_sha256": ref.classifier_sha256}
            if "classifier" in objective.needs
            else {}
        ),
        **{k: getattr(ref.settings, k) for k in objective.settings},
    }


def still_settings(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`old` without the settings today's `new` no longer has: they cannot have changed.
    The searched space is the user's, not a schema: every entry of it counts."""
    kept = {}
    for key, value in old.items():
        if key in new:
            nested = isinstance(value, dict) and isinstance(new[key], dict) and key != "space"
            kept[key] = still_settings(value, new[key]) if nested else value
    return kept


def differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(path, old value, new value) of every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for k in sorted(set(old) | set(new)):
            out += differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def describe_changes(old: dict[str, Any], new: dict[str, Any], most: int = 8) -> str:
    """'evaluate.kid_subset_size 100 -> None, train.ema.decay 0.9 -> 0.99' (the params key
    where there is one; values only when they are scalars)."""
    parts = []
    for path, was, now in differences(old, new)[:most]:
        top = path.split(".", 1)[0]
        name = PARAM_OF.get(path) or (PARAM_OF[top] + path[len(top) :] if top in PARAM_OF else path)
        scalar = not isinstance(was, dict | list) and not isinstance(now, dict | list)
        parts.append(f"{name} {_short(was)} -> {_short(now)}" if scalar else name)
    return ", ".join(parts)


# The full settings are a study system attribute (nested, long); the user attributes that
# `optuna studies` and optuna-dashboard print hold a short summary and the settings' hash.
SETTINGS_KEY = "ganops.settings"


def settings_digest(settings: dict[str, Any]) -> str:
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def write_settings(storage, study: optuna.Study, settings: dict[str, Any]) -> None:
    hpo_keys = ("objective", "budget_steps")
    study_id = storage.get_study_id_from_name(study.study_name)
    storage.set_study_system_attr(study_id, SETTINGS_KEY, settings)
    for key in hpo_keys:
        study.set_user_attr(key, settings[key])
    study.set_user_attr("settings_sha256", settings_digest(settings))


def stored_settings(storage, study: optuna.Study) -> dict[str, Any] | None:
    """The settings a study was created with (studies before the system attribute kept
    them as the user attribute "settings")."""
    study_id = storage.get_study_id_from_name(study.study_name)
    found = storage.get_study_system_attrs(study_id).get(SETTINGS_KEY)
    return found if found is not None else study.user_attrs.get("settings")
