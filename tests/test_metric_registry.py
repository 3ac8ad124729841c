"""A metric is one registration: a toy metric shows up in metrics.json, protocol.json, HPO's
objective choices and promotion's primary-metric choices; several extractors measure in one
evaluation, each figure keyed by its extractor and compared only like with like."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
import torch.nn.functional as F
from test_metrics import PLUGIN_NAME
from test_promote import make_run

from gan.config import EvaluateConfig, HpoConfig, PromoteConfig, load_params, parse_params
from gan.errors import GanError
from gan.export import load_export
from gan.hpo.objective import direction
from gan.hpo.study import load, run
from gan.metrics.evaluate import evaluate, generate_samples, measure
from gan.metrics.protocol import comparable_protocol
from gan.metrics.registry import (
    Figure,
    MetricInputs,
    get_metric,
    hpo_figures,
    ranked_figures,
    register_metric,
    unregister_metric,
)
from gan.registry.decision import Rule, decide
from gan.registry.promote import promote

pytest_plugins = ["test_hpo_support", "test_metrics"]  # params_file, classifier, plugin

TOY = "feature_norm"


def mean_feature_norm(inputs: MetricInputs) -> dict[str, float]:
    return {TOY: float(inputs.fake["features"].double().norm(dim=1).mean())}


@pytest.fixture
def toy():
    """The toy metric, registered for one test: the mean L2 norm of the samples' features."""
    register_metric(TOY, needs={"features"}, higher_is_better=False, compute=mean_feature_norm)
    yield TOY
    unregister_metric(TOY)


def _config(tmp_path, digits16, run, classifier_dir, name: str, **kw) -> EvaluateConfig:
    return EvaluateConfig(
        data=str(digits16), run_dir=str(run), output=str(tmp_path / name),
        classifier=str(classifier_dir), num_samples=64, cache_dir=str(tmp_path / "cache"),
        device="cpu", **kw,
    )  # fmt: skip


def _promote(tmp_path, run, report: str, **kw) -> dict:
    cfg = PromoteConfig(
        registry=str(tmp_path / "registry"), metrics=str(tmp_path / report / "metrics.json"),
        run_dir=str(run), report=str(tmp_path / "promote"), allow_weak_extractor=True, **kw,
    )  # fmt: skip
    return promote(cfg)


def test_a_registered_metric_is_measured_recorded_and_offered(
    toy, tmp_path, digits16, classifier, plugin
):
    assert EvaluateConfig().metrics == ["fid", "kid", "isc", "prc", "dc", TOY]  # the default: all
    run = make_run(tmp_path, "first", seed=1)
    both = _config(
        tmp_path, digits16, run, classifier[0], "both", metrics=["fid", TOY],
        extra_extractors={"pixels": {"extractor": plugin}},
    )  # fmt: skip
    result = evaluate(both)

    metrics = json.loads((tmp_path / "both" / "metrics.json").read_text())
    assert metrics == result["metrics"]
    assert {"fid", TOY, "fid@pixels", f"{TOY}@pixels", "fid_real_floor@pixels"} <= set(metrics)
    # the toy under the pixels extractor, computed here from that extractor's definition
    fake, _ = generate_samples(load_export(run / "export"), 64, seed=0, batch_size=64)
    pixels = F.adaptive_avg_pool2d(fake.expand(-1, 3, -1, -1).float() / 255, 8).flatten(1)
    assert metrics[f"{TOY}@pixels"] == pytest.approx(float(pixels.double().norm(dim=1).mean()))
    assert metrics[TOY] > 0 and metrics[TOY] != pytest.approx(metrics[f"{TOY}@pixels"])

    protocol = json.loads((tmp_path / "both" / "protocol.json").read_text())
    assert protocol == result["protocol"]
    assert TOY in protocol["metrics"]
    assert protocol["extractors"] == {
        "pixels": {"extractor": PLUGIN_NAME, "extractor_weights_sha256": "pixels-v1"}
    }
    assert protocol["extractor"].startswith("ganops-classifier-")

    # one extractor: today's protocol keys, and the same protocol for its plain figures
    alone = evaluate(_config(tmp_path, digits16, run, classifier[0], "alone", metrics=["fid", TOY]))
    assert set(protocol) - set(alone["protocol"]) == {"extractors"}
    assert alone["metrics"]["fid"] == metrics["fid"] and alone["metrics"][TOY] == metrics[TOY]
    assert comparable_protocol(protocol, "fid") == comparable_protocol(alone["protocol"], "fid")
    keyed = comparable_protocol(protocol, f"{TOY}@pixels")
    assert keyed["extractor"] == PLUGIN_NAME and "extractors" not in keyed

    # offered where a metric name is chosen, with its direction
    assert ranked_figures()[TOY] is False and hpo_figures()[TOY] is False
    assert direction(HpoConfig(objective=TOY, report_metric=TOY).objective) == "minimize"
    assert PromoteConfig(primary_metric=f"{TOY}@pixels").primary_metric == f"{TOY}@pixels"

    # promotion by the toy under the pixels extractor; then a candidate measured without
    # it is compared on FID under the classifier alone: like with like
    first = _promote(tmp_path, run, "both", primary_metric=f"{TOY}@pixels")
    assert first["decision"] == "promoted" and first["value"] == metrics[f"{TOY}@pixels"]
    second = make_run(tmp_path, "second", seed=2)
    evaluate(_config(tmp_path, digits16, second, classifier[0], "second", metrics=["fid", TOY]))
    by_fid = _promote(tmp_path, second, "second", primary_metric="fid")
    assert "protocol differs" not in by_fid["reason"] and "champion v1" in by_fid["reason"]


def test_a_study_optimises_a_registered_metric(toy, params_file):
    """A study of the toy: minimised (higher_is_better False), each trial's value the
    figure `gan evaluate` reports for the trial's export."""
    overrides = [f"hpo.objective={TOY}", "hpo.n_trials=1", "evaluate.num_samples=48"]
    params = load_params(params_file, overrides)
    assert run(params)["complete"] == 1
    study = load(params)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    (trial,) = study.get_trials()
    assert trial.value == trial.user_attrs[TOY] and {"fid", "kid"} <= set(trial.user_attrs)
    export = params_file.parent / trial.user_attrs["run_dir"] / "export"
    assert measure(params.evaluate, export).metrics[TOY] == pytest.approx(trial.value, rel=1e-6)


def test_like_with_like_refuses_a_champion_without_the_extractor():
    base = {"extractor": "c", "extractor_weights_sha256": "1", "seed": 0, "metrics": ["fid"]}
    other = {"extractor": "p", "extractor_weights_sha256": "2"}
    with_pixels = {**base, "extractors": {"pixels": other}}
    champion = {"version": 1, "metrics": {"fid": 9.0, "fid@pixels": 9.0}, "protocol": base}
    by_fid = decide({"fid": 8.0}, with_pixels, champion, Rule("fid"))
    assert by_fid.promoted  # the other extractor does not enter a plain figure's protocol
    by_pixels = decide({"fid@pixels": 8.0}, with_pixels, champion, Rule("fid@pixels"))
    assert not by_pixels.promoted and "extractor: p vs None" in by_pixels.reason
    moved = {**base, "seed": 1, "extractors": {"pixels": other}}
    champion_pixels = {**champion, "protocol": {**base, "extractors": {"pixels": other}}}
    assert not decide({"fid@pixels": 8.0}, moved, champion_pixels, Rule("fid@pixels")).promoted


def test_unknown_names_are_refused_naming_the_key_and_the_choices():
    for data, key in (
        ({"evaluate": {"metrics": ["fid", TOY]}}, "evaluate.metrics.1"),
        ({"promote": {"primary_metric": TOY}}, "promote.primary_metric"),
        ({"promote": {"primary_metric": "kid_std"}}, "promote.primary_metric"),  # not ranked
        ({"hpo": {"objective": TOY}}, "hpo.objective"),
        ({"hpo": {"report_metric": "conditional_accuracy"}}, "hpo.report_metric"),  # labels
    ):
        with pytest.raises(GanError, match=rf"params.yaml: {key}: Input should be 'fid', 'kid'"):
            parse_params(data)
    with pytest.raises(GanError, match=f"'{TOY}' is not a registered metric"):
        get_metric(TOY)


def test_a_registration_says_what_it_needs_and_writes(toy):
    with pytest.raises(GanError, match="already registered"):
        register_metric(TOY, needs={"features"}, compute=mean_feature_norm)
    with pytest.raises(GanError, match="needs must be some of"):
        register_metric("bad", needs={"pixels"}, compute=mean_feature_norm)
    with pytest.raises(GanError, match="not both"):
        register_metric("mixed", needs={"features", "classifier"}, compute=mean_feature_norm)
    register_metric("liar", needs={"features"}, figures=[Figure("x")], compute=mean_feature_norm)
    try:
        inputs = MetricInputs({"features": torch.ones(2, 3)}, {}, settings=None)
        with pytest.raises(GanError, match="undeclared figures"):
            get_metric("liar")(inputs)
    finally:
        unregister_metric("liar")
