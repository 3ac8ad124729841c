"""The run's random streams, one table: every stream's seed comes from train.seed here.

Each named stream draws from its own seed, derived from the run seed, the stream's place
in STREAMS and the data-parallel rank by numpy's SeedSequence (the spawn tree numpy
documents for independent streams), so no two streams share a seed: a flip of the real
images and a DiffAugment shift are never drawn from identical streams, and rank 1's data
order is not rank 0's augmentation. Consumers ask for their seed by name; checkpoints
then save and restore each stream's state, so a resumed run continues every stream
(docs/architecture.md, 'Random streams').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Each stream, and what draws from it. A stream's place is part of its seed: append new
# streams at the end, or every run's numbers change.
STREAMS = {
    "init": "torch's global stream while the networks are built (their initialisation)",
    "global": "torch's global stream from then on (layers' own noise inputs)",
    "data": "the order batches are drawn in (unpaired data: domain A's)",
    "data_B": "unpaired data: domain B's batch order",
    "flip": "flips of the real images at loading (unpaired data: their random crops too)",
    "translate": "DiffAugment's shifts of every image D sees",
    "ada": "adaptive augmentation's transforms",
    "latents": "the family's `noise`: latents, sampled labels, penalty interpolation",
    "family": "the family's own streams under data parallelism (CycleGAN's image pools)",
    "grid": "the fixed latents of the sample grids",
    "snapshots": "snapshots' latents and KID subsets, and torch's streams while they measure",
}
# The same on every rank: every rank builds the same networks; grids and snapshots are
# rank 0's alone.
SHARED = frozenset({"init", "grid", "snapshots"})


@dataclass(frozen=True)
class Streams:
    """The streams of one process: run seed `run_seed`, data-parallel rank `rank`."""

    run_seed: int
    rank: int = 0

    def seed(self, name: str) -> int:
        """The stream's seed: 63 bits, what torch.Generator.manual_seed takes."""
        index = list(STREAMS).index(name)  # ValueError names an unknown stream
        rank = 0 if name in SHARED else self.rank
        sequence = np.random.SeedSequence(self.run_seed, spawn_key=(index, rank))
        return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))
