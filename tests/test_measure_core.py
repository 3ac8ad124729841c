"""The measurement core: torch-fidelity's numbers without its cache, a verified cache of our
own, one sampling path for `gan evaluate` and HPO trials, and no import cycle (issue #10)."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
import torch_fidelity
from test_metrics import _cfg

from gan.config import load_params
from gan.data.shards import load_split
from gan.hpo.study import load, run
from gan.metrics.evaluate import evaluate, measure
from gan.metrics.extractors import register_classifier
from gan.metrics.feature_cache import FORMAT
from gan.metrics.fidelity import ISC_SPLITS, PRC_NEIGHBORHOOD, Uint8Images, compute_metrics

pytest_plugins = ["test_hpo_support", "test_metrics"]  # params_file, classifier16, untrained_run

METRICS = Path(__file__).resolve().parents[1] / "gan" / "metrics"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}


def test_measurement_modules_import_downwards_only():
    assert "gan.metrics.evaluate" not in _imports(METRICS / "translation.py")
    for core in ("core.py", "fidelity.py", "feature_cache.py"):
        assert not {"gan.metrics.evaluate", "gan.metrics.translation"} & _imports(METRICS / core)


@pytest.fixture
def images(digits16):
    train, test = load_split(digits16, "train").images, load_split(digits16, "test").images
    return train[:150].roll(2, dims=-1), test


def _reference(fake, real, name, **flags) -> dict[str, float]:
    """torch_fidelity.calculate_metrics as the project called it before, without cache."""
    n = min(len(fake), len(real))
    raw = torch_fidelity.calculate_metrics(
        input1=Uint8Images(fake),
        input2=Uint8Images(real),
        feature_extractor=name,
        kid_subset_size=min(50, n),
        isc_splits=ISC_SPLITS,
        prc_neighborhood=PRC_NEIGHBORHOOD,
        rng_seed=3,
        batch_size=32,
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
        **flags,
    )
    keys = {
        "frechet_inception_distance": "fid",
        "kernel_inception_distance_mean": "kid",
        "inception_score_mean": "is",
        "precision": "precision",
        "recall": "recall",
    }
    return {ours: raw[theirs] for theirs, ours in keys.items() if theirs in raw}


def test_numbers_equal_calculate_metrics_without_cache(images, classifier16, tmp_path):
    fake, real = images
    ext = register_classifier(classifier16)
    kw = {"kid_subset_size": 50, "seed": 3, "batch_size": 32}
    every = _reference(fake, real, ext.name, fid=True, kid=True, isc=True, prc=True)
    fid_only = _reference(fake, real, ext.name, fid=True)  # torch-fidelity's FID shortcut
    cache = {"cache_dir": tmp_path / "cache", "real_cache_name": "ref"}
    fresh = compute_metrics(fake, real, ext, **kw)
    miss = compute_metrics(fake, real, ext, **kw, **cache)
    hit = compute_metrics(fake, real, ext, **kw, **cache)
    print({k: (every[k], fresh[k]) for k in every})
    for ours in (fresh, miss, hit):
        assert {k: ours[k] for k in every} == every  # identical, not approximately
    assert compute_metrics(fake, real, ext, ("fid",), **kw, **cache) == fid_only
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_cache_entry_is_verified_and_replaced_when_wrong(images, classifier16, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    fake, real = images
    ext = register_classifier(classifier16)
    cache = {"cache_dir": tmp_path, "real_cache_name": "ref", "metrics": ("fid",)}
    first = compute_metrics(fake, real, ext, **cache)
    (path,) = tmp_path.iterdir()
    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert meta["format"] == FORMAT and ext.name in meta["key"]
    tampered = {k: v + 1 for k, v in tensors.items()}
    for bad, why in (
        ({k: v[:-1] for k, v in tensors.items()}, f"expected {len(real)} rows"),
        (tampered, "does not match its recorded sha256"),
    ):
        save_file(bad, str(path), metadata=meta)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert compute_metrics(fake, real, ext, **cache) == first
        assert any(why in str(w.message) for w in caught)
    other_data = compute_metrics(fake, real[:-1], ext, **cache)  # new pixels: a new key
    assert other_data != first and len(list(tmp_path.iterdir())) == 2


def test_sampling_trials_equal_evaluate_under_truncation(params_file):
    """A DCGAN study with evaluate.truncation 0.7: each trial's value is the FID `gan
    evaluate` reports for the trial's export (same samples, same truncation)."""
    params = load_params(
        params_file,
        [
            "evaluate.truncation=0.7",
            "evaluate.num_samples=48",  # = hpo.objective_samples
            "hpo.n_trials=1",
            "hpo.budget_steps=4",
            "hpo.report_every=4",
        ],
    )
    assert run(params)["complete"] == 1
    (trial,) = load(params).get_trials()
    export = params_file.parent / trial.user_attrs["run_dir"] / "export"
    evaluated = measure(params.evaluate, export).metrics
    assert trial.value == pytest.approx(evaluated["fid"], rel=1e-6)
    assert trial.user_attrs["kid"] == pytest.approx(evaluated["kid"], rel=1e-6, abs=1e-9)
    untruncated = params.evaluate.model_copy(update={"truncation": 1.0})
    assert measure(untruncated, export).metrics["fid"] != pytest.approx(trial.value, rel=1e-3)


def test_evaluate_outputs_are_replaced_together_or_not_at_all(
    tmp_path, digits16, classifier16, untrained_run, monkeypatch
):
    cfg = _cfg(tmp_path, digits16, untrained_run, classifier16, num_samples=64, metrics=["fid"])
    report = Path(cfg.output)
    report.mkdir()
    (report / "stale.txt").write_text("from an older evaluate")
    evaluate(cfg)
    assert sorted(p.name for p in report.iterdir()) == [
        "metrics.json",
        "protocol.json",
        "samples.png",
    ]
    before = {p.name: p.read_bytes() for p in report.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("gan.metrics.evaluate.save_grid", broken)
    with pytest.raises(OSError, match="disk full"):
        evaluate(cfg.model_copy(update={"seed": 1}))  # new metrics.json written, then failure
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".report")) == []
