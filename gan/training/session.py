"""Everything a training run holds in memory, and its exact save/restore.

The session is built the same way whether a run starts or resumes; resuming then loads
every piece of state, so the continuation matches an uninterrupted run bit for bit.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan.config import TrainConfig, dump_section
from gan.data.ada import DiscriminatorAugment
from gan.data.shards import SplitData
from gan.device import Precision
from gan.errors import GanError
from gan.io import load_torch
from gan.messages import exception_line
from gan.models import get_family
from gan.models.family import DataInfo, GANFamily, OptimizerSpec, Phase, Schedule
from gan.training.distributed import Ranks
from gan.training.fingerprint import fingerprint
from gan.training.finite import FiniteWatch
from gan.training.snapshots import Snapshots
from gan.training.streams import Streams


def lr_factor(step: int, constant_steps: int, decay_steps: int) -> float:
    """1 for `constant_steps`, then linear decay to 0 over `decay_steps` (0: constant)."""
    if decay_steps <= 0 or step < constant_steps:
        return 1.0
    return max(0.0, 1.0 - (step - constant_steps) / decay_steps)


def lazy_interval(phases: list[Phase], optimizer: str) -> int:
    """The k of the lazy (every k steps) phases that step `optimizer`; 1 when none."""
    ks = {p.every for p in phases if p.optimizer == optimizer and p.every > 1}
    if len(ks) > 1:
        raise GanError(
            f"optimizer {optimizer}: lazy phases run at different intervals {sorted(ks)}; "
            "one interval per optimiser (its lr and betas are adjusted by k/(k+1))"
        )
    return ks.pop() if ks else 1


def lazy_ratio(interval: int) -> float:
    """stylegan2-ada's minibatch ratio k/(k+1) for an optimiser with lazy phases every k."""
    return interval / (interval + 1) if interval > 1 else 1.0


def lazy_betas(betas: tuple[float, float], interval: int) -> tuple[float, float]:
    ratio = lazy_ratio(interval)
    return (betas[0] ** ratio, betas[1] ** ratio)


def build_optimizer(spec: OptimizerSpec, interval: int = 1) -> torch.optim.Optimizer:
    """Adam over the spec's groups; with lazy regularisation every `interval` steps, the
    lr and betas are adjusted by the minibatch ratio k/(k+1) as stylegan2-ada does, so
    that the regularised and plain steps together move like the paper's schedule."""
    ratio = lazy_ratio(interval)
    betas = lazy_betas(spec.betas, interval)
    groups = [{"params": g.params, "lr": spec.lr * ratio * g.lr_mult} for g in spec.groups()]
    return torch.optim.Adam(
        groups,
        lr=spec.lr * ratio,
        betas=betas,
        eps=spec.eps,
        **adam_kernel([p for g in spec.groups() for p in g.params]),
    )


def adam_kernel(params: list[nn.Parameter]) -> dict[str, bool | None]:
    """The fused Adam kernel on CPU and CUDA (one pass over all parameters: 3-6x faster
    steps than the per-tensor loop on the 2-core CPU), torch's default elsewhere."""
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )
    return {"fused": fused or None, "foreach": None}


def load_optimizer(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load an optimiser's state but keep this process's kernel choice: a checkpoint
    written with another kernel (or before fused Adam) resumes the same moments and
    steps, and the groups' `fused`/`foreach` flags stay what build_optimizer chose."""
    kernel = [{k: g.get(k) for k in ("fused", "foreach")} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, flags in zip(opt.param_groups, kernel, strict=True):
        group.update(flags)


def compile_for_training(nets: dict[str, nn.Module], averages: set[str]) -> None:
    """torch.compile the trained networks in place (their state_dict keys stay as they
    are, so checkpoints and exports do not change); a ModuleDict of networks (CycleGAN's
    two generators) compiles each member. EMA copies only run inside exports and grids.
    On the 2-core CPU compiling DCGAN took minutes and its steps were no faster, so
    `train.compile` is off by default."""
    for name, net in nets.items():
        if name in averages:
            continue
        for module in net.values() if isinstance(net, nn.ModuleDict) else [net]:
            module.compile()


class Session:
    def __init__(
        self, cfg: TrainConfig, split: SplitData, precision: Precision, ranks: Ranks | None = None
    ) -> None:
        self.cfg = cfg
        self.precision = precision
        self.ranks = ranks = (
            ranks or Ranks()
        )  # same init on every rank; data, latents, augmentation per rank
        device = precision.device
        self.data = DataInfo.from_manifest(split.manifest)
        self.data_hash = split.manifest["content_hash"]
        self.params = dump_section(cfg)
        self.fingerprint = fingerprint(self.params, self.data_hash)
        streams = Streams(cfg.seed, ranks.rank)  # every seed of the run, by name
        torch.manual_seed(streams.seed("init"))
        self.augment = DiscriminatorAugment(  # ADA's r_t is summed over the ranks
            cfg.augment,
            cfg.batch_size,
            device,
            streams,
            torch.distributed.all_reduce if ranks.active else None,
        )
        family_cls = get_family(cfg.model.family)
        try:
            self.family: GANFamily = family_cls(
                cfg.model, self.data, cfg.optim, device, self.augment
            )
        except ValueError as exc:
            raise GanError(f"train.model: {exc} (train.data: {cfg.data})") from None
        self.family.noise.manual_seed(streams.seed("latents"))
        nets = self.family.nets
        for ema_name, source in self.family.ema.items():
            nets[ema_name] = copy.deepcopy(nets[source]).eval().requires_grad_(False)
        for net in nets.values():
            net.to(device=device, memory_format=precision.memory_format())
        if cfg.compile:
            compile_for_training(nets, set(self.family.ema))
        torch.manual_seed(streams.seed("global"))  # what draws from it after initialisation
        if ranks.active:
            self.family.rank_streams(streams.seed("family"))
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.intervals: dict[str, int] = {}  # each optimiser's lazy interval
        phases = self.family.phases()
        for name, spec in self.family.optimizers().items():
            self.intervals[name] = lazy_interval(phases, name)
            opt = build_optimizer(spec, self.intervals[name])
            self.optimizers[name] = opt
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_at(name))
        self.loader = self.family.make_loader(
            split,
            cfg.batch_size // ranks.world_size,
            device,
            streams,
            cfg.augment.flip,
            precision.memory_format(),
        )
        self.step = 0
        self.images_seen = 0  # real images drawn by this process's phases (for img/s)
        self.watch = FiniteWatch(device)
        self.phase_logs: dict[str, dict[str, torch.Tensor]] = {}  # each phase's latest values
        # rank 0's snapshots and the best one (gan/training/snapshots.py; None: off)
        self.snapshots: Snapshots | None = None

    # -- per-step hyperparameters (docs/architecture.md, "Schedules") -------------------
    def _lr_at(self, optimizer: str):
        """The factor on `optimizer`'s lr after s steps: train.lr_schedule's, times the
        family's scheduled one; a function of the step alone, so a resume continues it."""
        sched, family, batch = self.cfg.lr_schedule, self.family, self.cfg.batch_size
        return lambda s: (
            lr_factor(s, sched.constant_steps, sched.decay_steps)
            * (family.schedule(s, batch).lr_scale.get(optimizer, 1.0))
        )

    def scheduled(self, step: int) -> Schedule:
        """The family's schedule at `step`, applied where the trainer holds the setting:
        Adam's betas (adjusted for lazy phases like the built ones) and ADA's p."""
        schedule = self.family.schedule(step, self.cfg.batch_size)
        for name, betas in schedule.betas.items():
            for group in self.optimizers[name].param_groups:
                group["betas"] = lazy_betas(betas, self.intervals[name])
        if schedule.augment_p is not None:
            self.augment.follow_p(schedule.augment_p)
        return schedule

    # -- which parameters a phase trains ------------------------------------------------
    def train_only(self, optimizer: str, graph_for: str | None = None) -> None:
        """Autograd on for `optimizer`'s parameters (and `graph_for`'s: see Phase)."""
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                for p in group["params"]:
                    p.requires_grad_(name in (optimizer, graph_for))

    def params_of(self, optimizer: str) -> list[nn.Parameter]:
        return [p for g in self.optimizers[optimizer].param_groups for p in g["params"]]

    # -- checkpoint state ---------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        state = {
            "torch": torch.get_rng_state(),
            "loader": self.loader.state_dict(),
            "augment": self.augment.state_dict(),
            "family": self.family.rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()  # every device's stream
        return state

    def state_dict(self) -> dict[str, Any]:
        """Collective under data parallelism: every rank must call it (their random
        streams are gathered into the one checkpoint rank 0 writes)."""
        rank_rngs = self.ranks.gather(self.rng_state())
        return {
            "step": self.step,
            "fingerprint": self.fingerprint,
            "params": self.params,
            "data": self.data.to_dict(),
            "data_hash": self.data_hash,
            "nets": {k: v.state_dict() for k, v in self.family.nets.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "family_state": self.family.state_dict(),
            "rng": rank_rngs[0],
            **({"rank_rng": rank_rngs} if self.ranks.active else {}),
            **({"snapshots": self.snapshots.state_dict()} if self.snapshots else {}),
        }

    def load_state_dict(self, state: dict[str, Any], source: str | Path) -> None:
        try:
            for k, net in self.family.nets.items():
                net.load_state_dict(state["nets"][k])
            for k, opt in self.optimizers.items():
                load_optimizer(opt, state["optimizers"][k])
            for k, sch in self.schedulers.items():
                sch.load_state_dict(state["schedulers"][k])
            rng = state["rank_rng"][self.ranks.rank] if self.ranks.active else state["rng"]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            self.loader.load_state_dict(rng["loader"])
            self.augment.load_state_dict(rng["augment"])
            self.family.load_rng_state(rng["family"])
            self.family.load_state_dict(state.get("family_state", {}))
            if self.snapshots is not None:
                self.snapshots.load_state_dict(state.get("snapshots"))
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise GanError(
                f"{source}: checkpoint does not fit this model ({type(exc).__name__}: {exc})"
            ) from None
        self.step = int(state["step"])

    def read_init_from(self, path: str | None) -> dict[str, Any] | None:
        """train.init_from's checkpoint, once it is sure to fit the networks (None: none)."""
        if not path:
            return None
        if not Path(path).is_file():
            what = "a folder, not a checkpoint file" if Path(path).is_dir() else "file not found"
            raise GanError(f"train.init_from {path}: {what}")
        state = load_torch(path)
        self.warm_start(state, path, check=True)
        return state

    def warm_start(self, state: dict[str, Any], source: str | Path, check: bool = False) -> None:
        """Initialise networks (only) from another run's checkpoint; with `check`, only make
        sure it would (a resume, which does not use it, still refuses what a start would)."""
        nets = state.get("nets") if isinstance(state, dict) else None
        if not isinstance(nets, dict):
            raise GanError(
                f"{source}: not a training checkpoint (no 'nets'); train.init_from takes "
                "a run's checkpoints/ckpt-<step>.pt"
            )
        for k, net in self.family.nets.items():
            if k not in nets:
                raise GanError(f"{source}: cannot warm-start from it: it holds no {k} network")
            try:
                (copy.deepcopy(net) if check else net).load_state_dict(nets[k])
            except (RuntimeError, TypeError, AttributeError) as exc:  # torch lists each key
                problems = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
                first = exception_line(problems[0] if problems else exc, 160)
                more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
                raise GanError(
                    f"{source}: cannot warm-start {k}: another architecture ({first}{more})"
                ) from None
