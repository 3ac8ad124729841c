import pytest
import yaml

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
        ({"train": {"model": {"family": "stylegan2", "loss": "hinge"}}}, "train.model.loss"),
        ({"promote": {"primary_metric": "precision"}}, "promote: mode: precision is better"),
        ({"promote": {"primary_metric": "fid", "mode": "max"}}, "promote: mode: fid is better"),
        ({"promote": {"primary_metric": "fid@nope"}}, "promote.primary_metric: fid@nope"),
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
    from gan.training.fingerprint import fingerprint

    a = parse_params({"train": {"model": {"family": "dcgan", "loss": "hinge"}}}).train
    b = parse_params({"train": {"model": {"family": "dcgan", "loss": "lsgan"}}}).train
    assert dump_section(a)["model"]["loss"] == "hinge"
    assert fingerprint(dump_section(a), "h") != fingerprint(dump_section(b), "h")


def test_data_and_run_paths_are_derived_from_the_one_key_naming_them():
    p = parse_params({"preprocess": {"output": "data/processed/faces"}, "train": {"run": "r1"}})
    assert p.train.data == p.classifier.data == p.evaluate.data == "data/processed/faces"
    assert p.evaluate.run_dir == p.promote.run_dir == "runs/r1"
    p = parse_params({"train": {"runs_dir": "elsewhere", "run": "r2"}})
    assert p.evaluate.run_dir == p.promote.run_dir == "elsewhere/r2"


def test_an_explicit_path_wins_even_when_it_equals_the_default(tmp_path):
    data = {
        "preprocess": {"output": "data/processed/faces"},
        "train": {"data": "data/processed/digits"},  # the class default, set on purpose
        "evaluate": {"data": "mine", "run_dir": "runs/other"},
    }
    p = parse_params(data)
    assert (p.train.data, p.evaluate.data, p.classifier.data) == (
        "data/processed/digits",
        "mine",
        "data/processed/faces",
    )
    assert (p.evaluate.run_dir, p.promote.run_dir) == ("runs/other", "runs/default")
    f = tmp_path / "params.yaml"
    f.write_text("preprocess:\n  output: a\n")
    assert load_params(f, ["classifier.data=b"]).classifier.data == "b"


def test_the_repo_params_name_each_path_once():
    from conftest import REPO

    for name in ("params.yaml", "params-cyclegan.yaml"):
        p = load_params(REPO / name)
        assert p.train.data == p.classifier.data == p.evaluate.data == p.preprocess.output
        raw = yaml.safe_load((REPO / name).read_text())
        assert "data" not in raw["train"] and "run_dir" not in raw["evaluate"], name


@pytest.mark.parametrize(
    "name", ["../../escape", "/abs/run", "", ".", "..", "a/b", "a\\b", "x" * 101]
)
@pytest.mark.parametrize("key", ["train.run", "hpo.study"])
def test_run_and_study_names_are_one_safe_directory_name(key, name):
    section, field = key.split(".")
    msg = error_of({section: {field: name}})
    assert msg.startswith(f"params.yaml: {key}: ") and "not a valid name" in msg
    assert "\n" not in msg  # one clear error


@pytest.mark.parametrize("name", ["digits-dcgan", "run_2.b", "A1", "x" * 100])
def test_ordinary_names_pass(name):
    assert parse_params({"train": {"run": name}, "hpo": {"study": name}}).train.run == name


def test_one_list_of_neutral_train_keys():
    from gan.config import TrainConfig
    from gan.hpo import settings
    from gan.hpo.settings import NOT_SETTINGS
    from gan.training.fingerprint import NEUTRAL_KEYS

    assert settings.NEUTRAL_KEYS is NEUTRAL_KEYS
    assert set(TrainConfig.model_fields) >= NEUTRAL_KEYS
    assert {"init_from", "device"} == NOT_SETTINGS ^ NEUTRAL_KEYS  # the documented difference


def test_later_train_keys_keep_fingerprints_at_their_defaults():
    from gan.config import dump_section
    from gan.training.fingerprint import fingerprint, fingerprinted

    default = parse_params({"train": {}}).train
    written = parse_params({"train": {"reuse_fake": True, "compile": False}}).train
    assert not {"reuse_fake", "compile"} & fingerprinted(dump_section(default)).keys()
    assert fingerprint(dump_section(written), "h") == fingerprint(dump_section(default), "h")
    changed = fingerprinted(
        dump_section(parse_params({"train": {"reuse_fake": False, "compile": True}}).train)
    )
    assert (changed["reuse_fake"], changed["compile"]) == (False, True)
    assert fingerprint(changed, "h") != fingerprint(dump_section(default), "h")
