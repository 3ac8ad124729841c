"""The train section of params.yaml: the run, the model (validated by its family), the
optimisers, the learning-rate schedule, EMA and augmentation. Part of the schema in
gan/config.py (its module doc), kept apart as the one section with sections of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from gan.errors import GanError
from gan.paths import run_dir
from gan.schema import MAX_BATCH, Name, Section, Seed


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


class PairingGammas(Section):
    """`r1_gamma` and `r2_gamma` for `loss: rpgan` (DCGAN and BigGAN may take it; R3GAN's
    only loss): (gamma / 2) * R1 on the reals and R2 on the fakes, added by the objective.
    Another loss has no use for them, so setting one there is an error.

    `penalty_every` k > 1 makes them lazy, as StyleGAN2's R1: on every k-th D update only
    (counted across a step's D repeats), weighted by k, so the penalty per update is the
    same on average at about 1/k of its cost (docs/architecture.md, "Objectives")."""

    r1_gamma: float = Field(0.0, ge=0.0)
    r2_gamma: float = Field(0.0, ge=0.0)
    penalty_every: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _gammas_need_an_objective_that_reads_them(self):
        """Asked of the objective registry (an objective's options are its fields), so
        any objective that declares the gammas takes them, not one named here."""
        from gan.objectives import objectives_with

        loss, readers = getattr(self, "loss", None), objectives_with("r1_gamma")
        gammas = self.r1_gamma > 0 or self.r2_gamma > 0
        if gammas and loss not in readers:
            raise ValueError(
                f"r1_gamma and r2_gamma are the {' or '.join(readers)} loss's penalties; "
                f"loss is {loss!r} (set that loss, or leave the gammas at 0)"
            )
        if self.penalty_every > 1 and not gammas:
            raise ValueError(
                f"penalty_every is {self.penalty_every} but r1_gamma and r2_gamma are 0: "
                "it spaces out their penalties (set a gamma, or leave penalty_every at 1)"
            )
        return self

    def penalty_weight(self, step: int, repeat: int, repeats: int) -> int:
        """The factor on the penalties at D's `repeat`-th update of `step` (of `repeats` per
        step): `penalty_every` on every k-th update, 0 (skipped) between."""
        update = step * repeats + repeat
        return 0 if update % self.penalty_every else self.penalty_every


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
