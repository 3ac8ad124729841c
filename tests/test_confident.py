"""classifier_confident: the metric, its ceiling on real data, as an HPO objective, in promotion."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from test_promote import PROTOCOL, config, make_eval, make_run

from gan.config import HpoConfig, load_params
from gan.data.shards import load_split
from gan.errors import GanError
from gan.hpo.objective import direction, report_sign, reported_value
from gan.hpo.report import trials_frame, write_results
from gan.hpo.study import load, run
from gan.metrics.classifier import load_classifier, predict_logits
from gan.metrics.core import confident_fraction
from gan.metrics.evaluate import class_figures, evaluate
from gan.registry.promote import promote

pytest_plugins = ["test_hpo_support", "test_metrics"]  # params_file, classifier16, untrained_run


def _logits_with_top(probs: list[float], k: int = 10) -> torch.Tensor:
    """One row per probability p: the first class has softmax p, the others share 1 - p."""
    rows = []
    for p in probs:
        rest = (1 - p) / (k - 1)
        rows.append([math.log(p)] + [math.log(rest)] * (k - 1))
    return torch.tensor(rows)


def test_confident_fraction_on_known_softmax():
    logits = _logits_with_top([0.95, 0.81, 0.799, 0.5, 0.3])
    assert logits.softmax(1)[:, 0].tolist() == pytest.approx([0.95, 0.81, 0.799, 0.5, 0.3])
    assert confident_fraction(logits, 0.8) == pytest.approx(2 / 5)
    assert confident_fraction(logits, 0.45) == pytest.approx(4 / 5)
    assert confident_fraction(logits, 0.96) == 0.0
    assert confident_fraction(logits + 7.0, 0.8) == pytest.approx(2 / 5)  # shift-invariant
    assert class_figures(logits)["classifier_confident"] == pytest.approx(2 / 5)
    assert class_figures(logits, threshold=0.25)["classifier_confident"] == 1.0


def test_evaluate_reports_confident_and_its_ceiling_on_real_data(
    tmp_path, classifier, digits16, untrained_run
):
    from test_metrics import _cfg

    cfg = _cfg(tmp_path, digits16, untrained_run, classifier[0], metrics=["fid"], num_samples=64)
    metrics = evaluate(cfg)["metrics"]
    trained = load_classifier(classifier[0])
    test = load_split(digits16, "test").images
    expected = confident_fraction(predict_logits(trained.model, test), 0.8)
    assert metrics["classifier_confident_real"] == pytest.approx(expected)
    assert metrics["classifier_confident_real"] > 0.8  # a trained classifier on real digits
    assert 0.0 <= metrics["classifier_confident"] <= 1.0

    strict = evaluate(
        cfg.model_copy(update={"confident_threshold": 0.999, "output": str(tmp_path / "s")})
    )
    assert strict["metrics"]["classifier_confident_real"] <= metrics["classifier_confident_real"]
    assert strict["protocol"]["confident_threshold"] == 0.999  # a different protocol


def test_objective_directions_and_report_signs():
    assert direction("classifier_confident") == "maximize"
    assert direction("fid") == direction("kid") == "minimize"
    hpo = HpoConfig(objective="classifier_confident", report_metric="kid")
    assert report_sign(hpo) == -1.0 and reported_value(-0.25, hpo) == 0.25
    assert report_sign(HpoConfig()) == 1.0


def test_study_maximises_classifier_confident(params_file):
    params = load_params(
        params_file,
        ["hpo.objective=classifier_confident", "hpo.n_trials=2", "hpo.report_every=3"],
    )
    assert run(params)["complete"] == 2
    study = load(params)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = study.get_trials()
    for t in trials:
        assert t.value == t.user_attrs["classifier_confident"] and 0.0 <= t.value <= 1.0
        assert all(v <= 0 for v in t.intermediate_values.values())  # KID reported negated
    best = write_results(study, params.hpo)
    assert best["value"] == max(t.value for t in trials)
    assert best["metrics"]["classifier_confident"] == best["value"]
    frame = trials_frame(study, params.hpo)
    assert (frame["last_report"] >= 0).all()  # the KID itself again

    # the same study name under a minimised objective is refused, naming the direction
    fid = load_params(params_file, ["hpo.objective=fid"])
    with pytest.raises(GanError, match="maximize"):
        run(fid, max_trials=1)


def test_promotion_by_classifier_confident_maximised(tmp_path):
    protocol = {**PROTOCOL, "confident_threshold": 0.8}
    kw = {"primary_metric": "classifier_confident", "mode": "max"}

    def candidate(name: str, seed: int, value: float) -> dict:
        metrics = make_eval(tmp_path, {"fid": 40.0, "classifier_confident": value}, protocol)
        return promote(config(tmp_path, make_run(tmp_path, name, seed), metrics, **kw))

    assert candidate("a", 0, 0.6)["decision"] == "promoted"
    worse = candidate("b", 1, 0.5)
    assert worse["decision"] == "rejected" and worse["champion"] == 1
    assert worse["reason"].startswith("classifier_confident 0.5 does not beat champion v1's 0.6")
    assert "higher is better" in worse["reason"]
    better = candidate("c", 2, 0.9)
    assert better["decision"] == "promoted" and better["champion"] == 3
    assert better["previous_champion_value"] == 0.6 and better["value"] == 0.9
    assert candidate("d", 3, 1.0)["decision"] == "promoted"  # the top of its range is valid


def test_promotion_refuses_a_confident_fraction_outside_0_1(tmp_path):
    metrics = make_eval(tmp_path, {"fid": 40.0, "classifier_confident": 1.5}, PROTOCOL)
    cfg = config(
        tmp_path,
        make_run(tmp_path, "a", 0),
        metrics,
        primary_metric="classifier_confident",
        mode="max",
    )
    with pytest.raises(GanError, match="outside its possible range"):
        promote(cfg)
