"""Evaluation with real torch-fidelity: the numbers mean something, and never go stale."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import digits_tensors, write_dataset
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gan.config import ClassifierConfig, EvaluateConfig
from gan.errors import GanError
from gan.export import load_export, save_export
from gan.metrics.classifier import load_classifier, predict_logits, train_classifier
from gan.metrics.evaluate import (
    class_figures,
    compute_metrics,
    evaluate,
    generate_samples,
    reference_cache_name,
)
from gan.metrics.extractors import Extractor, register_classifier, resolve_extractor
from gan.metrics.protocol import comparable_protocol
from gan.models import get_family
from gan.models.family import DataInfo

PLUGIN = "ganops_test_pixels"
PLUGIN_NAME = "ganops-test-pixels-v1"


@pytest.fixture(scope="session")
def classifier(digits16, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("classifier")
    return out, train_classifier(ClassifierConfig(data=str(digits16), output=str(out)))


@pytest.fixture(scope="session")
def untrained_run(tmp_path_factory) -> Path:
    """An export of a freshly initialised DCGAN, as a training run would leave it."""
    run = tmp_path_factory.mktemp("run")
    family = get_family("dcgan")
    cfg = family.config_class(width=16)
    data = DataInfo(resolution=16, channels=1, num_classes=10)
    torch.manual_seed(0)
    save_export(
        run / "export",
        "dcgan",
        cfg.model_dump(mode="json"),
        data,
        family.build_generator(cfg, data),
    )
    return run


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> str:
    """A user's module that registers its own extractor on import (downsampled pixels)."""
    (tmp_path / f"{PLUGIN}.py").write_text(
        textwrap.dedent(
            f"""
            import torch, torch.nn.functional as F, torch_fidelity
            from torch_fidelity.feature_extractor_base import FeatureExtractorBase

            class Pixels(FeatureExtractorBase):
                weights_sha256 = "pixels-v1"

                def __init__(self, name, features_list, **kwargs):
                    super().__init__(name, features_list)
                    self.proj = torch.randn(192, 10, generator=torch.Generator().manual_seed(0))

                def forward(self, x):
                    f = F.adaptive_avg_pool2d(x.float() / 255, 8).flatten(1)
                    out = {{"pixels": f, "logits": f @ self.proj}}
                    return tuple(out[k] for k in self.features_list)

                @staticmethod
                def get_provided_features_list():
                    return ("pixels", "logits")

                @staticmethod
                def get_default_feature_layer_for_metric(metric):
                    return "logits" if metric == "isc" else "pixels"

                @staticmethod
                def can_be_compiled():
                    return False

            if "{PLUGIN_NAME}" not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
                torch_fidelity.register_feature_extractor("{PLUGIN_NAME}", Pixels)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{PLUGIN}:{PLUGIN_NAME}"


def _split(data: Path, name: str) -> torch.Tensor:
    from gan.data.shards import load_split

    return load_split(data, name).images


# -- the classifier ------------------------------------------------------------------------
def test_classifier_learns_digits_and_reloads(classifier, digits16):
    out, result = classifier
    assert result["test_accuracy"] > 0.9
    assert json.loads((out / "metrics.json").read_text()) == {
        "test_accuracy": result["test_accuracy"],
        "chance_accuracy": pytest.approx(48 / 360),  # the test split's most common digit
        "skill": pytest.approx((result["test_accuracy"] - 48 / 360) / (1 - 48 / 360)),
    }
    meta = json.loads((out / "classifier.json").read_text())
    manifest = json.loads((digits16 / "manifest.json").read_text())
    assert meta["classes"] == manifest["classes"]
    assert meta["data_content_hash"] == manifest["content_hash"]
    assert meta["architecture"]["feature_dim"] == 128
    trained = load_classifier(out)
    test = _split(digits16, "test")
    acc = (
        (predict_logits(trained.model, test).argmax(1) == _labels(digits16, "test")).float().mean()
    )
    assert float(acc) == pytest.approx(result["test_accuracy"])


def test_classifier_training_is_reproducible(classifier, digits16, tmp_path):
    """Same params, same weights: dropout and shifts draw from seeded streams only, and the
    caller's global random stream is left untouched."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_classifier(ClassifierConfig(data=str(digits16), output=str(tmp_path)))
    assert torch.equal(torch.rand(3), expected)
    first = json.loads((classifier[0] / "classifier.json").read_text())["weights_sha256"]
    again = json.loads((tmp_path / "classifier.json").read_text())["weights_sha256"]
    assert again == first


def _labels(data: Path, name: str) -> torch.Tensor:
    from gan.data.shards import load_split

    return load_split(data, name).labels


def test_the_classifier_kind_needs_labels(tmp_path):
    images, labels = digits_tensors(16)
    data = write_dataset(tmp_path / "data", images[:100], torch.full((100,), -1))
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["classes"] = []
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GanError, match="no class labels.*autoencoder.*inception-v3-compat"):
        train_classifier(
            ClassifierConfig(data=str(data), output=str(tmp_path / "c"), kind="classifier")
        )


# -- the metric means something --------------------------------------------------------------
def test_fid_small_for_real_data_large_for_noise_and_untrained_generator(
    classifier, digits16, untrained_run
):
    ext = register_classifier(classifier[0])
    assert ext.name == "ganops-classifier-" + load_classifier(classifier[0]).weights_sha256[:12]
    assert ext.name in FEATURE_EXTRACTORS_REGISTRY
    train, test = _split(digits16, "train"), _split(digits16, "test")
    noise = torch.randint(
        0, 256, (400, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    fake, _ = generate_samples(load_export(untrained_run / "export"), 400, seed=0, batch_size=200)

    real = compute_metrics(test, train, ext.name)
    vs_noise = compute_metrics(noise, test, ext.name, ("fid", "kid"))
    vs_untrained = compute_metrics(fake, test, ext.name, ("fid", "kid"))
    print(
        f"FID real/real {real['fid']:.3f}, noise {vs_noise['fid']:.1f}, untrained {vs_untrained['fid']:.1f}"
    )

    assert vs_noise["fid"] > 20 * real["fid"]
    assert vs_untrained["fid"] > 20 * real["fid"]
    assert vs_noise["kid"] > 20 * max(real["kid"], 1e-3)
    assert real["recall"] > 0.8 and real["precision"] > 0.8
    assert real["is"] > 5  # ten well-separated classes: IS near 10


def test_class_figures(classifier, digits16):
    trained = load_classifier(classifier[0])
    test, labels = _split(digits16, "test"), _labels(digits16, "test")
    good = class_figures(predict_logits(trained.model, test), requested=labels)
    assert good["conditional_accuracy"] == pytest.approx(classifier[1]["test_accuracy"])
    assert good["class_coverage"] == 1.0 and good["class_entropy"] > 0.95
    assert good["classifier_is"] > 5
    collapsed = class_figures(predict_logits(trained.model, test[:1].repeat(50, 1, 1, 1)))
    assert collapsed["class_coverage"] == pytest.approx(0.1)
    assert collapsed["class_entropy"] == 0.0
    assert collapsed["classifier_is"] == pytest.approx(1.0)


# -- the evaluate stage ----------------------------------------------------------------------
def _cfg(tmp_path, data, run, classifier_dir, **kw) -> EvaluateConfig:
    base = {
        "data": str(data),
        "run_dir": str(run),
        "output": str(tmp_path / "report"),
        "classifier": str(classifier_dir),
        "num_samples": 300,
        "cache_dir": str(tmp_path / "cache"),
        "device": "cpu",
    }
    return EvaluateConfig(**{**base, **kw})


def test_evaluate_writes_metrics_and_is_deterministic(
    tmp_path, classifier, digits16, untrained_run
):
    cfg = _cfg(tmp_path, digits16, untrained_run, classifier[0])
    first = evaluate(cfg)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    second = evaluate(cfg.model_copy(update={"output": str(tmp_path / "again")}))

    assert first == second
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == cached  # reused, not rewritten
    assert [p.split("-")[1] for p in cached] == ["test", "train"]  # the floor's train side too
    report = tmp_path / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics) == {
        "fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage",
        "classifier_is", "class_coverage", "class_entropy", "classifier_test_accuracy",
        "classifier_confident", "classifier_confident_real", "extractor_skill",
        "kid_subset_size", "fid_real_floor", "kid_real_floor", "kid_real_floor_std",
        "real_floor_samples",
    }  # fmt: skip
    assert "conditional_accuracy" not in metrics  # DCGAN ignores labels
    counts = {"kid_subset_size", "real_floor_samples"}
    assert all(isinstance(v, float) for k, v in metrics.items() if k not in counts)
    # the largest KID subset both sides allow (300 samples, 360 test images), and the floor
    # from as many train images as samples
    assert metrics["kid_subset_size"] == 300 and metrics["real_floor_samples"] == 300
    assert 0 < metrics["fid_real_floor"] < metrics["fid"]
    assert (report / "metrics.json").read_bytes() == (
        tmp_path / "again" / "metrics.json"
    ).read_bytes()
    protocol = json.loads((report / "protocol.json").read_text())
    manifest = json.loads((digits16 / "manifest.json").read_text())
    assert protocol["extractor"] == register_classifier(classifier[0]).name
    assert protocol["extractor_weights_sha256"] == load_classifier(classifier[0]).weights_sha256
    assert protocol["reference_content_hash"] == manifest["content_hash"]
    assert (
        protocol["num_samples"] == 300
        and protocol["seed"] == 0
        and protocol["kid_subset_size"] == 300
        and protocol["confident_threshold"] == 0.8
    )
    assert (report / "samples.png").stat().st_size > 0

    other_seed = evaluate(cfg.model_copy(update={"seed": 1, "output": str(tmp_path / "seed1")}))
    assert other_seed["metrics"]["fid"] != first["metrics"]["fid"]
    assert comparable_protocol(other_seed["protocol"]) != comparable_protocol(first["protocol"])


def test_conditional_family_gets_requested_labels_scored(
    tmp_path, classifier, digits16, untrained_run, monkeypatch
):
    """A family declaring `conditional = True` is asked for labels i % 10 and scored on them."""
    monkeypatch.setattr(get_family("dcgan"), "conditional", True, raising=False)
    cfg = _cfg(tmp_path, digits16, untrained_run, classifier[0], metrics=["fid"], num_samples=100)
    metrics = evaluate(cfg)["metrics"]
    assert 0.0 <= metrics["conditional_accuracy"] <= 1.0
    assert set(metrics) >= {"fid", "classifier_is", "class_coverage", "conditional_accuracy"}
    per_class = [metrics[f"fid_class_{k}"] for k in range(10)]  # samples of k vs test k
    assert metrics["fid_class_mean"] == pytest.approx(sum(per_class) / 10)
    assert all(v > 0 for v in per_class) and len(set(per_class)) == 10


def test_stale_reference_cache_is_not_reused(tmp_path, digits16, untrained_run, plugin):
    """A user's extractor by module:name; changed data gets a new cache entry and new numbers."""
    images, labels = digits_tensors(16)
    shifted = write_dataset(tmp_path / "shifted", images.roll(3, dims=-1), labels)
    cfg = _cfg(
        tmp_path,
        digits16,
        untrained_run,
        tmp_path / "no-classifier",
        extractor=plugin,
        metrics=["fid"],
    )
    a = evaluate(cfg)
    b = evaluate(cfg.model_copy(update={"data": str(shifted)}))
    assert a["protocol"]["extractor"] == PLUGIN_NAME
    assert a["protocol"]["extractor_weights_sha256"] == "pixels-v1"
    assert "classifier_is" not in a["metrics"]  # no classifier: no class-aware figures

    ext = Extractor(PLUGIN_NAME, "pixels-v1")
    hashes = [
        json.loads((d / "manifest.json").read_text())["content_hash"] for d in (digits16, shifted)
    ]
    names = [reference_cache_name("test", h, ext) for h in hashes]
    assert names[0] != names[1]
    for name in names:
        assert any(p.name.startswith(name) for p in (tmp_path / "cache").iterdir())
    fake, _ = generate_samples(load_export(untrained_run / "export"), 300, seed=0, batch_size=64)
    fresh = compute_metrics(fake, _split(shifted, "test"), PLUGIN_NAME, ("fid",))
    assert b["metrics"]["fid"] == pytest.approx(fresh["fid"])
    assert b["metrics"]["fid"] != pytest.approx(a["metrics"]["fid"])


# -- resolving extractors ---------------------------------------------------------------------
def test_missing_inception_weights_is_one_clear_error(tmp_path, digits16, untrained_run):
    with pytest.raises(GanError, match="inception_weights is not set.*gan classifier"):
        resolve_extractor("inception-v3-compat", tmp_path / "none", None)
    with pytest.raises(GanError, match=r"missing\.pth: evaluate\.inception_weights file not found"):
        resolve_extractor("inception-v3-compat", tmp_path / "none", str(tmp_path / "missing.pth"))
    cfg = _cfg(
        tmp_path, digits16, untrained_run, tmp_path / "none", extractor="inception-v3-compat"
    )
    with pytest.raises(GanError, match="inception_weights"):
        evaluate(cfg)
    assert not (tmp_path / "report").exists()  # failed before any work
    with pytest.raises(GanError, match="classifier.safetensors: evaluate.classifier not found"):
        resolve_extractor("classifier", tmp_path / "none", None)


def test_inception_weights_must_be_plain_tensors(tmp_path):
    bad = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(1), "extra": Path("x")}, bad)
    with pytest.raises(GanError, match="not a plain weights file"):
        resolve_extractor("inception-v3-compat", tmp_path, str(bad))


def test_unknown_or_downloading_extractors_are_refused(tmp_path):
    with pytest.raises(GanError, match="'nope' is not a registered"):
        resolve_extractor("nope", tmp_path, None)
    with pytest.raises(GanError, match="cannot import 'no_such_module'"):
        resolve_extractor("no_such_module:x", tmp_path, None)
    with pytest.raises(GanError, match="'vgg16' downloads its weights"):
        resolve_extractor("vgg16", tmp_path, None)


def test_comparable_protocol_ignores_only_versions_and_metric_list():
    p = {
        "extractor": "x",
        "seed": 0,
        "num_samples": 10,
        "torch": "2",
        "torch_fidelity": "0.4",
        "metrics": ["fid"],
    }
    assert comparable_protocol(p) == {"extractor": "x", "seed": 0, "num_samples": 10}
