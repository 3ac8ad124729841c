"""params.yaml parsed once into typed, validated configs (docs/architecture.md, 'Configuration').

Unknown keys, wrong types and impossible values fail before any work starts, and the
error names the key, e.g. ``params.yaml: train.batch_size: must be greater than 0``.
Each model family validates its own ``train.model`` section through the model registry.
This module is the schema; reading a file (YAML, overrides, error lines) is in
gan/params_file.py, whose load/parse functions are bound to the schema at the end here.
Beside it: the base every section shares (gan/schema.py), the paths derived from the keys
that name them (gan/paths.py), the grammar of hpo.space (gan/hpo/grammar.py) and which
train keys count in a run's fingerprint (gan/training/fingerprint.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from gan.errors import GanError
from gan.hpo.grammar import SearchParam, default_space
from gan.metrics import registry as metric_registry
from gan.params_file import read_params_file, validate
from gan.paths import derive_paths, run_dir
from gan.schema import MAX_BATCH, Name, Section, Seed


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


class AdaConfig(Section):
    """Adaptive discriminator augmentation (StyleGAN2-ADA; gan/data/ada.py).

    off: none; fixed: every transform with probability `p`; adaptive: `p` starts at `p` and
    every `interval` D passes moves by batch * interval / (kimg * 1000) towards
    r_t = E[sign(D(real))] == `target`.
    """

    mode: Literal["off", "adaptive", "fixed"] = "off"
    p: float = Field(0.0, ge=0.0, lt=1.0)
    target: float = Field(0.6, gt=0.0, lt=1.0)
    interval: int = Field(4, gt=0)
    kimg: float = Field(500.0, gt=0.0)
    groups: list[Literal["geometric", "color"]] = ["geometric", "color"]

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        return "off" if v is False else v  # YAML 1.1 reads a bare `off` as false

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("give geometric and/or color, each once")
        return v


class AugmentConfig(Section):
    """What D sees: real images flipped (`flip`, at loading), then every D input (real and
    fake) translated DiffAugment-style (`translate`), then through ADA (`ada`)."""

    flip: bool = False
    translate: float = Field(0.0, ge=0.0, le=0.5)
    ada: AdaConfig = Field(default_factory=AdaConfig)


class OptimConfig(Section):
    g_lr: float = Field(2e-4, gt=0.0)
    d_lr: float = Field(2e-4, gt=0.0)
    g_betas: tuple[float, float] = (0.5, 0.999)
    d_betas: tuple[float, float] = (0.5, 0.999)

    @field_validator("g_betas", "d_betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("each beta must be in [0, 1)")
        return v


class EmaConfig(Section):
    decay: float = Field(0.999, ge=0.0, lt=1.0)
    warmup_steps: int = Field(100, ge=0)


class LrScheduleConfig(Section):
    """Constant learning rate, then linear decay to zero (CycleGAN); decay_steps 0 = constant."""

    constant_steps: int = Field(0, ge=0)
    decay_steps: int = Field(0, ge=0)


class ModelConfig(Section):
    """Base of each family's model section; the family field picks the subclass."""

    family: str
    # sizes and weights derived from the data's resolution and the batch when training
    # starts (gan/training/preset.py); a key params.yaml sets wins over the derived one
    preset: str | None = None
    # the adversarial objectives (gan/objectives.py) this family's `loss` may name; None:
    # every registered one
    objectives: ClassVar[tuple[str, ...] | None] = None
    presets: ClassVar[tuple[str, ...]] = ()  # the names `preset` may take for this family

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str | None) -> str | None:
        if v is not None and v not in cls.presets:
            family = cls.model_fields["family"].default
            has = f"has: {', '.join(cls.presets)}" if cls.presets else "has none"
            raise ValueError(f"unknown preset {v!r}; {family} {has} (or leave preset unset)")
        return v

    @field_validator("loss", check_fields=False)
    @classmethod
    def _registered_objective(cls, v: str) -> str:
        from gan.objectives import check_objective

        return check_objective(v, cls.objectives)


class TrainConfig(Section):
    data: str = "data/processed/digits"
    runs_dir: str = "runs"
    run: Name = "default"
    seed: Seed = 0
    steps: int = Field(2000, gt=0, le=10**9)
    batch_size: int = Field(64, gt=0, le=MAX_BATCH)  # and at most the train split (loop.py)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"  # auto: CUDA, or the family's CPU choice
    reuse_fake: bool = True  # G's step reuses D's fake batch where the family allows (Phase)
    compile: bool = False  # torch.compile the trained G and D (the time to compile counts)
    model: ModelConfig = Field(default_factory=lambda: {"family": "dcgan"})
    optim: OptimConfig = Field(default_factory=OptimConfig)
    lr_schedule: LrScheduleConfig = Field(default_factory=LrScheduleConfig)
    ema: EmaConfig = Field(default_factory=EmaConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    log_every: int = Field(50, gt=0)
    sample_every: int = Field(500, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    keep_set_aside: int = Field(3, ge=0)  # generations of checkpoints moved aside (0: delete)
    grid_size: int = Field(64, gt=0, le=1024)
    resume: bool = True
    init_from: str | None = None
    progress: bool = True
    threads: int | None = Field(None, gt=0)  # CPU threads for torch; None: one per core
    world_size: int = Field(1, gt=0)  # data-parallel processes (one per GPU); batch_size is global
    # snapshots (gan/training/snapshots.py): every metrics_every steps and at the last (0:
    # none), FID and KID of metrics_samples samples under the evaluate section's settings
    metrics_every: int = Field(0, ge=0)
    metrics_samples: int = Field(256, ge=2)
    best_metric: Literal["fid", "kid"] = "fid"  # what picks the best snapshot
    export: Literal["last", "best"] = "last"  # best: the best snapshot's EMA generator

    @model_validator(mode="after")
    def _best_needs_snapshots(self) -> TrainConfig:
        if self.export == "best" and not self.metrics_every:
            raise ValueError(
                "train.export: best picks the best snapshot, but train.metrics_every is 0 "
                "(no snapshots); set train.metrics_every, e.g. 250, or train.export: last"
            )
        return self

    @model_validator(mode="after")
    def _batch_splits_over_ranks(self) -> TrainConfig:
        # a preset may derive the batch: gan/training/preset.py checks the one it trains with
        if self.model.preset is None or "batch_size" in self.model_fields_set:
            self.check_batch_split()
        return self

    def check_batch_split(self) -> None:
        if self.batch_size % self.world_size:
            raise ValueError(
                f"train.batch_size {self.batch_size} must be a multiple of train.world_size "
                f"{self.world_size} (each process takes an equal share of the batch)"
            )

    @field_validator("model", mode="before")
    @classmethod
    def _family_model(cls, v: Any) -> ModelConfig:
        from gan.models import family_config_class

        if isinstance(v, ModelConfig):
            return v
        if not isinstance(v, dict):
            raise ValueError("must be a mapping with a 'family' key")
        v = {"family": "dcgan", **v}
        if not isinstance(v["family"], str):
            raise ValueError("family must be the name of a model family, e.g. dcgan")
        try:
            config_class = family_config_class(v["family"])
        except GanError as exc:
            raise ValueError(str(exc)) from None
        return config_class.model_validate(v)

    @property
    def run_dir(self) -> Path:
        return run_dir(self.runs_dir, self.run)


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
