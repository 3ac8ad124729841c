"""The run's random streams come from one table (gan/training/streams.py): no two share a
seed, and each consumer draws from the stream the table names for it."""

from __future__ import annotations

import pytest
import torch
from test_training import _session, tiny

from gan.data.shards import SplitData
from gan.data.unpaired import UnpairedLoader
from gan.training.streams import SHARED, STREAMS, Streams

SEEDS = [0, 1, 2, 1000, 2**32 - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_stream_of_every_rank_has_its_own_seed(seed):
    world = 8
    seeds = {
        (name, rank): Streams(seed, rank).seed(name) for name in STREAMS for rank in range(world)
    }
    for name in SHARED:  # the same networks and grids on every rank
        assert len({seeds[name, rank] for rank in range(world)}) == 1
    distinct = {v for (name, rank), v in seeds.items() if rank == 0 or name not in SHARED}
    assert len(distinct) == len(STREAMS) * world - len(SHARED) * (world - 1)
    assert all(0 <= v < 2**63 for v in distinct)  # what torch.Generator.manual_seed takes


def test_runs_of_other_seeds_draw_other_streams():
    every = [
        Streams(seed, rank).seed(name) for seed in SEEDS for rank in (0, 1) for name in STREAMS
    ]
    shared = len(SEEDS) * len(SHARED)  # a shared stream is counted once per rank
    assert len(set(every)) == len(every) - shared
    assert Streams(5, 1).seed("data") == Streams(5, 1).seed("data")  # and are reproducible


def test_an_unknown_stream_is_an_error():
    with pytest.raises(ValueError, match="noise"):
        Streams(0).seed("noise")


def _state(seed: int, device: str = "cpu") -> torch.Tensor:
    return torch.Generator(device=device).manual_seed(seed).get_state()


def test_a_session_seeds_each_consumer_from_its_named_stream(digits16, tmp_path):
    """Flips and DiffAugment shifts once drew from identical streams (seed + 2 both)."""
    ada = {"mode": "adaptive", "p": 0.2}
    cfg = tiny(digits16, tmp_path, seed=3, augment={"flip": True, "translate": 0.125, "ada": ada})
    session = _session(cfg)
    streams = Streams(3)
    order = torch.Generator().manual_seed(streams.seed("data"))
    assert torch.equal(
        session.loader.perm, torch.randperm(len(session.loader.perm), generator=order)
    )
    unused = {  # not drawn from before the first step
        "flip": session.loader.aug_generator,
        "translate": session.augment.translate.generator,
        "ada": session.augment.ada.generator,
        "latents": session.family.noise,
    }
    for name, generator in unused.items():
        assert torch.equal(generator.get_state(), _state(streams.seed(name))), name
    assert torch.equal(torch.get_rng_state(), _state(streams.seed("global")))
    states = [g.get_state() for g in [session.loader.generator, *unused.values()]]
    assert all(not torch.equal(a, b) for i, a in enumerate(states) for b in states[i + 1 :])


def test_unpaired_domains_and_ranks_draw_their_own_batches():
    """Domain B of rank 0 was rank 1's domain A (seed + 1000 for both)."""
    images = torch.zeros(8, 1, 4, 4, dtype=torch.uint8)
    split = SplitData(images, torch.zeros(8, dtype=torch.long), torch.tensor([0, 1] * 4), {})
    orders = []
    for rank in (0, 1):
        loader = UnpairedLoader(split, 2, torch.device("cpu"), Streams(0, rank))
        orders += [loader.streams[d].generator.get_state() for d in ("A", "B")]
        orders.append(loader.aug_generator.get_state())
    assert all(not torch.equal(a, b) for i, a in enumerate(orders) for b in orders[i + 1 :])
