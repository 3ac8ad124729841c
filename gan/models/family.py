"""The contract between a family and the trainer (docs/architecture.md, 'The family contract').

A family owns its networks and states its objective as phases, the way stylegan2-ada's
training/loss.py does: G main, G regularisation, D main, D regularisation. The trainer
runs the phases, steps the optimisers, keeps EMA copies and checkpoints; it never looks
at a family's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from gan.errors import GanError
from gan.models.export_graph import ExportGraph
from gan.objectives import Objective, build_objective
from gan.train_config import EmaConfig, ModelConfig, OptimConfig
from gan.training.ema import ema_beta

Batch = dict[str, torch.Tensor]
Augment = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Fake:
    """A batch of generated images with what made it; `images` may carry G's graph."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    latents: torch.Tensor | None = None


@dataclass(frozen=True)
class Schedule:
    """A family's hyperparameters at one step (docs/architecture.md, "Schedules"): functions
    of the images seen (steps x the global batch), so a resumed run continues them exactly.

    The trainer applies what it holds: each optimiser's lr times `lr_scale` (through its lr
    scheduler, on top of train.lr_schedule), Adam's `betas`, and ADA's p in fixed mode
    (`augment_p`); `values` are the family's own (R3GAN's gammas), for its phases through
    the step context. Everything but the lr (logged as lr_<optimiser>) is logged.
    """

    lr_scale: dict[str, float] = field(default_factory=dict)  # optimiser -> factor
    betas: dict[str, tuple[float, float]] = field(default_factory=dict)  # optimiser -> betas
    augment_p: float | None = None
    values: dict[str, float] = field(default_factory=dict)

    def logged(self) -> dict[str, float]:
        return {f"beta2_{name}": b[1] for name, b in self.betas.items()} | self.values


@dataclass
class StepContext:
    """What the phases of one training step share (docs/architecture.md, "Phases").

    The trainer makes a fresh one per step and sets `batch` to each real batch it draws;
    a phase that makes fakes another phase may reuse leaves them in `fakes` under a key
    of its choosing, and the phase that reuses them takes them out. Nothing a phase hands
    on lives on the family, so a phase run alone or in another order finds nothing and
    makes its own. `schedule` is the family's schedule at this step (empty for a phase
    run without the trainer). `repeat` counts a phase's repeats within the step (0 first),
    so a family can number its updates (e.g. D's, for penalties every k of them).
    """

    step: int
    batch: Batch = field(default_factory=dict)
    fakes: dict[str, Fake] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=Schedule)
    repeat: int = 0

    def take_fake(self, key: str) -> Fake | None:
        return self.fakes.pop(key, None)


# A phase's loss: the scalar to minimise and its log values, as tensors (the trainer turns
# them into numbers on logging steps only, so a step never waits for the device).
LossFn = Callable[[StepContext], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class DataInfo:
    """What a family needs to know about the data to size its networks."""

    resolution: int
    channels: int
    num_classes: int = 0  # 0: no labels
    domains: int = 1  # 2 for unpaired translation data

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> DataInfo:
        """From a processed dataset's manifest.json (gan/data/shards.py)."""
        return cls(
            resolution=int(manifest["resolution"]),
            channels=int(manifest["channels"]),
            num_classes=len(manifest.get("classes") or []),
            domains=max(1, len(manifest.get("domains") or [])),
        )


@dataclass
class Phase:
    """One term of the objective: the loss it computes and the optimiser it steps.

    A phase with `every` k > 1 is lazy regularisation as in stylegan2-ada: it runs on steps
    where step % k == 0, the trainer scales its loss by k, and the optimiser it steps gets
    lr * k/(k+1) and betas ** (k/(k+1)), so `every` means what the paper means.

    `fresh_batch` False: the phase takes the batch the step drew last instead of a new one
    (a G phase that looks at no real image, or one that should see D's). `graph_for`
    names another optimiser whose parameters the trainer keeps under autograd during this
    phase's last repeat when `train.reuse_fake` is on, so the fake batch this phase makes
    (left in the step context) carries its graph to that optimiser's phase, as the
    textbook DCGAN loop reuses D's fakes for G's step; the family detaches it for D and
    falls back to generating afresh when no fake with a graph is left (reuse off, or the
    phase run on its own).
    """

    name: str
    optimizer: str
    loss: LossFn
    every: int = 1
    repeats: int = 1  # e.g. critic steps per generator step; each repeat draws a batch
    fp32: bool = False  # run outside autocast (R1 and path-length terms need the precision)
    fresh_batch: bool = True
    graph_for: str | None = None

    def __post_init__(self) -> None:
        if self.every < 1 or self.repeats < 1:
            raise ValueError(f"phase {self.name}: every and repeats must be at least 1")


@dataclass
class ParamGroup:
    """Parameters trained at `lr_mult` times their optimiser's learning rate."""

    params: list[nn.Parameter]
    lr_mult: float = 1.0


@dataclass
class OptimizerSpec:
    params: list[nn.Parameter]
    lr: float
    betas: tuple[float, float]
    eps: float = 1e-8
    extra_groups: list[ParamGroup] = field(default_factory=list)

    def groups(self) -> list[ParamGroup]:
        return [ParamGroup(self.params), *self.extra_groups]


class GANFamily(ExportGraph, ABC):
    """Base class of every model family.

    Subclasses set `name` and `config_class`, build `self.nets` in __init__ and implement
    `phases`, `optimizers`, `build_generator` and `generate`. `ema` maps an EMA copy's name
    to the net it follows; the trainer creates and updates those copies in `self.nets`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]
    ema: ClassVar[dict[str, str]] = {"G_ema": "G"}
    export_net: ClassVar[str] = "G_ema"
    conditional: ClassVar[bool] = False  # True when generate() honours the labels it is given
    # What a trained model does: "sample" (generate from latents) or "translate" images.
    task: ClassVar[Literal["sample", "translate"]] = "sample"
    standing_batches: int = 16  # batches for the exported G's batch-norm statistics
    # train.channels_last auto on the CPU: whether this family's step runs faster in
    # channels_last there, for every precision or per precision {bf16: ..., fp32 (False):
    # ...} (benchmarks/precision.py measures it; CUDA always uses it)
    cpu_channels_last: ClassVar[bool | dict[bool, bool]] = False
    # train.precision auto on a CPU with fast bf16: whether this family trains in bf16 there
    # (False where bf16 measured worse than fp32 across seeds: docs/benchmarks.md)
    cpu_bf16: ClassVar[bool] = True
    # Adam settings of the family's paper, used where params.yaml leaves train.optim unset
    optim_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        cfg: ModelConfig,
        data: DataInfo,
        optim: OptimConfig,
        device: torch.device,
        augment: Augment,
    ) -> None:
        self.cfg = cfg
        self.data = data
        self.optim = optim
        self.device = device
        self.augment = augment
        self.nets: dict[str, nn.Module] = {}
        self.noise = torch.Generator(device=device)
        self.objective = self.build_objective(cfg)

    @classmethod
    def build_objective(cls, cfg: ModelConfig) -> Objective | None:
        """`train.model.loss`'s objective (None for a family without a loss key)."""
        loss = getattr(cfg, "loss", None)
        return None if loss is None else build_objective(loss, **cls.objective_options(cfg))

    @classmethod
    def objective_options(cls, cfg: ModelConfig) -> dict[str, Any]:
        """The settings the objective may read: every key of the family's config (each
        objective takes those named like its options); a family whose own phases already
        apply a setting of that name leaves it out."""
        return {key: getattr(cfg, key) for key in type(cfg).model_fields}

    def real_logits_for_g(self, judge: Callable[[], torch.Tensor]) -> torch.Tensor | None:
        """D's logits on real images for G's side when the objective pairs them (RpGAN),
        else None. D is frozen in G's phases and the reals do not depend on G, so no graph."""
        if self.objective is None or not self.objective.g_needs_real:
            return None
        with torch.no_grad():
            return judge()

    @classmethod
    def preset(
        cls, name: str, cfg: ModelConfig, data: DataInfo, batch: int | None, gpus: int
    ) -> dict[str, Any]:
        """The train keys preset `name` (one of the config class's `presets`) derives for
        `data`, dotted from the train section ("batch_size", "model.r1_gamma", "optim.g_lr");
        `cfg` is the model section as given, `batch` the batch params.yaml gives (None: the
        preset may derive it), `gpus` the data-parallel devices. gan/training/preset.py
        keeps the keys params.yaml sets. A ValueError names what the preset cannot serve
        (e.g. the resolution)."""
        raise ValueError(f"{cls.name} has no presets")

    # -- data --------------------------------------------------------------------------
    @classmethod
    def make_loader(
        cls, split, batch_size: int, device: torch.device, streams, flip: bool, memory_format
    ):
        """The batch source for this family, drawing from the run's `streams` (gan/training/
        streams.py); unpaired families override it to give A and B."""
        from gan.data.loader import BatchLoader

        return BatchLoader(
            split, batch_size, device, streams, flip=flip, memory_format=memory_format
        )

    @classmethod
    def batch_sources(cls, split) -> dict[str, int]:
        """The sets a batch is drawn from whole and their sizes, keyed by the words an error
        names them by ("" for the whole split): a batch may not be larger than any."""
        return {"": len(split)}

    def batch_images(self, batch: Batch) -> int:
        """The real images in a batch the loader gave (counted for images seen and img/s)."""
        return len(batch["images"])

    # -- objective -----------------------------------------------------------------------
    def observe_real(self, logits: torch.Tensor) -> None:
        """D main phases call this once per pass with D's logits on that pass's real
        images (any shape; detached here): the overfitting signal r_t = E[sign(D(real))]
        that adaptive augmentation (gan/data/ada.py) adjusts its probability from. Cheap:
        it only adds on the device."""
        observe = getattr(self.augment, "observe_real", None)
        if observe is not None:  # a plain callable (tests) observes nothing
            observe(logits)

    @abstractmethod
    def phases(self) -> list[Phase]:
        """The objective's terms in the order they run each step."""

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """One Adam optimiser per name; phases refer to them by that name.

        Default: "G" over nets["G"] and "D" over nets["D"] with train.optim's settings,
        except those params.yaml leaves unset and the family has its paper's value for
        (`optim_defaults`); a family with other groups overrides it.
        """
        o = self.optim

        def setting(key: str):
            if key in o.model_fields_set or key not in self.optim_defaults:
                return getattr(o, key)
            return self.optim_defaults[key]

        return {
            net: OptimizerSpec(
                list(self.nets[net].parameters()),
                setting(f"{net.lower()}_lr"),
                tuple(setting(f"{net.lower()}_betas")),
                eps=self.adam_eps(),
            )
            for net in ("G", "D")
        }

    def adam_eps(self) -> float:
        return 1e-8

    def rank_streams(self, seed: int) -> None:
        """Give a data-parallel rank its own draws in streams seeded at construction (the
        trainer reseeds `noise` itself); families with such streams override this."""
        return  # default: no such streams

    def schedule(self, step: int, batch_size: int) -> Schedule:
        """The hyperparameters this family schedules at `step` with a global batch of
        `batch_size` (see Schedule); the default schedules nothing."""
        return Schedule()

    def ema_beta(self, step: int, batch_size: int, ema: EmaConfig) -> float:
        """How much of the old average each EMA update keeps after `step` steps.

        Default: `ema.decay`, after `ema.warmup_steps` steps of plain copying (early
        weights are noise). StyleGAN2 overrides it with its half-life in images.
        """
        return ema_beta(step, ema.decay, ema.warmup_steps)

    # -- state beyond nets and optimisers ------------------------------------------------
    # Random streams (`rng_state`) are per data-parallel rank; persistent state
    # (`state_dict`: running averages, an augmentation probability) is one per run.
    def rng_state(self) -> dict[str, Any]:
        return {"noise": self.noise.get_state()}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self.noise.set_state(state["noise"])

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return  # default: nothing persistent beyond the nets

    # -- using a trained generator -------------------------------------------------------
    @classmethod
    def is_conditional(cls, cfg: ModelConfig, data: DataInfo) -> bool:
        """Whether a generator of this config honours labels; families where the config
        decides (StyleGAN2's `conditional`) override it."""
        return cls.conditional and data.num_classes > 0

    @classmethod
    @abstractmethod
    def build_generator(cls, cfg: ModelConfig, data: DataInfo) -> nn.Module:
        """The exported network (the EMA generator) with freshly initialised weights."""

    @classmethod
    @abstractmethod
    def generate(
        cls,
        G: nn.Module,
        n: int,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
        truncation: float = 1.0,
    ) -> torch.Tensor:
        """`n` images in [-1, 1], NCHW, from the latents that `generator` draws."""

    @classmethod
    def translate(cls, module: nn.Module, images: torch.Tensor, direction: str) -> torch.Tensor:
        """Images translated into another domain (families whose task is "translate")."""
        raise GanError(f"{cls.name} samples images and cannot translate; use `gan sample`")

    @classmethod
    def default_crossover(cls, G: nn.Module) -> int:
        """Where a style-mixing grid splits coarse from fine styles when none is asked for."""
        return 1

    @classmethod
    def mix_grid(
        cls, G: nn.Module, rows: list[int], cols: list[int], crossover: int, truncation=1.0
    ) -> torch.Tensor:
        """A style-mixing grid (families with per-layer styles override it)."""
        raise GanError(f"{cls.name} has no per-layer styles to mix (StyleGAN2 has)")

    @classmethod
    def interpolate(
        cls, G: nn.Module, seeds: list[int], steps: int, truncation: float = 1.0, labels=None
    ) -> torch.Tensor:
        """Frames walking between the seeds' latents (families that support it override it)."""
        raise GanError(f"{cls.name} has no latent interpolation")

    def preview(
        self, G: nn.Module, n: int, generator: torch.Generator, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The images of the training-progress grid; translation families show before/after."""
        return self.generate(G, n, generator, labels=labels)
