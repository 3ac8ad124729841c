"""Adversarial objectives: one registry, a loss added by registration only, RpGAN, and the
step context that carries a step's fakes from one phase to the next."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from test_training import tiny

from gan.config import TrainConfig
from gan.data.shards import load_split
from gan.device import pick_precision
from gan.errors import GanError
from gan.losses import zero_centred_penalty
from gan.models import get_family
from gan.models.family import DataInfo, StepContext
from gan.objectives import OBJECTIVES, Objective, PenaltyInputs, build_objective, register_objective
from gan.training.loop import train
from gan.training.session import Session

REAL = torch.tensor([2.0, 0.0])
FAKE = torch.tensor([-1.0, 0.5])
CALLS: list[str] = []


def sp(x):  # softplus
    return math.log1p(math.exp(x))


@pytest.fixture
def toy_objective():
    """A least-absolute-deviation loss, known to the project through registration only."""

    @register_objective
    class LeastAbsolute(Objective):
        name = "toy-l1"
        margin: float = 1.0

        def d_loss(self, real, fake):
            CALLS.append("d")
            return (real - self.margin).abs().mean() + (fake + self.margin).abs().mean()

        def g_loss(self, fake, real=None):
            CALLS.append("g")
            return (fake - self.margin).abs().mean()

    CALLS.clear()
    yield LeastAbsolute
    OBJECTIVES.pop("toy-l1")


def test_a_registered_objective_trains_a_family_by_name(digits16, tmp_path, toy_objective):
    cfg = tiny(digits16, tmp_path, steps=4, model={"family": "dcgan", "z_dim": 8, "width": 8,
               "loss": "toy-l1"}, log_every=2)  # fmt: skip
    summary = train(cfg)
    assert summary["params"]["model"]["loss"] == "toy-l1"
    assert CALLS.count("d") == 4 and CALLS.count("g") == 4  # one D and one G phase a step
    log = pd.read_csv(cfg.run_dir / "log.csv")
    assert log["loss_D_main"].notna().all() and (log["loss_G_main"] >= 0).all()


def test_a_family_refuses_objectives_it_does_not_declare(toy_objective):
    with pytest.raises(ValueError, match="unknown loss 'toy-l1'; choose one of"):
        TrainConfig.model_validate({"model": {"family": "stylegan2", "loss": "toy-l1"}})
    for family in ("stylegan2", "biggan", "cyclegan"):
        declared = get_family(family).config_class.objectives
        assert set(declared) <= set(OBJECTIVES) and "toy-l1" not in declared
    assert get_family("dcgan").config_class.objectives is None  # every registered one


def test_registering_a_second_class_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):

        @register_objective
        class Other(Objective):
            name = "hinge"


def test_rpgan_pairs_each_fake_with_a_real_and_adds_r1_r2():
    rp = build_objective("rpgan")
    assert rp.g_needs_real and not rp.penalises_gradients
    d_expected = (sp(-1 - 2) + sp(0.5 - 0)) / 2
    g_expected = (sp(2 + 1) + sp(0 - 0.5)) / 2
    assert rp.d_loss(REAL, FAKE).item() == pytest.approx(d_expected, rel=1e-6)
    assert rp.g_loss(FAKE, REAL).item() == pytest.approx(g_expected, rel=1e-6)
    with pytest.raises(ValueError, match="needs D's logits on real"):
        rp.g_loss(FAKE)
    # options are taken from the keys named like them; others are left to the family
    rp = build_objective("rpgan", r1_gamma=2.0, r2_gamma=4.0, gp_weight=3.0, width=8)
    assert (rp.r1_gamma, rp.r2_gamma) == (2.0, 4.0) and rp.penalises_gradients
    w = torch.full((1, 1, 2, 2), 0.5)  # D(x) = <w, x>: squared gradient norm 4 * 0.25 = 1
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    inputs = PenaltyInputs(critic, real, fake, torch.Generator(), lambda x: 2 * critic(x))
    loss, logs = rp.d_side(critic(real), critic(fake), inputs)
    assert logs["r1"].item() == pytest.approx(1.0) and logs["r2"].item() == pytest.approx(4.0)
    plain = rp.d_loss(critic(real), critic(fake))
    assert loss.item() == pytest.approx(plain.item() + 2.0 / 2 * 1.0 + 4.0 / 2 * 4.0, rel=1e-6)
    # lazy (every 3rd update): the penalties weighted by 3; skipped, none at all
    lazy, _ = rp.d_side(critic(real), critic(fake), inputs, penalty_scale=3)
    assert lazy.item() == pytest.approx(plain.item() + 3 * (1.0 + 8.0), rel=1e-6)
    skipped, logs = rp.d_side(critic(real), critic(fake), None)
    assert skipped.item() == pytest.approx(plain.item(), rel=1e-6) and "r1" not in logs
    skipped, logs = rp.d_side(critic(real), critic(fake), inputs, penalty_scale=0)
    assert skipped.item() == pytest.approx(plain.item(), rel=1e-6) and "r1" not in logs


def test_r1_and_r2_from_one_backward_call_equal_two_calls():
    """Given both logits, R1 and R2 come from one autograd call; their values and the
    gradients they give D's weights are those of a call each."""
    torch.manual_seed(0)
    D = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.LazyLinear(1)
    )
    real, fake = torch.randn(3, 1, 6, 6), torch.randn(3, 1, 6, 6)
    D(real)  # materialise the lazy layer

    def penalties(joint: bool):
        x, y = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
        rl, fl = D(x).squeeze(1), D(y).squeeze(1)
        inputs = PenaltyInputs(D, x, y, torch.Generator(), None, rl, fl)
        if joint:
            r1, r2 = inputs.r1(), inputs.r2()
        else:
            r1, r2 = zero_centred_penalty(x, rl), zero_centred_penalty(y, fl)
        D.zero_grad()
        (r1 + 3 * r2).backward()
        return r1.detach(), r2.detach(), [p.grad for p in D.parameters() if p.grad is not None]

    (a1, a2, ga), (b1, b2, gb) = penalties(True), penalties(False)
    assert torch.allclose(a1, b1) and torch.allclose(a2, b2) and a1 > 0 and a2 > 0
    assert len(ga) == len(gb) == 3  # the weights; the head's bias has no say in R1 or R2
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(ga, gb, strict=True))


@pytest.mark.parametrize(
    "model",
    [
        {"family": "dcgan", "z_dim": 8, "width": 8, "loss": "rpgan"},
        {"family": "stylegan2", "z_dim": 8, "w_dim": 8, "mapping_layers": 1,
         "channel_base": 64, "channel_max": 8, "loss": "rpgan", "r1_every": 2, "pl_weight": 0},
    ],
)  # fmt: skip
def test_rpgan_trains_in_families_that_declare_it(digits16, tmp_path, model):
    cfg = tiny(digits16, tmp_path, steps=3, model=model, log_every=1, batch_size=8)
    train(cfg)
    log = pd.read_csv(cfg.run_dir / "log.csv")
    assert torch.isfinite(torch.tensor(log["loss_G_main"].to_numpy())).all()


def rpgan_with_gammas_logs_both_penalties(cfg):
    """R3GAN's objective, penalties included, in a family without R1 of its own (issue
    #25): the gammas reach the objective, and D's log shows both penalties."""
    model = cfg.model
    objective = get_family(model.family).build_objective(model)
    assert (objective.r1_gamma, objective.r2_gamma) == (1.0, 0.5)
    train(cfg)
    log = pd.read_csv(cfg.run_dir / "log.csv")
    for key in ("D_main_r1", "D_main_r2"):
        assert (log[key] > 0).all(), key


def test_rpgan_gammas_add_r1_and_r2_in_dcgan(digits16, tmp_path):
    model = {"family": "dcgan", "z_dim": 8, "width": 8, "loss": "rpgan", "r1_gamma": 1.0,
             "r2_gamma": 0.5}  # fmt: skip
    rpgan_with_gammas_logs_both_penalties(
        tiny(digits16, tmp_path, steps=2, model=model, log_every=1, batch_size=8)
    )


@pytest.mark.parametrize("family", ["dcgan", "biggan"])
def test_gammas_without_rpgan_are_refused(family):
    with pytest.raises(ValueError, match="r1_gamma and r2_gamma are the rpgan loss"):
        TrainConfig(model={"family": family, "loss": "hinge", "r1_gamma": 1.0})
    with pytest.raises(ValueError, match="penalty_every is 4 but r1_gamma and r2_gamma are 0"):
        TrainConfig(model={"family": family, "loss": "rpgan", "penalty_every": 4})


def test_lazy_penalties_fall_on_every_kth_d_update_across_repeats():
    """`penalty_every` counts D's updates, not steps: with 2 D repeats per step and k = 3,
    the updates 0, 3, 6, 9 (steps 0, 1, 3, 4) carry the penalties, weighted by 3."""
    model = TrainConfig(
        model={"family": "dcgan", "loss": "rpgan", "r1_gamma": 1.0, "penalty_every": 3}
    ).model
    weights = [model.penalty_weight(step, r, 2) for step in range(5) for r in range(2)]
    assert weights == [3, 0, 0, 3, 0, 0, 3, 0, 0, 3]
    every = TrainConfig(model={"family": "dcgan", "loss": "rpgan", "r1_gamma": 1.0}).model
    assert {every.penalty_weight(step, r, 2) for step in range(5) for r in range(2)} == {1}


def test_lazy_penalties_in_dcgan_log_their_latest_value(digits16, tmp_path):
    """Every 4th of DCGAN's D updates (2 per step) penalised: the rows of steps 0, 2, 4
    show fresh R1/R2 and the others repeat the latest, never a gap."""
    model = {"family": "dcgan", "z_dim": 8, "width": 8, "loss": "rpgan", "r1_gamma": 1.0,
             "r2_gamma": 0.5, "n_critic": 2, "penalty_every": 4}  # fmt: skip
    cfg = tiny(digits16, tmp_path, steps=6, model=model, log_every=1, batch_size=8)
    train(cfg)
    r1 = pd.read_csv(cfg.run_dir / "log.csv")["D_main_r1"].to_numpy()
    assert (r1 > 0).all() and len(r1) == 6
    assert r1[1] == r1[0] and r1[3] == r1[2] and r1[5] == r1[4]
    assert r1[2] != r1[0] and r1[4] != r1[2]


def test_the_step_context_carries_fakes_and_a_phase_alone_makes_its_own(digits16, tmp_path):
    """D's phase leaves its fakes (with G's graph) in the step's context for G's phase; a G
    phase that finds none (run alone, or reuse off) generates afresh: nothing is kept on
    the family between phases or steps."""
    cfg = tiny(digits16, tmp_path)
    session = Session(cfg, load_split(cfg.data, "train"), pick_precision(torch.device("cpu")))
    family = session.family
    d_main, g_main = family.phases()
    session.train_only("D", graph_for="G")
    ctx = StepContext(0, session.loader.next())
    d_main.loss(ctx)
    assert ctx.fakes["G"].images.requires_grad and ctx.fakes["G"].latents is not None
    g_main.loss(ctx)
    assert ctx.fakes == {}  # taken
    calls = []
    family.nets["G"].register_forward_hook(lambda *_: calls.append(1))
    g_main.loss(StepContext(1, session.loader.next()))
    assert calls == [1]
    assert not [k for k in vars(family) if "fake" in k.lower()]


def test_families_answer_what_the_trainer_asks_about_their_data(digits16):
    split = load_split(digits16, "train")
    dcgan, cyclegan = get_family("dcgan"), get_family("cyclegan")
    assert dcgan.batch_sources(split) == {"": len(split)}
    info = DataInfo.from_manifest(split.manifest)
    assert (info.num_classes, info.domains) == (10, 1)
    with pytest.raises(GanError, match="cannot translate"):
        dcgan.translate(None, torch.zeros(1), "AtoB")
    assert dcgan.default_crossover(None) == 1
    assert cyclegan.task == "translate" and dcgan.task == "sample"
