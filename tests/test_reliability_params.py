"""params.yaml: every value accepted or refused with one error naming the key (#14).

A corpus of bad files (tests/corpus/params/), malformed `-S` overrides, and a hypothesis
fuzz of params files: load_params either returns Params or raises GanError, never
anything else."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan.config import Params, load_params, parse_params
from gan.errors import GanError

CORPUS = Path(__file__).parent / "corpus" / "params"
REPO = Path(__file__).resolve().parents[1]

EXPECTED = {  # corpus file -> text the one error must contain
    "alias-bomb": "unknown key",
    "batch-huge": "train.batch_size",
    "deep-nesting": "params",
    "duplicate-key": "duplicate key 'steps'",
    "list": "must be a mapping",
    "lr-inf": "train.optim.g_lr: Input should be a finite number",
    "lr-nan": "train.optim.d_lr",
    "not-utf8": "not UTF-8",
    "python-tag": "not valid YAML",
    "section-null": "train",
    "seed-2-pow-70": "train.seed",
    "seed-negative": "train.seed",
    "steps-bool": "train.steps: must be a number, not true/false",
    "unclosed": "not valid YAML",
    "unhashable-key": "not valid YAML",
    "width-huge": "train.model.width",
    "z-dim-string": "train.model.z_dim",
}


def test_corpus_is_covered():
    assert sorted(p.stem for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_params_file_is_one_error_naming_the_key(name):
    path = CORPUS / f"{name}.yaml"
    with pytest.raises(GanError) as info:
        load_params(path)
    assert EXPECTED[name] in str(info.value) and str(path) in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.steps", "expected key=value"),
        ("=5", "needs a name"),
        ("train..steps=5", "needs a name"),
        ("train.steps=[1,", "not valid YAML"),
        ("train.steps=true", "train.steps: must be a number"),
        ("train.steps.x=1", "steps is not a section"),
        ("train.seed=1e400", "train.seed"),
        ("train.optim.g_lr=.inf", "finite"),
        ("train.model.width=99999999", "train.model.width"),
        ("train.steps={a: 1, a: 2}", "duplicate key 'a'"),
        ("train.batch_size=" + "[" * 5000, "nested too deeply"),
    ],
)
def test_malformed_override_is_one_error(tmp_path, override, expected):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  steps: 10\n")
    with pytest.raises(GanError, match=expected):
        load_params(params, [override])


def test_override_of_a_file_that_is_not_a_mapping(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("- 1\n")
    with pytest.raises(GanError, match="not a mapping"):
        load_params(params, ["train.steps=3"])


def test_each_bad_key_is_an_error_line_of_its_own(tmp_path, capsys):
    """The second and later keys' lines had no `error:` in front (#27: one per bad input)."""
    from gan.cli import main

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  steps: -1\n  bogus: 1\n")
    assert main(["train", "-p", str(params)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {params}: train.steps: Input should be greater than 0",
        f"error: {params}: train.bogus: unknown key",
    ]


def test_the_project_params_files_still_load():
    for name in ("params.yaml", "params-cyclegan.yaml", "params-stylegan2.yaml"):
        if (REPO / name).exists():
            assert isinstance(load_params(REPO / name), Params)


def test_numbers_and_booleans_where_they_belong():
    p = parse_params({"train": {"resume": False, "channels_last": True, "steps": 5}})
    assert p.train.steps == 5 and p.train.channels_last is True
    assert parse_params({"train": {"optim": {"g_lr": "2e-4"}}}).train.optim.g_lr == 2e-4
    assert parse_params({"train": {"seed": 2**32 - 1}}).train.seed == 2**32 - 1


# ------------------------------------------------------------------ fuzzing

KEYS = ["train", "preprocess", "evaluate", "hpo", "model", "optim", "steps", "seed",
        "batch_size", "g_lr", "width", "family", "space", "run", "dcgan", "x"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["dcgan", "stylegan2", "cyclegan", "biggan", "auto", ".inf", "1e-4"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=4) | values


def _load(tmp_path: Path, data: bytes, overrides: list[str] | None = None) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    with contextlib.suppress(GanError):
        assert isinstance(load_params(path, overrides), Params)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(doc=documents)
def test_fuzz_structured_params(tmp_path_factory, doc):
    text = yaml.safe_dump(doc, allow_unicode=True)
    _load(tmp_path_factory.mktemp("p"), text.encode("utf-8"))


@FUZZ
@given(section=st.sampled_from(["train", "preprocess", "evaluate", "hpo", "classifier"]),
       key=st.sampled_from(KEYS), value=values)  # fmt: skip
def test_fuzz_known_sections(tmp_path_factory, section, key, value):
    doc = {section: {key: value}, "train": {"model": {"family": "dcgan", key: value}}}
    _load(tmp_path_factory.mktemp("p"), yaml.safe_dump(doc).encode())


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_raw_bytes(tmp_path_factory, data):
    _load(tmp_path_factory.mktemp("p"), data)


@FUZZ
@given(overrides=st.lists(st.text(max_size=30), max_size=3))
def test_fuzz_overrides(tmp_path_factory, overrides):
    _load(tmp_path_factory.mktemp("p"), b"train:\n  steps: 10\n", overrides)
