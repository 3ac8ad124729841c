"""Watching losses for NaN/inf without making every phase wait for the device.

Each phase's first non-finite loss (its step and value) is recorded by device-side
tensor ops; the trainer reads the record only on logging and checkpoint steps, so a
diverged run still stops before it writes a checkpoint, and the error names the phase and
the step where it went wrong.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from gan.training.distributed import Ranks

NONE = -1


class FiniteWatch:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.first: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # phase -> (step, value)

    def record(self, phase: str, loss: torch.Tensor, step: int) -> None:
        if phase not in self.first:
            self.first[phase] = (
                torch.full((), NONE, dtype=torch.long, device=self.device),
                torch.zeros((), dtype=torch.float32, device=self.device),
            )
        at, value = self.first[phase]
        new = (~torch.isfinite(loss.detach())) & (at == NONE)
        at.copy_(torch.where(new, torch.full_like(at, step + 1), at))
        value.copy_(torch.where(new, loss.detach().float(), value))

    def problem(self, ranks: Ranks) -> str | None:
        """None while every loss on every rank was finite; else what went wrong first."""
        names = sorted(self.first)
        if not names:
            return None
        steps = torch.stack([self.first[n][0] for n in names]).cpu()
        bad = torch.tensor([int((steps != NONE).any())], device=self.device)
        if ranks.active:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if not int(bad):
            return None
        if (steps == NONE).all():
            return "a loss became non-finite on another rank"
        i = int(torch.where(steps == NONE, torch.iinfo(torch.long).max, steps).argmin())
        value = float(self.first[names[i]][1])
        where = f" on rank {ranks.rank}" if ranks.active else ""
        return f"loss of phase {names[i]} is {value} at step {int(steps[i])}{where}"
