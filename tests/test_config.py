import pytest

from gan.config import load_params, parse_params
from gan.errors import GanError


def error_of(data) -> str:
    with pytest.raises(GanError) as info:
        parse_params(data)
    return str(info.value)


def test_defaults_validate():
    p = parse_params({})
    assert p.train.model.family == "dcgan"
    assert p.train.batch_size > 0


def test_repo_params_file_is_valid():
    from conftest import REPO

    p = load_params(REPO / "params.yaml")
    assert p.train.model.family == "dcgan"
    assert p.evaluate.run_dir == str(p.train.run_dir)
    assert p.promote.run_dir == str(p.train.run_dir)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"train": {"batch_size": 0}}, "train.batch_size"),
        ({"train": {"optim": {"g_lr": -1e-4}}}, "train.optim.g_lr"),
        ({"preprocess": {"resolution": 48}}, "preprocess.resolution"),
        ({"train": {"steps": "many"}}, "train.steps"),
        ({"train": {"bacth_size": 4}}, "train.bacth_size"),
        ({"trian": {}}, "trian"),
        ({"train": {"model": {"family": "dcgan", "loss": "wasserstein"}}}, "train.model.loss"),
        ({"train": {"model": {"family": "dcgan", "widht": 8}}}, "train.model.widht"),
        ({"train": {"model": {"family": "nosuchgan"}}}, "train.model"),
        ({"train": {"optim": {"d_betas": [0.5, 1.5]}}}, "train.optim.d_betas"),
    ],
)
def test_bad_params_name_the_key(data, key):
    msg = error_of(data)
    assert f"params.yaml: {key}" in msg


def test_unknown_key_says_unknown():
    assert "unknown key" in error_of({"train": {"bacth_size": 4}})


def test_overrides_apply_and_validate(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  steps: 10\n")
    assert load_params(f, ["train.steps=20", "train.model.width=8"]).train.model.width == 8
    with pytest.raises(GanError, match="train.steps"):
        load_params(f, ["train.steps=0"])


def test_missing_params_file(tmp_path):
    with pytest.raises(GanError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_dump_keeps_family_fields_so_fingerprints_see_them():
    from gan.config import dump_section
    from gan.training.checkpoint import fingerprint

    a = parse_params({"train": {"model": {"family": "dcgan", "loss": "hinge"}}}).train
    b = parse_params({"train": {"model": {"family": "dcgan", "loss": "lsgan"}}}).train
    assert dump_section(a)["model"]["loss"] == "hinge"
    assert fingerprint(dump_section(a), "h") != fingerprint(dump_section(b), "h")
