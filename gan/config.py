"""params.yaml parsed once into typed, validated configs (docs/architecture.md, 'Configuration').

Unknown keys, wrong types and impossible values fail before any work starts, and the
error names the key, e.g. ``params.yaml: train.batch_size: must be greater than 0``.
Each model family validates its own ``train.model`` section through the model registry
(gan/train_config.py: the train section and its own sections).
This module is the schema; reading a file (YAML, overrides, error lines) is in
gan/params_file.py, whose load/parse functions are bound to the schema at the end here.
Beside it: the base every section shares (gan/schema.py), the paths derived from the keys
that name them (gan/paths.py), the grammar of hpo.space (gan/hpo/grammar.py) and which
train keys count in a run's fingerprint (gan/training/fingerprint.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from gan.hpo.grammar import SearchParam, default_space
from gan.metrics import registry as metric_registry
from gan.params_file import read_params_file, validate
from gan.paths import derive_paths
from gan.schema import MAX_BATCH, Name, Section, Seed
from gan.train_config import TrainConfig


class PrepareConfig(Section):
    dataset: Literal["digits", "digits-restyled"] = "digits"
    out: str = "data/raw/digits"
    truth: str | None = None  # digits-restyled: where each test image's exact translation goes


class PreprocessConfig(Section):
    # The name of the data, the one key to change for your own: input defaults to
    # data/raw/<dataset>, output to data/processed/<dataset>, and the classifier and the
    # registry follow it (gan/paths.py); dvc.yaml's paths are written from it.
    dataset: Name | None = None
    # a folder of images, or a file a dataset ships in (gan/data/sources/): a stylegan2-ada
    # dataset zip, CIFAR-10's binary archive, an MNIST-style IDX images file
    input: str = "data/raw/digits"
    output: str = "data/processed/digits"
    resolution: int = 32
    channels: Literal[1, 3] = 1
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    min_size: int = Field(8, gt=0)
    seed: Seed = 0
    shard_size: int = Field(4096, gt=0)
    follow_symlinks: bool = False  # read links to files outside input (else: rejected, listed)

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v < 8 or v > 1024 or v & (v - 1):
            raise ValueError("must be a power of two between 8 and 1024")
        return v


class ClassifierConfig(Section):
    """The offline feature extractor: a small CNN trained on the train split (a classifier,
    or an autoencoder for data without labels; gan.metrics.classifier)."""

    data: str = "data/processed/digits"
    output: str = "models/classifier"
    # auto: a classifier when the data has labels, else an autoencoder (default: follows
    # evaluate.extractor when that names one of the two)
    kind: Literal["auto", "classifier", "autoencoder"] = "auto"
    epochs: int = Field(8, gt=0)
    batch_size: int = Field(128, gt=0, le=MAX_BATCH)
    lr: float = Field(1e-3, gt=0.0)
    lr_decay: Literal["none", "cosine"] = "none"  # cosine: to zero over the run
    feature_dim: int = Field(128, gt=0)
    translate: float = Field(0.0625, ge=0.0, lt=0.5)  # random shift, fraction of the size
    dropout: float = Field(0.3, ge=0.0, lt=1.0)  # before the feature and the output layer
    seed: Seed = 0


class ExtractorSpec(Section):
    """One more extractor evaluate measures with; its figures are keyed <figure>@<label>."""

    extractor: str  # as evaluate.extractor: auto | classifier | autoencoder | ... | module:name
    # classifier, autoencoder, auto: their folder (default evaluate.classifier);
    # inception-v3-compat: the weights file (default evaluate.inception_weights)
    weights: str | None = None


# names from the metric registry (gan.metrics.registry), validated as the Literals were
MetricName = Annotated[str, AfterValidator(metric_registry.check_metric_name)]
RankedFigure = Annotated[str, AfterValidator(metric_registry.check_ranked)]
HpoFigure = Annotated[str, AfterValidator(metric_registry.check_hpo_figure)]


class EvaluateConfig(Section):
    data: str = "data/processed/digits"
    run_dir: str = "runs/default"
    output: str = "reports/evaluate"
    # auto (what the classifier stage trained) | classifier | autoencoder |
    # inception-v3-compat | a registered name (gan.metrics.extractors)
    extractor: str = "auto"
    extra_extractors: dict[Name, ExtractorSpec] = {}  # by label: figures keyed fid@<label>
    classifier: str = "models/classifier"
    inception_weights: str | None = None
    truth: str | None = None  # translation: a folder of exact translations, by test file path
    # a folder of images to score in place of run_dir's generator (`gan evaluate --images`)
    images: str | None = None
    num_samples: int | None = Field(None, ge=2)  # default: size of the train split
    batch_size: int = Field(64, gt=0, le=MAX_BATCH)
    seed: Seed = 0
    # default: every registered metric measured with an extractor (fid, kid, isc, prc, dc)
    metrics: list[MetricName] = Field(default_factory=metric_registry.extractor_metric_names)
    kid_subset_size: int | None = Field(None, gt=1)  # None: the largest the counts allow
    # classifier_confident: fraction of samples whose top class probability is >= this
    confident_threshold: float = Field(0.8, gt=0.0, le=1.0)
    truncation: float = Field(1.0, gt=0.0)
    cache_dir: str = ".cache/fidelity"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"


class PromoteConfig(Section):
    registry: str = "registry"
    metrics: str = "reports/evaluate/metrics.json"
    run_dir: str = "runs/default"
    primary_metric: RankedFigure = "fid"  # fid_AtoB, fid@<extractor label> too
    mode: Literal["min", "max"] = "min"
    margin: float = Field(0.0, ge=0.0)
    report: str = "reports/promote"
    # promote even when evaluate's extractor is too weak to judge (gan.metrics.extractor_quality)
    allow_weak_extractor: bool = False
    # also keep the generator as ONNX with a promoted version (gan/onnx_export.py; needs
    # `pip install 'ganops[onnx]'`)
    onnx: bool = False

    @model_validator(mode="after")
    def _mode_follows_the_figure(self) -> PromoteConfig:
        """A mode against the figure's direction would promote worse models."""
        found = metric_registry.figure(self.primary_metric)
        want = "max" if found is not None and found.higher_is_better else "min"
        if self.mode != want:
            raise ValueError(
                f"mode: {self.primary_metric} is better when {'higher' if want == 'max' else 'lower'}"
                f"; set mode: {want}"
            )
        return self


class HpoSamplerConfig(Section):
    name: Literal["tpe", "random"] = "tpe"
    seed: Seed = 0
    n_startup_trials: int = Field(5, ge=0)  # tpe: random trials before the model takes over


class HpoPrunerConfig(Section):
    name: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(3, ge=0)  # median: finished trials before any pruning
    n_warmup_steps: int = Field(0, ge=0)  # median: train steps before a trial can be pruned
    min_resource: int | None = Field(None, gt=0)  # hyperband: steps of the first rung
    reduction_factor: int = Field(3, ge=2)  # hyperband


class HpoConfig(Section):
    """The Optuna search over train params (gan/hpo/); space keys are paths inside train."""

    study: Name = "default"
    storage: str = "runs/hpo/optuna.journal"  # a journal file path, or sqlite:///, postgresql://
    runs_dir: str = "runs/hpo"  # trial runs go to <runs_dir>/<study>/trial-<n>
    output: str = "reports/hpo"
    n_trials: int = Field(20, gt=0)
    budget_steps: int = Field(500, gt=0)
    report_every: int = Field(100, gt=0)
    # a registered figure (gan.metrics.registry), maximised when higher is better
    objective: HpoFigure = "fid"
    report_metric: HpoFigure = "kid"
    report_samples: int = Field(256, ge=2)
    objective_samples: int = Field(1000, ge=2)
    enqueue_current: bool = True
    heartbeat_seconds: int = Field(60, gt=0)
    sampler: HpoSamplerConfig = Field(default_factory=HpoSamplerConfig)
    pruner: HpoPrunerConfig = Field(default_factory=HpoPrunerConfig)
    space: dict[str, SearchParam] = Field(default_factory=default_space)

    @model_validator(mode="after")
    def _budget(self) -> HpoConfig:
        if self.report_every > self.budget_steps:
            raise ValueError("report_every must not exceed budget_steps")
        if self.pruner.min_resource and self.pruner.min_resource > self.budget_steps:
            raise ValueError("pruner.min_resource must not exceed budget_steps")
        if not self.space:
            raise ValueError("space: give at least one param to search")
        return self


class Params(Section):
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    promote: PromoteConfig = Field(default_factory=PromoteConfig)
    hpo: HpoConfig = Field(default_factory=HpoConfig)

    @model_validator(mode="after")
    def _primary_metric_has_its_extractor(self) -> Params:
        label = metric_registry.split_key(self.promote.primary_metric)[1]
        if label and label not in self.evaluate.extra_extractors:
            known = ", ".join(sorted(self.evaluate.extra_extractors)) or "none"
            raise ValueError(
                f"promote.primary_metric: {self.promote.primary_metric} names extractor label "
                f"{label!r}, which evaluate.extra_extractors does not have (it has: {known})"
            )
        return self

    @model_validator(mode="after")
    def _derive_paths(self) -> Params:
        """Paths params.yaml leaves unset follow the one key that names them (gan/paths.py);
        classifier.kind follows evaluate.extractor when that asks for classifier or
        autoencoder (what evaluate will load)."""
        derive_paths(self, self._fill)
        if self.evaluate.extractor in ("classifier", "autoencoder"):
            self._fill("classifier", {"kind": self.evaluate.extractor})
        return self

    def _fill(self, name: str, derived: dict[str, Any]) -> None:
        section = getattr(self, name)
        unset = {k: v for k, v in derived.items() if k not in section.model_fields_set}
        if unset:  # a copy: a section passed in by the caller is never changed
            setattr(self, name, section.model_copy(update=unset))


def parse_params(data: dict[str, Any] | None, source: str = "params.yaml") -> Params:
    """A params mapping validated into Params; errors name `source` and the key."""
    return validate(Params, data, source)


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Read and validate params.yaml; `overrides` are dotted ``key=value`` pairs (YAML values)."""
    return parse_params(read_params_file(path, overrides), str(Path(path)))


def dump_section(section: BaseModel) -> dict[str, Any]:
    """A JSON-safe dict of a section, for checkpoints, metrics and the registry."""
    # serialize_as_any: `train.model` is declared as the base ModelConfig; without it the
    # family's own fields (loss, width, ...) would be silently dropped.
    return section.model_dump(mode="json", serialize_as_any=True)


def dump_as_given(section: BaseModel) -> dict[str, Any]:
    """Only the keys the section was given (or derived), for rebuilding it in another
    process or with changed values: validating this gives back the same keys unset, so
    what fills unset keys later (a family's paper optimiser settings) still applies."""
    return section.model_dump(mode="json", serialize_as_any=True, exclude_unset=True)
