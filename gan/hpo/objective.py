"""One Optuna trial: train with the sampled params for the budget, reporting on the way.

Every `hpo.report_every` steps a step hook measures the report metric (KID on a small
sample by default) of the EMA generator against the reference split and reports it, so
the pruner can stop a bad trial early. At the last step the objective (any figure of a
registered metric, gan.metrics.registry: FID or KID, minimised, by default; a figure
where higher is better, such as `classifier_confident` under the evaluate section's
classifier and `evaluate.confident_threshold`, maximised) is measured on
`hpo.objective_samples` samples under the evaluate section's measurement settings and
default extractor: trials are compared under one protocol, the same one `gan evaluate`
uses. Reports are signed to agree with the study's direction: in a maximised study a
minimised report metric (FID, KID) is reported negated, so the pruner stops the trials
that are worst by it (`reported_value` turns it back for tables and plots).

Translation families (CycleGAN) are measured as `gan evaluate` measures them: test-A
translated against real test-B and back (up to n images per direction), and the mean of
the two directions is the trial's figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from pydantic import ValidationError

from gan.config import EvaluateConfig, HpoConfig, Params, TrainConfig
from gan.device import pick_device
from gan.errors import GanError
from gan.export import Exported
from gan.hpo.space import suggest, with_values
from gan.metrics.classes import classifier_metrics
from gan.metrics.classifier import Classifier
from gan.metrics.core import (
    checked_classifier,
    generate_samples,
    is_translation,
    reference_content_hash,
    reference_split,
    score,
)
from gan.metrics.registry import Metric, metric_of, ranked_figures
from gan.metrics.settings import FeatureCache, MeasureSettings, settings_from
from gan.metrics.translation import DIRECTIONS, translate_images
from gan.models import get_family
from gan.training.inference import inference_copy
from gan.training.loop import train

FINAL_METRICS = ("fid", "kid")  # kept as user attrs beside the objective, whatever it is


def direction(objective: str) -> str:
    """The Optuna direction of a study with this objective."""
    return "maximize" if ranked_figures()[objective] else "minimize"


def metric_writing(figure: str) -> Metric:
    """The registered metric that measures `figure`."""
    metric = metric_of(figure)
    if metric is None:
        raise GanError(f"{figure!r} is not a figure of a registered metric")
    return metric


def needs_classifier(objective: str) -> bool:
    """Whether the objective is measured with the evaluate section's classifier."""
    return "classifier" in metric_writing(objective).needs


def report_sign(hpo: HpoConfig) -> float:
    """+1 when the report metric improves in the objective's direction, else -1."""
    return 1.0 if direction(hpo.report_metric) == direction(hpo.objective) else -1.0


def reported_value(value: float | None, hpo: HpoConfig) -> float | None:
    """A trial's stored intermediate value as the report metric itself."""
    return None if value is None else value * report_sign(hpo)


@dataclass
class Reference:
    """What every measurement of a study compares against, loaded once per worker."""

    settings: MeasureSettings  # the evaluate section's; each measurement sets its count
    real: dict[str, torch.Tensor]  # test images by domain ("" when the data has one)
    cache: FeatureCache
    classifier: Classifier | None = None  # loaded when the objective needs it
    classifier_sha256: str | None = None

    @property
    def content_hash(self) -> str:
        return self.cache.content_hash


def load_reference(
    train_cfg: TrainConfig, evaluate: EvaluateConfig, classifier: bool = False
) -> Reference:
    """The study's reference; `classifier`: also load evaluate.classifier (checked against
    the data) for an objective that needs it (classifier_confident)."""
    settings = settings_from(evaluate, 0, extras=False)  # each measurement sets its count
    content_hash = reference_content_hash(train_cfg.data)
    translation = is_translation(get_family(train_cfg.model.family))
    _, real = reference_split(train_cfg.data, settings.reference_split, translation)
    trained = (
        checked_classifier(evaluate.classifier, content_hash, train_cfg.data)
        if classifier
        else None
    )
    cuda = pick_device(train_cfg.device).type == "cuda"
    return Reference(
        settings,
        real,
        FeatureCache(content_hash, evaluate.cache_dir, cuda),
        trained.model if trained else None,
        trained.weights_sha256 if trained else None,
    )


Sampler = Callable[[int, int, int], dict[str, torch.Tensor]]


def sampler_of(session, ref: Reference) -> Sampler:
    """`sample(n, seed, batch_size)`: uint8 images of the session's EMA generator, by the
    domain they should match. Fixed latents (or the fixed test images a translation family
    translates) keep trials comparable; samples come from gan.metrics.core.generate_samples
    with `evaluate.truncation`, the code and setting `gan evaluate` uses.

    One inference copy (batch-norm standing statistics) serves every call, so a step that
    measures twice pays for it once.
    """
    family = session.family
    k = session.data.num_classes

    def labels_for(m: int, device: torch.device) -> torch.Tensor | None:
        return torch.arange(m, device=device) % k if k > 0 else None

    G = inference_copy(family.nets[family.export_net], family, labels_for if k > 0 else None)

    @torch.no_grad()
    def translate(n: int, seed: int, batch_size: int) -> dict[str, torch.Tensor]:
        return {
            dst: translate_images(family, G, ref.real[src][:n], direction, batch_size)
            for direction, (src, dst) in DIRECTIONS.items()
        }

    def sample(n: int, seed: int, batch_size: int) -> dict[str, torch.Tensor]:
        # sampled exactly as `gan evaluate` does
        conditional = family.is_conditional(family.cfg, session.data)
        exported = Exported(family, G, {}, session.data, conditional)
        truncation = ref.settings.truncation
        return {"": generate_samples(exported, n, seed, batch_size, truncation, False)[0]}

    return translate if is_translation(family) else sample


def measure(ref: Reference, sample: Sampler, n: int, figures: list[str]) -> dict[str, float]:
    """`figures` of n generated (or per direction, translated) images against the reference
    split; with two domains, the mean over the directions, as `gan evaluate` reports it.
    A figure of a metric that needs the classifier needs the reference's (load_reference)."""
    metrics = {m.name: m for m in map(metric_writing, figures)}
    on_classifier = {name for name, m in metrics.items() if "classifier" in m.needs}
    if on_classifier and ref.classifier is None:
        raise GanError(
            f"{', '.join(figures)}: needs the classifier: load_reference(..., classifier=True)"
        )
    on_extractor = [name for name, m in metrics.items() if m.per_extractor]
    settings = ref.settings.with_samples(n)
    results = []
    for d, fake in sample(n, settings.seed, settings.batch_size).items():
        real = ref.real[d]
        result = {}
        if on_extractor:
            split = f"{settings.reference_split}{d}"
            result = score(fake, real, settings.extractor, on_extractor, settings, ref.cache, split)
        if on_classifier:
            result |= classifier_metrics(ref.classifier, fake, real, settings, names=on_classifier)
        results.append(result)
    return {f: sum(r.get(f, math.nan) for r in results) / len(results) for f in figures}


class ReportHook:
    """Trainer step hook: report at intervals, prune when told, measure the objective last."""

    def __init__(self, trial: optuna.Trial, ref: Reference, hpo: HpoConfig, log: Callable) -> None:
        self.trial, self.ref, self.hpo, self.log = trial, ref, hpo, log
        self.final: dict[str, float] = {}

    def __call__(self, done: int, session) -> None:
        hpo = self.hpo
        last = done == hpo.budget_steps
        if done % hpo.report_every and not last:
            return
        sample = sampler_of(session, self.ref)
        value = measure(self.ref, sample, hpo.report_samples, [hpo.report_metric])[
            hpo.report_metric
        ]
        if not math.isfinite(value):
            raise GanError(f"{hpo.report_metric} is {value} at step {done}")
        self.trial.report(value * report_sign(hpo), done)
        self.log(f"trial {self.trial.number} step {done}: {hpo.report_metric} {value:.4g}")
        if last:
            final = list(dict.fromkeys([*FINAL_METRICS, hpo.objective]))
            self.final = measure(self.ref, sample, hpo.objective_samples, final)
        elif self.trial.should_prune():
            raise optuna.TrialPruned(f"{hpo.report_metric} {value:.4g} at step {done}")


def trial_config(
    params: Params, values: dict[str, Any], number: int, progress: bool = False
) -> TrainConfig:
    """The train section with the trial's values, its own run dir and the step budget."""
    hpo = params.hpo
    steps = hpo.budget_steps
    return with_values(
        params.train,
        values,
        steps=steps,
        runs_dir=str(Path(hpo.runs_dir) / hpo.study),
        run=f"trial-{number}",
        resume=False,
        progress=progress,
        checkpoint_every=steps,
        sample_every=steps,
        keep_checkpoints=1,
        metrics_every=0,  # a trial is measured by its report hook, not by snapshots
        export="last",
    )


def _fail(trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("fail_reason", reason)


def make_objective(
    params: Params,
    ref: Reference,
    worker: dict[str, Any],
    log: Callable[[str], None],
    progress: bool = False,
) -> Callable[[optuna.Trial], float]:
    """The function `study.optimize` calls; a failure is recorded with its reason, then raised."""
    hpo = params.hpo

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        hook = ReportHook(trial, ref, hpo, log)
        try:
            values = suggest(trial, hpo.space)
            try:
                cfg = trial_config(params, values, trial.number, progress)
            except ValidationError as exc:
                errors = "; ".join(
                    f"train.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                )
                raise GanError(f"sampled params are not valid: {errors}") from None
            trial.set_user_attr("run_dir", str(cfg.run_dir))
            train(cfg, hooks=[hook])
        except optuna.TrialPruned:
            raise
        except GanError as exc:
            _fail(trial, str(exc))
            raise
        except Exception as exc:
            _fail(trial, f"{type(exc).__name__}: {exc}")
            raise
        for name, v in hook.final.items():
            trial.set_user_attr(name, v)
        value = hook.final.get(hpo.objective, float("nan"))
        if not math.isfinite(value):
            _fail(trial, f"objective {hpo.objective} is {value}")
            raise GanError(f"objective {hpo.objective} is {value}")
        return value

    return objective
