"""The StyleGAN2 and BigGAN presets are their HPO studies' winners (issue #24): applying
the recorded winner to a copy of the params file changes nothing, and every searched key
lies inside the space the file declares, so rerunning the study can find it again."""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO

from gan.config import dump_section, load_params
from gan.hpo.report import apply_best
from gan.hpo.space import get_path

# best.json "params" of each study as `gan hpo best` wrote it (docs/stylegan2.md,
# docs/biggan.md: "How the preset was chosen").
WINNERS = {
    "params-stylegan2.yaml": (
        "digits-stylegan2-r1",
        {"model.r1_gamma": 1.0},
    ),
    "params-biggan.yaml": (
        "digits-biggan-rp",
        {"model.r1_gamma": 1.0},
    ),
}


@pytest.mark.parametrize("name", sorted(WINNERS))
def test_applying_the_winner_changes_nothing(name, tmp_path):
    copy = tmp_path / name
    shutil.copy(REPO / name, copy)
    assert apply_best(copy, WINNERS[name][1]) == []
    assert copy.read_text() == (REPO / name).read_text()


@pytest.mark.parametrize("name", sorted(WINNERS))
def test_the_winner_is_inside_the_declared_space(name):
    params = load_params(REPO / name)
    study, winner = WINNERS[name]
    assert params.hpo.study == study
    assert set(params.hpo.space) == set(winner)
    train = dump_section(params.train)
    for key, spec in params.hpo.space.items():
        value = get_path(train, key)
        assert value == winner[key]
        assert spec.low <= value <= spec.high, key
