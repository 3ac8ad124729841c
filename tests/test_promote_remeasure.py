"""A champion measured under an older protocol is re-measured under the candidate's.

Retraining on changed data changes the reference split and the classifier, so the old
champion's metrics are not comparable; promotion must measure it again, not refuse forever.
"""

from __future__ import annotations

import torch
from conftest import digits_tensors, write_dataset
from test_promote import make_run

from gan.config import ClassifierConfig, EvaluateConfig, PromoteConfig
from gan.metrics.classifier import train_classifier
from gan.metrics.evaluate import evaluate, measure
from gan.registry import Registry
from gan.registry.promote import promote


def setup_data(tmp_path, name: str, n: int):
    images, labels = digits_tensors(16)
    data = write_dataset(tmp_path / name, images[:n], labels[:n])
    clf = tmp_path / f"clf-{name}"
    train_classifier(ClassifierConfig(data=str(data), output=str(clf), epochs=1))
    return data, clf


def eval_cfg(tmp_path, data, clf, run) -> EvaluateConfig:
    return EvaluateConfig(
        data=str(data), classifier=str(clf), run_dir=str(run), output=str(tmp_path / "reports" / "evaluate"),
        num_samples=64, kid_subset_size=20, cache_dir=str(tmp_path / "cache"), device="cpu",
    )  # fmt: skip


def promote_cfg(tmp_path, run) -> PromoteConfig:
    return PromoteConfig(
        registry=str(tmp_path / "registry"),
        metrics=str(tmp_path / "reports" / "evaluate" / "metrics.json"),
        run_dir=str(run),
        report=str(tmp_path / "reports" / "promote"),
        allow_weak_extractor=True,  # one-epoch classifiers are weak judges; this is about re-measuring
    )


def test_champion_is_remeasured_when_the_data_changed(tmp_path):
    old_data, old_clf = setup_data(tmp_path, "old", 1200)
    new_data, new_clf = setup_data(tmp_path, "new", 1797)
    run1 = make_run(tmp_path, "first", seed=1)
    evaluate(eval_cfg(tmp_path, old_data, old_clf, run1))
    assert promote(promote_cfg(tmp_path, run1))["decision"] == "promoted"

    # a retrain "on new data": the protocol differs (a rerun of the same weights would be
    # a no-op, as the registry registers an export once)
    run2 = make_run(tmp_path, "second", seed=2)
    evaluate(eval_cfg(tmp_path, new_data, new_clf, run2))
    without = promote(promote_cfg(tmp_path, run2))
    assert without["decision"] == "rejected" and "protocol differs" in without["reason"]

    run3 = make_run(tmp_path, "third", seed=3)
    new_eval = eval_cfg(tmp_path, new_data, new_clf, run3)
    result = evaluate(new_eval)
    decided = promote(promote_cfg(tmp_path, run3), new_eval)
    record = Registry(tmp_path / "registry").show(decided["version"])
    again = record["champion_remeasured"]
    assert again["version"] == 1
    assert (
        again["protocol"]["reference_content_hash"] == result["protocol"]["reference_content_hash"]
    )
    # the champion measured again equals measuring its registry copy directly
    direct = measure(new_eval, Registry(tmp_path / "registry").model_dir(1))
    assert direct.metrics["fid"] == again["metrics"]["fid"]
    assert decided["previous_champion_value"] == again["metrics"]["fid"]
    wins = result["metrics"]["fid"] < again["metrics"]["fid"]
    assert decided["decision"] == ("promoted" if wins else "rejected")
    assert "champion v1" in decided["reason"] and "re-measured" in decided["reason"]


def test_better_candidate_wins_after_remeasure(tmp_path):
    old_data, old_clf = setup_data(tmp_path, "old", 1200)
    new_data, new_clf = setup_data(tmp_path, "new", 1797)
    run1 = make_run(tmp_path, "first", seed=1)
    evaluate(eval_cfg(tmp_path, old_data, old_clf, run1))
    promote(promote_cfg(tmp_path, run1))
    run2 = make_run(tmp_path, "second", seed=2)
    new_eval = eval_cfg(tmp_path, new_data, new_clf, run2)
    evaluate(new_eval)
    # make the candidate's recorded fid strictly better than the re-measured champion
    metrics_path = tmp_path / "reports" / "evaluate" / "metrics.json"
    import json

    metrics = json.loads(metrics_path.read_text())
    metrics["fid"] = metrics["fid"] * 0.5
    metrics_path.write_text(json.dumps(metrics))
    decided = promote(promote_cfg(tmp_path, run2), new_eval)
    assert decided["decision"] == "promoted" and decided["champion"] == decided["version"]
    assert torch.isfinite(torch.tensor(decided["previous_champion_value"]))
