"""The run fingerprint is one rule (gan/training/fingerprint.py) that keeps every existing
fingerprint: a checkpoint whose fingerprint changes is set aside and the run restarts."""

from __future__ import annotations

import pytest
from conftest import REPO

from gan.config import TrainConfig, dump_section, load_params, parse_params
from gan.training.fingerprint import (
    HELD_AT_ANY_VALUE,
    default_train_params,
    fingerprint,
    fingerprinted,
    without_unheld_defaults,
)

# Computed by the code before the rule (commit a7572f7: NEUTRAL_KEYS, DCGAN's LATER_KEYS,
# TRAIN_LATER_DEFAULTS and the unwritten-ada serializer), with data hash "h".
PINNED_PRESETS = {
    "params.yaml": "69c9bd864580b253",
    "params-biggan.yaml": "f25f4d1f895ec5cd",  # the #24 preset (rpgan, lazy R1/R2 study winner)
    "params-cyclegan.yaml": "279b82bfd5bd0f5e",
    "params-stylegan2.yaml": "3850bf04dd2fad38",  # the #24 preset (R1 study winner gamma 1.0, 6,000 steps, lr decay)
}
PINNED_TRAIN = [
    ({}, "4b512fbe066971e9"),
    ({"steps": 7, "run": "x", "threads": 2, "init_from": "a"}, "4b512fbe066971e9"),  # neutral
    ({"world_size": 2}, "415621106c096c3e"),
    ({"reuse_fake": False, "compile": True}, "c4a461a3465dee4d"),
    ({"augment": {"ada": {"mode": "adaptive"}}}, "9a33bb9b9679b481"),
    (
        {"augment": {"translate": 0.125, "ada": {"mode": "fixed", "p": 0.3, "groups": ["color"]}}},
        "bc302d537bfd3ec9",
    ),
    (
        {
            "model": {
                "family": "dcgan",
                "g_width": 16,
                "d_width": 8,
                "d_spectral": True,
                "conditional": "auto",
                "conditioning": "norm",
                "class_dim": 12,
                "d_mbstd": 2,
            }
        },
        "a5287e4cd99e7643",
    ),
    ({"model": {"family": "dcgan", "conditional": True, "aux_weight": 0.5}}, "75847e36c74513fc"),
    ({"model": {"family": "stylegan2"}}, "4da9cbc68dedf18e"),
    ({"model": {"family": "biggan"}}, "6c06f95d6fa36a77"),
    ({"model": {"family": "cyclegan"}}, "143741a4c0ed1a95"),
]


def _fingerprint(train: TrainConfig) -> str:
    return fingerprint(dump_section(train), "h")


@pytest.mark.parametrize("name", sorted(PINNED_PRESETS))
def test_the_presets_keep_their_fingerprints(name):
    assert _fingerprint(load_params(REPO / name).train) == PINNED_PRESETS[name]


@pytest.mark.parametrize(("train", "pinned"), PINNED_TRAIN)
def test_default_and_later_keys_keep_their_fingerprints(train, pinned):
    assert _fingerprint(parse_params({"train": train}).train) == pinned


def test_the_data_counts():
    train = parse_params({}).train
    assert fingerprint(dump_section(train), "h") != fingerprint(dump_section(train), "other")


@pytest.mark.parametrize(
    "written",
    [
        {"reuse_fake": True, "compile": False},
        {"augment": {"ada": {"mode": "off"}}},
        {"model": {"family": "dcgan", "d_spectral": False, "g_width": None, "aux_weight": 0.0}},
    ],
)
def test_a_later_key_written_at_its_default_resumes_the_same_run(written):
    assert _fingerprint(parse_params({"train": written}).train) == PINNED_TRAIN[0][1]


@pytest.mark.parametrize("family", ["dcgan", "stylegan2", "biggan", "cyclegan"])
def test_a_key_added_tomorrow_leaves_every_fingerprint_as_it_was(family):
    """No list to extend: a new key (top level or in a section) counts only off its default."""
    defaults = default_train_params(family)
    today = without_unheld_defaults(defaults, defaults)
    tomorrow = {**defaults, "new_knob": 3, "model": {**defaults["model"], "new_width": 8}}
    tomorrow_defaults = {**tomorrow, "model": dict(tomorrow["model"])}
    assert without_unheld_defaults(tomorrow, tomorrow_defaults) == today
    tomorrow["model"]["new_width"] = 16
    seen = without_unheld_defaults(tomorrow, tomorrow_defaults)
    assert seen["model"]["new_width"] == 16 and "new_knob" not in seen


@pytest.mark.parametrize("family", ["dcgan", "stylegan2", "biggan", "cyclegan"])
def test_every_held_key_is_a_key_of_todays_schema(family):
    """A held key that no longer exists would hold nothing: the table names today's keys."""
    defaults = default_train_params(family)
    sections = {"": defaults, f"model[{family}]": defaults["model"]}
    sections |= {k: defaults[k] for k in ("optim", "lr_schedule", "ema", "augment")}
    sections["augment.ada"] = defaults["augment"]["ada"]
    for path, section in sections.items():
        assert HELD_AT_ANY_VALUE[path] <= section.keys(), path


def test_the_view_is_the_same_after_a_dump_and_reload():
    """Spawned ranks and HPO trials rebuild the config from its dump: same fingerprint."""
    train = parse_params({"train": {"model": {"family": "dcgan", "g_width": 16}}}).train
    again = TrainConfig.model_validate(dump_section(train))
    assert _fingerprint(again) == _fingerprint(train)
    assert fingerprinted(dump_section(again)) == fingerprinted(dump_section(train))
