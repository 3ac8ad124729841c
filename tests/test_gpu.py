"""CUDA checks, run with `pytest -m gpu` on a machine with a GPU; skipped without CUDA.

bf16 autocast keeps losses and weights finite; a stopped and resumed run on the GPU ends
bit for bit where a straight run ends, CUDA random stream included (StyleGAN2's
per-pixel noise draws from it); two NCCL ranks end with identical weights, checked
independently of the trainer's own end-of-run check.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import assert_same_state, straight_and_resumed
from test_stylegan2_family import sg_tiny
from test_training import tiny

from gan.config import TrainConfig, dump_section
from gan.io import load_torch
from gan.training.checkpoint import list_checkpoints
from gan.training.loop import train

# cuBLAS needs this before its first call for deterministic GEMMs (exact-resume test)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
two_gpus = pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="needs two CUDA devices (NCCL data parallelism)"
)


@pytest.fixture
def deterministic():
    """cuDNN and cuBLAS in their deterministic modes for the test, then as they were."""
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


def _all_finite(state) -> bool:
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(_all_finite(v) for v in state.values())
    return True


@pytest.mark.parametrize("make", [tiny, sg_tiny], ids=["dcgan", "stylegan2"])
def test_bf16_training_stays_finite(make, digits16, tmp_path):
    cfg = make(digits16, tmp_path, device="cuda", precision="bf16", steps=40, log_every=10)
    summary = train(cfg)
    assert summary["bf16"] and summary["device"].startswith("cuda")
    log = pd.read_csv(cfg.run_dir / "log.csv")
    losses = log[[c for c in log.columns if c.startswith("loss_")]]
    assert len(log) == 4 and bool(losses.notna().all().all())
    assert torch.isfinite(torch.tensor(losses.to_numpy())).all()
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    assert _all_finite(state["nets"]) and _all_finite(state["optimizers"])


def test_resume_on_cuda_is_exact_with_its_random_state(digits16, tmp_path, deterministic):
    _, _, a, b = straight_and_resumed(
        lambda d: sg_tiny(digits16, d, device="cuda", precision="fp32"), tmp_path
    )
    assert "cuda" in a["rng"]  # the CUDA stream is saved, and restored on resume
    for part in ("nets", "optimizers", "schedulers", "rng", "family_state"):
        assert_same_state(a[part], b[part], part)


def _nccl_rank(rank: int, init: str, cfg_dump: dict, out: str) -> None:
    """A rank of a group made here: the trainer joins it; a hook saves this rank's weights."""
    os.environ["LOCAL_RANK"] = str(rank)
    dist.init_process_group("nccl", init_method=init, rank=rank, world_size=2)
    cfg = TrainConfig.model_validate(cfg_dump)

    def save(done: int, session) -> None:
        if done == cfg.steps:
            nets = session.family.nets
            torch.save({k: {n: t.cpu() for n, t in v.state_dict().items()} for k, v in nets.items()},
                       f"{out}.{rank}")  # fmt: skip

    try:
        assert dist.get_backend() == "nccl"
        train(cfg, hooks=[save])
    finally:
        dist.destroy_process_group()


@two_gpus
def test_two_nccl_ranks_end_with_identical_weights(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path, device="cuda", world_size=2, steps=12,
               augment={"flip": True, "translate": 0.125})  # fmt: skip
    out = str(tmp_path / "weights")
    mp.spawn(_nccl_rank, args=((tmp_path / "rdv").as_uri(), dump_section(cfg), out), nprocs=2)
    ranks = [load_torch(f"{out}.{r}") for r in (0, 1)]
    assert_same_state(ranks[0], ranks[1], "nets")
    spawned = train(cfg.model_copy(update={"run": "spawned"}))  # gan train's own spawn path
    assert spawned["world_size"] == 2 and spawned["device"].startswith("cuda")
