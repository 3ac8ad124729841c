"""The run fingerprint: which train params decide the weights a run produces.

A checkpoint resumes only when its fingerprint equals the current config's (continuing it
then gives the same result as starting afresh; gan/training/checkpoint.py). Two rules
make it, both declared here once:

- NEUTRAL_KEYS never count: they do not change the weights at a given step.
- A key counts only while it differs from its default, except the keys fingerprints
  have always held (HELD_AT_ANY_VALUE, frozen). So a train key added tomorrow leaves
  every existing fingerprint as it was, with no list to remember to extend; and a
  later key written at its default trains exactly as if unwritten, so it resumes
  the same checkpoints.

HPO study settings (gan/hpo/settings.py) are the same view of the train section
(docs/architecture.md, 'Fingerprints').
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from gan.config import TrainConfig, dump_section

# Train keys that do not change the weights a run produces at a given step: where it is
# written, how often it logs, samples and saves, how long it runs (the lr schedule counts
# its own steps), CPU threads, init_from, which only a fresh start reads (a resume
# continues its own checkpoint), and the snapshots' keys: they choose which step's weights
# are exported, never change any (the best snapshot carries its measurement protocol in
# the checkpoint: gan/training/snapshots.py). The fingerprint ignores exactly these, so a
# run can be resumed and extended. gan/hpo/settings.py derives study settings from this list too,
# but keeps init_from (a warm start changes what a fresh trial measures) and ignores
# device (workers on other machines join the same study).
NEUTRAL_KEYS = frozenset(
    {
        "steps", "progress", "log_every", "sample_every", "checkpoint_every",
        "keep_checkpoints", "keep_set_aside", "resume", "grid_size", "runs_dir", "run",
        "init_from", "threads", "metrics_every", "metrics_samples", "best_metric", "export",
    }
)  # fmt: skip

# The keys fingerprints held at every value when this rule replaced the per-key lists
# (a section path, `model[<family>]` for a family's model section, to its keys). Frozen:
# never add to it. A key missing here counts only while it differs from its default.
HELD_AT_ANY_VALUE = {
    path: frozenset(keys.split())
    for path, keys in {
        "": "data seed batch_size device precision channels_last world_size model optim "
        "lr_schedule ema augment steps progress log_every sample_every checkpoint_every "
        "keep_checkpoints keep_set_aside resume grid_size runs_dir run init_from threads",
        "optim": "g_lr d_lr g_betas d_betas",
        "lr_schedule": "constant_steps decay_steps",
        "ema": "decay warmup_steps",
        "augment": "flip translate",
        "augment.ada": "mode p target interval kimg groups",
        "model[dcgan]": "family z_dim width loss gp_weight n_critic d_norm",
        "model[stylegan2]": "family z_dim w_dim mapping_layers mapping_lr_mult channel_base "
        "channel_max conv_clamp mbstd_group_size conditional loss gp_weight r1_gamma r1_every "
        "pl_weight pl_every pl_batch_shrink pl_decay style_mixing ema_kimg ema_rampup",
        "model[biggan]": "family z_dim ch d_ch g_widths d_widths shared_dim hier attention "
        "d_attention loss d_steps adam_eps ortho_weight sn_eps standing_stats",
        "model[cyclegan]": "family ngf ndf n_blocks n_layers_d loss lambda_cycle "
        "lambda_identity pool_size load_scale",
    }.items()
}


@functools.cache
def _defaults_json(family: str) -> str:
    """The train section's defaults with `family`'s model section (JSON: cached once)."""
    return json.dumps(dump_section(TrainConfig.model_validate({"model": {"family": family}})))


def default_train_params(family: str) -> dict[str, Any]:
    return json.loads(_defaults_json(family))


def _section_path(path: str, key: str, value: dict[str, Any]) -> str:
    if not path and key == "model":
        return f"model[{value.get('family')}]"
    return f"{path}.{key}" if path else key


def without_unheld_defaults(
    values: dict[str, Any], defaults: dict[str, Any], path: str = ""
) -> dict[str, Any]:
    """`values` less every key outside HELD_AT_ANY_VALUE that has its default value; a
    section that differs from its default is pruned the same way, key by key."""
    held = HELD_AT_ANY_VALUE.get(path, frozenset())
    kept = {}
    for key, value in values.items():
        default = defaults.get(key)
        if key not in held and key in defaults and value == default:
            continue
        if isinstance(value, dict) and isinstance(default, dict):
            value = without_unheld_defaults(value, default, _section_path(path, key, value))
        kept[key] = value
    return kept


def fingerprinted(train_params: dict[str, Any]) -> dict[str, Any]:
    """The dumped train section as fingerprints and study settings see it."""
    family = train_params.get("model", {}).get("family", "dcgan")
    return without_unheld_defaults(train_params, default_train_params(family))


def fingerprint(train_params: dict[str, Any], data_hash: str) -> str:
    relevant = {k: v for k, v in fingerprinted(train_params).items() if k not in NEUTRAL_KEYS}
    blob = json.dumps({"params": relevant, "data": data_hash}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
