"""Snapshots: the generator measured while it trains, and the best one kept for the export.

With `train.metrics_every` > 0, rank 0 measures the network the export would write (the
inference copy of the EMA generator, gan/training/inference.py) every that many steps and
at the last: FID and KID of `train.metrics_samples` samples against the test split, under
the evaluate section's settings and default extractor (gan/metrics/snapshot.py). The
figures join that step's row of the metrics log (log.csv, dvclive), and the best snapshot
by `train.best_metric` (its step, figures and EMA weights) is part of every checkpoint, so
a resumed run exports what an uninterrupted one would with `train.export: best`. GAN
training often degrades late; stylegan2-ada's users pick snapshots by their metric.

Training never notices a snapshot: its latents and KID subsets come from their own stream
(`snapshots`, gan/training/streams.py), every other draw from torch's streams while it
measures (building the extractor, torch's data loader) happens inside a fork of them, and
the other ranks go on to the next step's collectives and wait there. So the weights at
every step are the same with snapshots on or off (tests/test_snapshots.py).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm import tqdm

from gan.config import EvaluateConfig, TrainConfig
from gan.errors import GanError
from gan.metrics.registry import figure
from gan.training.inference import inference_copy, labels_for
from gan.training.streams import Streams

if TYPE_CHECKING:
    from gan.metrics.snapshot import SnapshotJudge
    from gan.training.session import Session

PREFIX = "snapshot_"  # log.csv columns: snapshot_fid, snapshot_kid, snapshot_seconds


def snapshot_due(cfg: TrainConfig, done: int) -> bool:
    """Whether the step that makes `done` steps ends with a snapshot (on every rank alike)."""
    every = cfg.metrics_every
    return every > 0 and (done % every == 0 or done == cfg.steps)


def snapshot_seed(cfg: TrainConfig) -> int:
    """The run's `snapshots` stream, in the 32 bits torch-fidelity's KID takes as a seed."""
    return Streams(cfg.seed).seed("snapshots") % 2**32


@contextmanager
def own_streams(seed: int, device: torch.device) -> Iterator[None]:
    """torch's streams as they were after the block; inside, seeded `seed`."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class Snapshots:
    """Rank 0's snapshots of one run: when to take them, the best so far and its export."""

    def __init__(self, cfg: TrainConfig, judge: SnapshotJudge, session: Session) -> None:
        self.cfg, self.judge, self.session = cfg, judge, session
        self.seed = snapshot_seed(cfg)
        self.higher_is_better = bool(figure(cfg.best_metric).higher_is_better)
        self.best: dict[str, Any] | None = None  # step, figures, weights, protocol
        self.seconds = 0.0  # spent measuring in this process (run.json's `seconds` holds it)

    @classmethod
    def start(
        cls, cfg: TrainConfig, evaluate: EvaluateConfig | None, session: Session
    ) -> Snapshots | None:
        """The run's snapshots (None when `train.metrics_every` is 0); the judge is loaded
        now, so a missing extractor fails before any step."""
        if not cfg.metrics_every:
            return None
        if evaluate is None:
            raise GanError(
                "train.metrics_every: snapshots are measured under the evaluate section's "
                "settings, which this caller of train() does not pass (`gan train` does)"
            )
        from gan.metrics.snapshot import load_judge  # torch-fidelity: only when measuring

        device, seed = session.precision.device, snapshot_seed(cfg)
        with own_streams(seed, device):  # building the extractor draws from torch's streams
            cuda = device.type == "cuda"
            judge = load_judge(evaluate, cfg.data, cfg.metrics_samples, seed, session.family, cuda)
        return cls(cfg, judge, session)

    # -- measuring ---------------------------------------------------------------------
    def _figures(self, G_ema: nn.Module) -> dict[str, float]:
        session = self.session
        family, data = session.family, session.data
        with own_streams(self.seed, session.precision.device):
            G = inference_copy(G_ema, family, labels_for(data.num_classes))
            return self.judge.figures(family, G, data)

    def _better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        best = self.best["figures"][self.cfg.best_metric]
        return value > best if self.higher_is_better else value < best

    def take(self, step: int) -> dict[str, float]:
        """Measure the EMA generator after `step` steps; the log row's snapshot columns."""
        started = time.perf_counter()
        family = self.session.family
        G_ema = family.nets[family.export_net]
        found = self._figures(G_ema)
        if self._better(found[self.cfg.best_metric]):
            weights = {k: v.detach().to("cpu", copy=True) for k, v in G_ema.state_dict().items()}
            self.best = {"step": step, "figures": found, "weights": weights}
        seconds = time.perf_counter() - started
        self.seconds += seconds
        return {f"{PREFIX}{k}": v for k, v in found.items()} | {f"{PREFIX}seconds": seconds}

    # -- checkpoint state ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The best snapshot and the protocol its figures were measured under."""
        if self.best is None:
            return {}
        return {**self.best, "protocol": self.judge.protocol}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Resume the best snapshot. One measured under another protocol (extractor,
        sample count, ...) is measured again under this one: its figures would not
        compare with the snapshots still to come."""
        if not state:
            return
        best = {k: state[k] for k in ("step", "figures", "weights")}
        if state["protocol"] != self.judge.protocol:
            G = copy.deepcopy(self.session.family.nets[self.session.family.export_net])
            G.load_state_dict(best["weights"])
            best["figures"] = self._figures(G)
            tqdm.write(
                f"[train] the best snapshot (step {best['step']}) was measured under other "
                f"settings; measured again: {self._said(best['figures'])}"
            )
        self.best = best

    # -- the export ----------------------------------------------------------------------
    def export_generator(self) -> tuple[nn.Module, int]:
        """The inference copy of the best snapshot's EMA generator, and its step. A run
        resumed at its last step from a checkpoint without snapshots (metrics were off)
        has none yet: its final weights are measured now."""
        session = self.session
        family = session.family
        G_ema = family.nets[family.export_net]
        if self.best is None:
            self.take(session.step)
        G = copy.deepcopy(G_ema)
        G.load_state_dict(self.best["weights"])
        labels = labels_for(session.data.num_classes)
        return inference_copy(G, family, labels), self.best["step"]

    def summary(self) -> dict[str, Any]:
        """run.json's record of the snapshots: how they were taken and the best one."""
        best = self.best or {"step": None, "figures": {}}
        return {
            "every": self.cfg.metrics_every,
            "samples": self.cfg.metrics_samples,
            "metric": self.cfg.best_metric,
            "best_step": best["step"],
            "best": best["figures"],
            "extractor": self.judge.settings.extractor.name,
            "seconds": round(self.seconds, 2),
        }

    @staticmethod
    def _said(figures: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.4g}" for k, v in figures.items())
