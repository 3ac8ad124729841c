"""The family contract: lazy phases (loss gain, lr/betas by k/(k+1)), per-group lr
multipliers and eps, fp32 phases, tensor log values, persistent family state, EMA hook;
fake batches reused across phases, batches shared by phases, channels_last per family."""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest
import torch
from conftest import assert_same_state, straight_and_resumed
from test_training import tiny

from gan.data.shards import load_split
from gan.device import pick_precision
from gan.io import load_torch
from gan.models import FAMILIES, get_family
from gan.models.dcgan import DCGAN
from gan.models.family import OptimizerSpec, ParamGroup, Phase
from gan.objectives import build_objective
from gan.training.checkpoint import list_checkpoints
from gan.training.ema import half_life_beta
from gan.training.loop import run_phases, train
from gan.training.session import Session

EVERY = 2
SEEN: dict[str, list] = {}


class Toy(DCGAN):
    """DCGAN plus a lazy D regulariser every 2 steps that runs in fp32, a half-lr group
    for D's last layer, a persistent counter, and its own EMA schedule."""

    name = "dcgan"

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.count = torch.zeros((), dtype=torch.long)

    def phases(self) -> list[Phase]:
        return [*super().phases(), Phase("D_reg", "D", self._d_reg, every=EVERY, fp32=True)]

    def optimizers(self) -> dict[str, OptimizerSpec]:
        specs = super().optimizers()
        d = specs["D"]
        last = list(self.nets["D"].net[-1].parameters())
        rest = [p for p in d.params if all(p is not q for q in last)]
        specs["D"] = OptimizerSpec(
            rest, d.lr, d.betas, eps=1e-6, extra_groups=[ParamGroup(last, 0.5)]
        )
        return specs

    def _d_main(self, ctx):
        SEEN.setdefault("autocast_main", []).append(torch.is_autocast_enabled("cpu"))
        return super()._d_main(ctx)

    def _d_reg(self, ctx):
        SEEN.setdefault("reg_steps", []).append(ctx.step)
        SEEN.setdefault("autocast_reg", []).append(torch.is_autocast_enabled("cpu"))
        self.count += 1
        loss = sum(p.square().sum() for p in self.nets["D"].parameters()) * 1e-6
        loss.register_hook(lambda g: SEEN.setdefault("gain", []).append(float(g)))
        return loss, {"count": self.count.float()}

    def state_dict(self):
        return {"count": self.count.clone()}

    def load_state_dict(self, state):
        self.count = state["count"].clone()

    def ema_beta(self, step, batch_size, ema):
        return 0.5


@pytest.fixture
def toy(monkeypatch):
    module = types.ModuleType("toy_family")
    module.Toy = Toy
    monkeypatch.setitem(sys.modules, "toy_family", module)
    monkeypatch.setitem(FAMILIES, "dcgan", "toy_family:Toy")
    SEEN.clear()
    yield
    SEEN.clear()


def test_lazy_phase_runs_every_k_steps_with_gain_k_and_adjusted_optimiser(digits16, tmp_path, toy):
    cfg = tiny(digits16, tmp_path, steps=8, precision="bf16")
    train(cfg)
    assert SEEN["reg_steps"] == [0, 2, 4, 6]
    assert SEEN["gain"] == [float(EVERY)] * 4  # the loss reaches backward scaled by k
    assert SEEN["autocast_main"] == [True] * 8 and SEEN["autocast_reg"] == [False] * 4
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    d_groups = state["optimizers"]["D"]["param_groups"]
    ratio = EVERY / (EVERY + 1)
    b1, b2 = cfg.optim.d_betas
    assert d_groups[0]["lr"] == pytest.approx(cfg.optim.d_lr * ratio)
    assert d_groups[1]["lr"] == pytest.approx(cfg.optim.d_lr * ratio * 0.5)
    for g in d_groups:
        assert g["betas"] == pytest.approx((b1**ratio, b2**ratio)) and g["eps"] == 1e-6
    (g_group,) = state["optimizers"]["G"]["param_groups"]  # no lazy phase: untouched
    assert g_group["lr"] == cfg.optim.g_lr and tuple(g_group["betas"]) == cfg.optim.g_betas
    log = pd.read_csv(cfg.run_dir / "log.csv")  # tensor log values became numbers
    assert list(log["D_reg_count"]) == [2.0, 4.0]
    assert state["family_state"]["count"] == 4


def test_persistent_family_state_and_ema_hook_resume_exactly(digits16, tmp_path, toy):
    _, _, a, b = straight_and_resumed(lambda d: tiny(digits16, d), tmp_path)
    assert a["family_state"]["count"] == b["family_state"]["count"] == 6
    assert_same_state(a["nets"], b["nets"], "nets")
    assert_same_state(a["optimizers"], b["optimizers"], "optimizers")


def test_ema_hook_sets_the_average(digits16, tmp_path, toy):
    cfg = tiny(digits16, tmp_path, steps=1)  # tiny's own schedule would copy (warm-up)
    init = Session(cfg, load_split(cfg.data, "train"), pick_precision(torch.device("cpu")))
    initial = {k: v.clone() for k, v in init.family.nets["G"].state_dict().items()}
    train(cfg)
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    g, ema = state["nets"]["G"], state["nets"]["G_ema"]
    key = "net.0.weight"
    assert not torch.equal(g[key], initial[key])
    torch.testing.assert_close(ema[key], (initial[key] + g[key]) / 2)  # beta 0.5


def test_half_life_schedule_matches_stylegan2_ada():
    assert half_life_beta(10**6, 32, 10_000) == pytest.approx(0.5 ** (32 / 10_000))
    # during ramp-up the half-life is capped at rampup * images seen
    assert half_life_beta(9, 32, 10_000, rampup=0.05) == pytest.approx(0.5 ** (32 / 16.0))


def test_families_state_their_task():
    assert get_family("dcgan").task == "sample"
    assert get_family("cyclegan").task == "translate"


def test_phases_refuse_a_zero_interval():
    with pytest.raises(ValueError, match="every and repeats"):
        Phase("x", "D", lambda ctx: (torch.zeros(()), {}), every=0)


def _one_step(cfg, reuse: bool):
    """A session after one fp32 trainer step, and the number of G forwards the step ran."""
    cfg = cfg.model_copy(update={"reuse_fake": reuse})
    fp32 = pick_precision(torch.device("cpu"), "fp32")
    session = Session(cfg, load_split(cfg.data, "train"), fp32)
    calls = []
    session.family.nets["G"].register_forward_hook(lambda *_: calls.append(1))
    run_phases(session, 0, measure=False)
    return session, len(calls)


def test_reused_fakes_make_the_trainers_step_the_textbook_step(digits16, tmp_path):
    """pytorch/examples' DCGAN step: G(z) once, D on its detached copy, G's step on the
    same fakes through the updated D; one real batch drawn (and counted) per step."""
    cfg = tiny(digits16, tmp_path)
    ours, g_forwards = _one_step(cfg, reuse=True)
    fresh, g_forwards_fresh = _one_step(cfg, reuse=False)
    assert (g_forwards, g_forwards_fresh) == (1, 2)
    assert ours.images_seen == fresh.images_seen == cfg.batch_size  # G draws no batch
    plain = Session(cfg, load_split(cfg.data, "train"), pick_precision(torch.device("cpu"), "fp32"))
    G, D, noise = plain.family.nets["G"], plain.family.nets["D"], plain.family.noise
    opt_g, opt_d = plain.optimizers["G"], plain.optimizers["D"]
    real = plain.loader.next()["images"]
    fake = G(torch.randn(len(real), cfg.model.z_dim, generator=noise))
    opt_d.zero_grad(set_to_none=True)
    objective = build_objective(cfg.model.loss)
    objective.d_loss(D(real), D(fake.detach())).backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    objective.g_loss(D(fake)).backward()
    opt_g.step()
    for name, net in (("G", G), ("D", D)):
        assert_same_state(ours.family.nets[name].state_dict(), net.state_dict(), name)
    g_fresh, g_plain = fresh.family.nets["G"].state_dict(), G.state_dict()
    assert not torch.equal(g_fresh["net.0.weight"], g_plain["net.0.weight"])  # fresh latents


def test_channels_last_auto_follows_the_family_on_the_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for family in ("dcgan", "stylegan2", "biggan"):
        assert get_family(family).cpu_channels_last
    cyclegan = get_family("cyclegan").cpu_channels_last
    assert not cyclegan[False] and cyclegan[True]  # fp32: instance norm, reflection pad
    assert pick_precision(cpu, "auto", "auto", cpu_channels_last=True).channels_last
    assert not pick_precision(cpu, "auto", "auto", cpu_channels_last=False).channels_last
    assert not pick_precision(cpu, "auto", False, cpu_channels_last=True).channels_last
    assert pick_precision(cuda, "fp32", "auto").channels_last


def test_rebuilt_configs_keep_the_familys_paper_optimiser():
    """An HPO trial's config and a data-parallel rank's are rebuilt from the base config:
    optim keys params.yaml left unset stay unset there, so StyleGAN2 keeps its paper's
    Adam settings instead of the generic defaults."""
    from gan.config import TrainConfig, dump_as_given
    from gan.hpo.space import with_values
    from gan.models.family import DataInfo

    model = {"family": "stylegan2", "z_dim": 8, "w_dim": 8, "mapping_layers": 1,
             "channel_base": 64, "channel_max": 8}  # fmt: skip
    base = TrainConfig.model_validate({"model": model})
    trial = with_values(base, {"model.r1_gamma": 1.0, "optim.d_betas.0": 0.1})
    rank = TrainConfig.model_validate(dump_as_given(base))
    family = get_family("stylegan2")
    for cfg, d_betas in ((base, (0.0, 0.99)), (trial, (0.1, 0.999)), (rank, (0.0, 0.99))):
        fam = family(cfg.model, DataInfo(16, 1), cfg.optim, torch.device("cpu"), lambda x: x)
        specs = fam.optimizers()
        assert (specs["G"].lr, specs["G"].betas) == (0.002, (0.0, 0.99))
        assert specs["D"].betas == d_betas
    assert trial.model.r1_gamma == 1.0
