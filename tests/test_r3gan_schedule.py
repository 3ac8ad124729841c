"""The official presets' schedules through the trainer's family hook (Schedule): the cosine,
each value applied and logged at every step, an exact resume mid-schedule, two ranks."""

from __future__ import annotations

import math
import sys
import types

import pandas as pd
import pytest
import torch
from conftest import assert_same_state, straight_and_resumed
from test_r3gan_family import r3_tiny
from test_training import tiny

from gan.io import load_torch
from gan.models import FAMILIES
from gan.models.dcgan import DCGAN
from gan.models.family import Schedule
from gan.models.r3gan.schedule import cosine
from gan.training.checkpoint import list_checkpoints
from gan.training.loop import train

FIXED_ADA = {"ada": {"mode": "fixed", "groups": ["geometric"]}}


def official_cosine(cur_nimg, base_value, total_nimg, final_value):
    """training/training_loop.py's cosine_decay_with_warmup, without warm-up or hold."""
    decay = 0.5 * (1 + math.cos(math.pi * cur_nimg / float(total_nimg)))
    value = base_value + (1 - decay) * (final_value - base_value)
    return final_value if cur_nimg > total_nimg else value


@pytest.mark.parametrize("images", [0, 1, 999, 10_000, 19_999, 20_000, 20_001, 10**9])
def test_cosine_is_the_officials(images):
    assert cosine(images, 2e-4, 5e-5, 20_000) == pytest.approx(
        official_cosine(images, 2e-4, 20_000, 5e-5), rel=1e-12, abs=1e-18
    )


def test_every_schedule_is_applied_and_logged_at_every_step(digits16, tmp_path):
    """8 steps of 8 images over decay_kimg 0.048 (6 steps): lr 2e-4 -> 5e-5, beta2 0.9 ->
    0.99, gammas -> a tenth, ADA's p 0 -> 0.55, the EMA half-life 0 -> ema_kimg; then
    constant. log.csv's lr is the next step's (the lr schedulers'); the others are the
    values the logged step ran with."""
    model = {"decay_kimg": 0.048, "lr_end": 5e-5, "beta2_end": 0.99, "augment_p_end": 0.55}
    cfg = r3_tiny(digits16, tmp_path, steps=8, log_every=1, augment=FIXED_ADA, model=model)
    train(cfg)
    log = pd.read_csv(cfg.run_dir / "log.csv").set_index("step")
    m = cfg.model
    for done in range(1, 9):
        ran = (done - 1) * 8  # images seen before the step this row logs

        def along(start, end, images=ran):
            return official_cosine(images, start, 48, end)

        row = log.loc[done]
        for opt in ("G", "D"):
            assert row[f"lr_{opt}"] == pytest.approx(along(2e-4, 5e-5, done * 8), rel=1e-5)
            assert row[f"beta2_{opt}"] == pytest.approx(along(0.9, 0.99), rel=1e-5)
        assert row["r1_gamma"] == pytest.approx(along(m.r1_gamma, m.r1_gamma / 10), rel=1e-5)
        assert row["r2_gamma"] == pytest.approx(along(m.r2_gamma, m.r2_gamma / 10), rel=1e-5)
        assert row["augment_p"] == pytest.approx(along(0.0, 0.55), abs=1e-6)
        assert row["ema_kimg"] == pytest.approx(along(0.0, m.ema_kimg), rel=1e-5)
    assert log.loc[8, "beta2_G"] == pytest.approx(0.99) and log.loc[1, "augment_p"] == 0.0
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    for opt in ("G", "D"):
        (group,) = state["optimizers"][opt]["param_groups"]
        assert group["lr"] == pytest.approx(5e-5) and tuple(group["betas"]) == (0.0, 0.99)


def test_a_resume_mid_schedule_continues_every_value_exactly(digits16, tmp_path):
    """Stopped at step 8 of a 12-step cosine: the schedules are functions of the images
    seen, so the resumed run applies what the straight one did, down to ADA's p."""

    def make(d):
        model = {"decay_kimg": 0.096}
        return r3_tiny(digits16, d, augment=FIXED_ADA, model=model)

    straight, resumed, a, b = straight_and_resumed(make, tmp_path)
    for state in (a, b):  # fixed ADA never measures r_t: nan, which equals nothing
        assert state["rng"]["augment"]["ada"].pop("rt").isnan()
    for key in ("nets", "optimizers", "schedulers", "rng"):
        assert_same_state(a[key], b[key], key)
    log_a = pd.read_csv(straight.run_dir / "log.csv")
    log_b = pd.read_csv(resumed.run_dir / "log.csv")
    columns = ["lr_G", "beta2_D", "r1_gamma", "augment_p", "ema_kimg"]
    pd.testing.assert_frame_equal(log_a[columns], log_b[columns])


def test_two_ranks_follow_one_schedule(digits16, tmp_path):
    cfg = r3_tiny(digits16, tmp_path, steps=3, world_size=2, augment=FIXED_ADA)
    train(cfg)
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    ps = [float(r["augment"]["ada"]["p"]) for r in state["rank_rng"]]
    expected = official_cosine(2 * 8, 0.0, cfg.model.decay_kimg * 1000, 0.55)
    assert ps == pytest.approx([expected, expected])


class HalvedG(DCGAN):
    """Any family may schedule: DCGAN with G's lr halved after 2 steps and D's beta2 moved."""

    def schedule(self, step, batch_size):
        late = step >= 2
        return Schedule(
            lr_scale={"G": 0.5 if late else 1.0},
            betas={"D": (0.5, 0.9 if late else 0.999)},
            values={"late": float(late)},
        )


def test_the_hook_serves_any_family(digits16, tmp_path, monkeypatch):
    module = types.ModuleType("halved_family")
    module.HalvedG = HalvedG
    monkeypatch.setitem(sys.modules, "halved_family", module)
    monkeypatch.setitem(FAMILIES, "dcgan", "halved_family:HalvedG")
    cfg = tiny(digits16, tmp_path, steps=4, log_every=1)
    train(cfg)
    log = pd.read_csv(cfg.run_dir / "log.csv")
    assert list(log["lr_G"]) == pytest.approx([2e-4, 1e-4, 1e-4, 1e-4])  # the next step's
    assert list(log["lr_D"]) == pytest.approx([2e-4] * 4)
    assert list(log["beta2_D"]) == pytest.approx([0.999, 0.999, 0.9, 0.9])
    assert list(log["late"]) == [0.0, 0.0, 1.0, 1.0]
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    assert tuple(state["optimizers"]["D"]["param_groups"][0]["betas"]) == (0.5, 0.9)
    assert torch.tensor(log["loss_G_main"].to_numpy()).isfinite().all()
