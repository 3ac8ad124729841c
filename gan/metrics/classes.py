"""Class-aware figures from the dataset's own classifier (the metrics that need ``classifier``).

Measured once per evaluation, whatever the extractors, wherever `gan classifier` trained
a classifier on the data: classifier IS, class coverage and entropy, the fraction of
samples it is confident about (``classifier_confident``: top class probability >=
`evaluate.confident_threshold`) and the same fraction on the real reference split
(``classifier_confident_real``, the ceiling); for conditional families, the fraction of
samples classified as the class they were asked for (``conditional_accuracy``).
"""

from __future__ import annotations

import math

import torch

from gan.metrics.classifier import Classifier, predict_logits
from gan.metrics.core import confident_fraction
from gan.metrics.registry import MetricInputs, registered
from gan.metrics.settings import MeasureSettings


def conditional_accuracy(logits: torch.Tensor, requested: torch.Tensor) -> float:
    """Fraction of rows whose top class is the one `requested` for them."""
    pred = logits.argmax(1)
    return float((pred == requested.to(pred.device)).double().mean())


def class_figures(
    logits: torch.Tensor, requested: torch.Tensor | None = None, threshold: float = 0.8
) -> dict[str, float]:
    """Classifier IS, class coverage and entropy, the confident fraction, and (with
    `requested`) conditional accuracy.

    IS = exp(mean KL(p(y|x) || p(y))); coverage = fraction of classes predicted at least once;
    entropy = entropy of the predicted-class histogram over log(num_classes), 1 when uniform;
    confident = fraction of samples whose top class probability is >= `threshold`.
    """
    logits = logits.double()
    k = logits.shape[1]
    log_p = logits.log_softmax(1)
    log_marginal = log_p.exp().mean(0).log()
    kl = (log_p.exp() * (log_p - log_marginal)).sum(1).mean()
    pred = logits.argmax(1)
    hist = torch.bincount(pred, minlength=k).double() / len(pred)
    nz = hist[hist > 0]
    out = {
        "classifier_is": float(kl.exp()),
        "class_coverage": float((hist > 0).double().mean()),
        "class_entropy": float(-(nz * nz.log()).sum() / math.log(k)) if k > 1 else 1.0,
        "classifier_confident": confident_fraction(logits, threshold),
    }
    if requested is not None:
        out["conditional_accuracy"] = conditional_accuracy(logits, requested)
    return out


def classes_metric(inputs: MetricInputs) -> dict[str, float]:
    threshold = inputs.settings.confident_threshold
    figures = class_figures(inputs.fake["classifier"], None, threshold)
    figures["classifier_confident_real"] = confident_fraction(inputs.real["classifier"], threshold)
    return figures


def conditional_metric(inputs: MetricInputs) -> dict[str, float]:
    return {"conditional_accuracy": conditional_accuracy(inputs.fake["classifier"], inputs.labels)}


def classifier_metrics(
    model: Classifier,
    fake: torch.Tensor,
    real: torch.Tensor,
    settings: MeasureSettings,
    labels: torch.Tensor | None = None,
    names: set[str] | None = None,
) -> dict[str, float]:
    """The figures of the registered metrics that need the classifier (those of `names`
    only, when given), from its logits of `fake` and of the reference images `real`;
    metrics that need ``labels`` only with `labels`."""
    chosen = [
        m
        for m in registered().values()
        if "classifier" in m.needs
        and (names is None or m.name in names)
        and (labels is not None or "labels" not in m.needs)
    ]
    if not chosen:
        return {}
    with_reference = any("reference" in m.needs for m in chosen)
    inputs = MetricInputs(
        fake={"classifier": predict_logits(model, fake)},
        real={"classifier": predict_logits(model, real)} if with_reference else {},
        settings=settings,
        labels=labels,
    )
    found: dict[str, float] = {}
    for metric in chosen:
        found |= metric(inputs)
    return found
