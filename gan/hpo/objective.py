"""One Optuna trial: train with the sampled params for the budget, reporting on the way.

Every `hpo.report_every` steps a step hook measures the report metric (KID on a small
sample by default) of the EMA generator against the reference split and reports it, so
the pruner can stop a bad trial early. At the last step the objective (FID or KID,
minimised, or `classifier_confident` under the evaluate section's classifier and
`evaluate.confident_threshold`, maximised) is measured on `hpo.objective_samples` samples,
under the evaluate section's extractor: trials are compared under one protocol, the same
one `gan evaluate` uses. Reports are signed to agree with the study's direction: in a
maximised study a minimised report metric (FID, KID) is reported negated, so the pruner
stops the trials that are worst by it (`reported_value` turns it back for tables and plots).

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

from gan.config import MAXIMIZED, EvaluateConfig, HpoConfig, Params, TrainConfig
from gan.data.shards import load_split
from gan.device import pick_device
from gan.errors import GanError
from gan.export import Exported
from gan.hpo.space import suggest, with_values
from gan.metrics.classifier import Classifier, predict_logits
from gan.metrics.core import (
    REFERENCE_SPLIT,
    checked_classifier,
    confident_fraction,
    generate_samples,
    is_translation,
    reference_content_hash,
    score,
)
from gan.metrics.extractors import Extractor, resolve_extractor
from gan.metrics.fidelity import kid_subset
from gan.metrics.translation import DIRECTIONS, translate_images
from gan.models import get_family
from gan.training.inference import inference_copy
from gan.training.loop import train

FINAL_METRICS = ("fid", "kid")  # both are kept as user attrs; hpo.objective picks the value
CONFIDENT = "classifier_confident"  # measured with the classifier, not torch-fidelity


def direction(objective: str) -> str:
    """The Optuna direction of a study with this objective."""
    return "maximize" if objective in MAXIMIZED else "minimize"


def report_sign(hpo: HpoConfig) -> float:
    """+1 when the report metric improves in the objective's direction, else -1."""
    return 1.0 if direction(hpo.report_metric) == direction(hpo.objective) else -1.0


def reported_value(value: float | None, hpo: HpoConfig) -> float | None:
    """A trial's stored intermediate value as the report metric itself."""
    return None if value is None else value * report_sign(hpo)


@dataclass
class Reference:
    """What every measurement of a study compares against, loaded once per worker."""

    extractor: Extractor
    real: dict[str, torch.Tensor]  # test images by domain ("" when the data has one)
    content_hash: str
    cache_dir: str
    seed: int
    batch_size: int
    kid_subset_size: int | None  # None: the largest the counts allow
    cuda: bool
    truncation: float = 1.0
    classifier: Classifier | None = None  # loaded when the objective is classifier_confident
    classifier_sha256: str | None = None
    confident_threshold: float = 0.8


def load_reference(
    train_cfg: TrainConfig, evaluate: EvaluateConfig, classifier: bool = False
) -> Reference:
    """The study's reference; `classifier`: also load evaluate.classifier (checked against
    the data) for the classifier_confident objective."""
    extractor = resolve_extractor(
        evaluate.extractor, evaluate.classifier, evaluate.inception_weights
    )
    content_hash = reference_content_hash(train_cfg.data)
    split = load_split(train_cfg.data, REFERENCE_SPLIT)
    if is_translation(get_family(train_cfg.model.family)):
        real = {d: split.domain(i).images for i, d in enumerate("AB")}
    else:
        real = {"": split.images}
    for d, images in real.items():
        if len(images) < 2:
            where = f" of domain {d}" if d else ""
            raise GanError(
                f"{train_cfg.data}: the {REFERENCE_SPLIT!r} split needs at least 2 images{where}"
            )
    trained = (
        checked_classifier(evaluate.classifier, content_hash, train_cfg.data)
        if classifier
        else None
    )
    return Reference(
        extractor,
        real,
        content_hash,
        evaluate.cache_dir,
        evaluate.seed,
        evaluate.batch_size,
        evaluate.kid_subset_size,
        pick_device(train_cfg.device).type == "cuda",
        evaluate.truncation,
        trained.model if trained else None,
        trained.weights_sha256 if trained else None,
        evaluate.confident_threshold,
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
        return {"": generate_samples(exported, n, seed, batch_size, ref.truncation, False)[0]}

    return translate if is_translation(family) else sample


def measure(ref: Reference, sample: Sampler, n: int, metrics: list[str]) -> dict[str, float]:
    """`metrics` of n generated (or per direction, translated) images against the reference
    split; with two domains, the mean over the directions, as `gan evaluate` reports it.
    classifier_confident needs the reference's classifier (see load_reference)."""
    if CONFIDENT in metrics and ref.classifier is None:
        raise GanError(f"{CONFIDENT} needs the classifier: load_reference(..., classifier=True)")
    fidelity = [m for m in metrics if m != CONFIDENT]
    results = []
    for d, fake in sample(n, ref.seed, ref.batch_size).items():
        real = ref.real[d]
        result = {}
        if fidelity:
            result = score(
                fake,
                real,
                ref.extractor,
                fidelity,
                split=f"{REFERENCE_SPLIT}{d}",
                content_hash=ref.content_hash,
                seed=ref.seed,
                batch_size=ref.batch_size,
                kid_subset_size=kid_subset(ref.kid_subset_size, len(fake), len(real)),
                cache_dir=ref.cache_dir,
                cuda=ref.cuda,
            )
        if CONFIDENT in metrics:
            logits = predict_logits(ref.classifier, fake)
            result[CONFIDENT] = confident_fraction(logits, ref.confident_threshold)
        results.append(result)
    return {m: sum(r[m] for r in results) / len(results) for m in metrics}


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
            final = [*FINAL_METRICS, *([CONFIDENT] if self.ref.classifier is not None else [])]
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
