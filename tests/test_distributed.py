"""Data-parallel training on the CPU with the gloo backend: real processes, real collectives."""

from __future__ import annotations

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import assert_same_state
from test_training import tiny

from gan.config import TrainConfig, dump_section
from gan.errors import GanError
from gan.io import load_torch
from gan.training.distributed import Ranks, average_gradients
from gan.training.fingerprint import fingerprint
from gan.training.loop import train


def _average_worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    net.weight.grad = torch.full_like(net.weight, float(rank + 1))
    net.bias.grad = None if rank == 0 else torch.full_like(net.bias, 2.0)  # rank 0: unused
    average_gradients(net.parameters(), Ranks(rank, 2))
    torch.save({"w": net.weight.grad, "b": net.bias.grad}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_gradients_are_replaced_by_their_mean_over_ranks(tmp_path):
    out = str(tmp_path / "grads")
    mp.spawn(_average_worker, args=((tmp_path / "rdv").as_uri(), out), nprocs=2)
    for rank in (0, 1):
        grads = load_torch(f"{out}.{rank}")
        assert torch.equal(grads["w"], torch.full((2, 3), 1.5))  # (1 + 2) / 2
        assert torch.equal(grads["b"], torch.full((2,), 1.0))  # (none = 0 + 2) / 2


def _wgan(data, tmp_path, run, steps):
    return tiny(
        data,
        tmp_path,
        run=run,
        steps=steps,
        world_size=2,
        model={"family": "dcgan", "z_dim": 8, "width": 8, "loss": "wgan-gp", "n_critic": 2},
        augment={"flip": True, "translate": 0.125},
    )


def test_two_ranks_resume_exactly_and_write_once(digits16, tmp_path):
    """wgan-gp (double backward), augmentation and batch norm across two ranks: 8 steps
    straight equal 4 steps then a resume to 8, down to every rank's random streams."""
    straight = train(_wgan(digits16, tmp_path, "straight", 8))
    train(_wgan(digits16, tmp_path, "resumed", 4))
    resumed = train(_wgan(digits16, tmp_path, "resumed", 8))
    assert resumed["resumed_from_step"] == 4 and straight["world_size"] == 2
    a = load_torch(tmp_path / "runs/straight/checkpoints/ckpt-00000008.pt")
    b = load_torch(tmp_path / "runs/resumed/checkpoints/ckpt-00000008.pt")
    assert len(a["rank_rng"]) == 2
    assert not torch.equal(a["rank_rng"][0]["loader"]["perm"], a["rank_rng"][1]["loader"]["perm"])
    for part in ("nets", "optimizers", "schedulers", "rng", "rank_rng"):
        assert_same_state(a[part], b[part], part)
    log = (tmp_path / "runs/straight/log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["4", "8"]  # one writer, one row per log
    run = json.loads((tmp_path / "runs/straight/run.json").read_text())
    assert run["fingerprint"] == straight["fingerprint"]


def test_cyclegan_trains_on_two_ranks(unpaired16, tmp_path):
    from test_cyclegan import tiny as cyclegan_tiny

    summary = train(cyclegan_tiny(unpaired16, tmp_path, steps=4, world_size=2, batch_size=4))
    assert summary["world_size"] == 2 and (tmp_path / "runs/cg/export").is_dir()
    ranks = load_torch(tmp_path / "runs/cg/checkpoints/ckpt-00000003.pt")["rank_rng"]
    pools = [r["family"]["pool_A"] for r in ranks]  # each rank's pool holds its own fakes
    assert not torch.equal(pools[0]["generator"], pools[1]["generator"])
    assert not torch.equal(pools[0]["images"], pools[1]["images"])


def test_a_diverging_run_stops_every_rank_with_one_error(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path, world_size=2, optim={"g_lr": 1e30, "d_lr": 1e30})
    with pytest.raises(GanError, match="training stopped: loss of phase .* on rank"):
        train(cfg)


def test_world_size_splits_the_batch_and_names_the_run(digits16, tmp_path):
    with pytest.raises(ValueError, match="batch_size 10 must be a multiple of train.world_size"):
        tiny(digits16, tmp_path, batch_size=10, world_size=4)
    one, two = tiny(digits16, tmp_path), tiny(digits16, tmp_path, world_size=2)
    assert fingerprint(dump_section(one), "h") != fingerprint(dump_section(two), "h")
    assert isinstance(two, TrainConfig)
    with pytest.raises(GanError, match="need train.world_size 1"):
        train(two, hooks=[lambda done, session: None])
