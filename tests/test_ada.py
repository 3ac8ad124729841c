"""Adaptive discriminator augmentation: transforms, differentiability, p control, exact resume."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import torch
import yaml
from conftest import assert_same_state, straight_and_resumed
from test_training import tiny

from gan.config import TrainConfig, dump_section
from gan.data.ada import COLOUR, GEOMETRIC, AdaptiveAugment, DiscriminatorAugment
from gan.device import cpu_threads
from gan.errors import GanError
from gan.io import load_torch
from gan.models import get_family
from gan.models.family import DataInfo, StepContext
from gan.train_config import AdaConfig, AugmentConfig, OptimConfig
from gan.training.checkpoint import list_checkpoints
from gan.training.fingerprint import fingerprinted
from gan.training.loop import train
from gan.training.streams import Streams

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors on a shared CPU: one thread each."""
    with cpu_threads(1):
        yield


def images(channels: int, n: int = 16, size: int = 16) -> torch.Tensor:
    """Asymmetric images in [-1, 1]: a gradient plus a bright off-centre block and noise."""
    g = torch.Generator().manual_seed(1)
    ramp = torch.linspace(-1, 1, size)
    x = (ramp[None, :] * 0.5 + ramp[:, None] * 0.2).expand(n, channels, size, size).clone()
    x[:, :, 2:6, 3:9] = 0.9
    x += 0.05 * torch.randn(x.shape, generator=g)
    if channels == 3:
        x[:, 1] *= 0.5  # colours differ per channel
    return x.clamp(-1, 1)


def only(name: str, p: float, seed: int = 0, **cfg) -> AdaptiveAugment:
    aug = AdaptiveAugment(
        AdaConfig(mode="fixed", **cfg),
        16,
        CPU,
        seed,
        multipliers={k: float(k == name) for k in GEOMETRIC + COLOUR},
    )
    aug.p = torch.tensor(p)
    return aug


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", GEOMETRIC + COLOUR)
def test_each_transform_changes_images_at_p1_and_is_identity_at_p0(name, channels):
    x = images(channels)
    assert torch.equal(only(name, 0.0)(x), x)
    out = only(name, 1.0)(x)
    changed = (out - x).abs().flatten(1).amax(1) > 1e-3
    if channels == 1 and name in ("hue", "saturation"):
        assert torch.equal(out, x)  # colour-only transforms: 3 channels
    else:
        assert changed.any(), name
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_luma_flip_inverts_grey_images_and_groups_select_transforms():
    x = images(1)
    out = only("lumaflip", 1.0)(x)
    flipped = torch.isclose(out, -x, atol=1e-6).flatten(1).all(1)
    kept = torch.equal(out[~flipped], x[~flipped])
    assert flipped.any() and (~flipped).any() and kept  # half inverted, half untouched

    colour_only = AdaptiveAugment(AdaConfig(mode="fixed", p=0.9, groups=["color"]), 16, CPU, 0)
    geometric_only = AdaptiveAugment(
        AdaConfig(mode="fixed", p=0.9, groups=["geometric"]), 16, CPU, 0
    )
    x3 = images(3)
    # a colour matrix acts per pixel: per-pixel colour mixing leaves the spatial layout
    spatial = colour_only(x3) - colour_only(x3).mean((2, 3), keepdim=True)
    assert not torch.equal(colour_only(x3), x3) and spatial.abs().sum() > 0
    means = geometric_only(x3).mean((2, 3))  # resampling keeps the colours roughly
    assert (means - x3.mean((2, 3))).abs().max() < 0.6


@pytest.mark.parametrize("channels", [1, 3])
def test_gradients_flow_to_the_input(channels):
    x = images(channels).requires_grad_(True)
    aug = AdaptiveAugment(AdaConfig(mode="fixed", p=0.9), 16, CPU, 0)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    (aug(x) * weights).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs().flatten(1).sum(1) > 0).all()


def test_untouched_images_pass_exactly_and_draws_do_not_depend_on_p():
    x = images(3, n=64)
    low, high = (AdaptiveAugment(AdaConfig(mode="fixed", p=p), 16, CPU, 5) for p in (0.05, 0.3))
    a = low(x)
    untouched = (a == x).flatten(1).all(1)
    assert 0 < untouched.sum() < 64
    high(x)
    assert torch.equal(low.generator.get_state(), high.generator.get_state())


def _adaptive(p: float = 0.5, **kw) -> AdaptiveAugment:
    return AdaptiveAugment(AdaConfig(mode="adaptive", p=p, **kw), 16, CPU, 0)


def test_p_moves_towards_the_target_by_batch_interval_over_kimg():
    step = 16 * 4 / (500 * 1000)
    up = _adaptive()
    for i in range(8):
        up.observe_real(torch.full((16,), 2.0))  # D always sure the reals are real: r_t 1
        if i == 2:
            assert float(up.p) == 0.5  # no update before `interval` observations
    assert float(up.p) == pytest.approx(0.5 + 2 * step, abs=1e-7)
    assert float(up.log_values()["augment_rt"]) == 1.0

    down = _adaptive()
    for _ in range(4):
        down.observe_real(-torch.ones(16, 1, 3, 3))  # PatchGAN-shaped logits
    assert float(down.p) == pytest.approx(0.5 - step, abs=1e-7)

    floor = _adaptive(p=0.0)
    for _ in range(8):
        floor.observe_real(-torch.ones(16))
    assert float(floor.p) == 0.0  # clamped at 0

    mixed = _adaptive(kimg=0.064)  # step 1: p jumps to the bounds
    for _ in range(4):  # r_t = 0.5 < 0.6: down
        mixed.observe_real(torch.tensor([1.0] * 12 + [-1.0] * 4))
    assert float(mixed.p) == 0.0
    for _ in range(4):
        mixed.observe_real(torch.ones(16))
    assert 0.999 < float(mixed.p) < 1.0  # clamped below 1


def test_r_t_is_summed_over_ranks_through_sync():
    other_rank = torch.tensor([-48.0, 48.0])  # another rank's signs: 48 images, all negative

    aug = AdaptiveAugment(
        AdaConfig(mode="adaptive", p=0.5), 16, CPU, 0, sync=lambda t: t.add_(other_rank)
    )
    for _ in range(4):
        aug.observe_real(torch.ones(16))  # this rank: 64 positive
    assert float(aug.log_values()["augment_rt"]) == pytest.approx((64 - 48) / 112)
    assert float(aug.p) < 0.5  # r_t 0.14 is below the target


def test_fixed_mode_keeps_p():
    aug = AdaptiveAugment(AdaConfig(mode="fixed", p=0.3), 16, CPU, 0)
    for _ in range(12):
        aug.observe_real(torch.ones(16))
    assert float(aug.p) == pytest.approx(0.3) and set(aug.log_values()) == {"augment_p"}


def test_state_round_trip_resumes_the_same_augmentations_and_p():
    x = images(3)
    a = _adaptive(p=0.4, kimg=1.0)
    for i in range(6):  # mid-interval: 2 observations pending
        a(x)
        a.observe_real(torch.rand(16, generator=torch.Generator().manual_seed(i)) + 0.1)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = _adaptive(p=0.0, kimg=1.0)  # another start, same config
    b.load_state_dict(torch.load(buf, weights_only=True))
    for _ in range(2):
        for aug in (a, b):
            aug.observe_real(torch.ones(16))
    assert float(a.p) == float(b.p) == pytest.approx(0.4 + 2 * 16 * 4 / 1000)
    assert torch.equal(a(x), b(x))


def test_ada_off_is_the_former_diffaugment_and_unwritten_ada_is_not_dumped():
    off = DiscriminatorAugment(AugmentConfig(translate=0.125), 16, CPU, Streams(3))
    assert set(off.state_dict()) == {"generator"} and off.log_values() == {} and off.p is None
    x = images(1)
    assert not torch.equal(off(x), x)
    on = DiscriminatorAugment(AugmentConfig(ada={"mode": "fixed", "p": 0.2}), 16, CPU, Streams(3))
    assert set(on.state_dict()) == {"generator", "ada"} and float(on.p) == pytest.approx(0.2)

    # fingerprints of older runs: an ada section at its defaults is left out
    assert "ada" not in fingerprinted(dump_section(TrainConfig()))["augment"]
    written = TrainConfig.model_validate({"augment": {"ada": {"mode": "off"}}})
    assert dump_section(written)["augment"]["ada"]["mode"] == "off"
    on_cfg = TrainConfig.model_validate({"augment": {"ada": {"mode": "adaptive"}}})
    assert fingerprinted(dump_section(on_cfg))["augment"]["ada"]["mode"] == "adaptive"
    with pytest.raises(ValueError, match="each once"):
        AdaConfig(groups=["color", "color"])


def test_dcgan_with_ada_resumes_exactly_and_logs_p(digits16, tmp_path):
    ada = {"translate": 0.125, "ada": {"mode": "adaptive", "p": 0.2, "interval": 2, "kimg": 0.5}}
    straight, resumed, a, b = straight_and_resumed(
        lambda d: tiny(digits16, d, augment=ada), tmp_path
    )
    assert_same_state(a["nets"], b["nets"], "nets")
    assert_same_state(a["rng"], b["rng"], "rng")  # includes ADA's stream, p and pending signs
    log_a = pd.read_csv(straight.run_dir / "log.csv")
    log_b = pd.read_csv(resumed.run_dir / "log.csv")
    pd.testing.assert_series_equal(log_a["augment_p"], log_b["augment_p"])
    pd.testing.assert_series_equal(log_a["loss_G_main"], log_b["loss_G_main"])
    assert log_a["augment_p"].nunique() > 1  # it moved: 6 updates of 0.064
    assert float(a["rng"]["augment"]["ada"]["p"]) == pytest.approx(log_a["augment_p"].iloc[-1])


def test_bad_ada_params_name_the_key():
    from gan.config import parse_params

    with pytest.raises(GanError, match="train.augment.ada.interval"):
        parse_params({"train": {"augment": {"ada": {"mode": "adaptive", "interval": 0}}}})
    with pytest.raises(GanError, match="train.augment.ada.mode"):
        parse_params({"train": {"augment": {"ada": {"mode": "sometimes"}}}})
    off = yaml.safe_load("train: {augment: {ada: {mode: off}}}")  # YAML 1.1: false
    assert parse_params(off).train.augment.ada.mode == "off"


@pytest.mark.parametrize(
    ("name", "model", "data", "batch"),
    [
        ("dcgan", {"z_dim": 8, "width": 8}, DataInfo(16, 1), ["images"]),
        ("stylegan2", {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 256,
                       "channel_max": 16}, DataInfo(16, 3), ["images"]),
        ("cyclegan", {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2}, DataInfo(16, 3, 0, 2),
         ["A", "B"]),
    ],
)  # fmt: skip
def test_every_family_feeds_d_real_logits_to_adaptive_augmentation(name, model, data, batch):
    family = get_family(name)
    cfg = family.config_class.model_validate({"family": name, **model})
    ada = AugmentConfig(ada={"mode": "adaptive", "p": 0.5, "interval": 1, "kimg": 0.004})
    augment = DiscriminatorAugment(ada, 4, CPU, Streams(0))
    torch.manual_seed(0)
    fam = family(cfg, data, OptimConfig(), CPU, augment)
    images = {k: torch.rand(4, data.channels, 16, 16) * 2 - 1 for k in batch}
    (d_main,) = [p for p in fam.phases() if p.name == "D_main"]
    d_main.loss(StepContext(0, images))
    assert torch.isfinite(augment.ada.rt)  # one D pass observed, and p moved by a full step
    assert float(augment.p) in (0.0, pytest.approx(1.0, abs=1e-5))


def test_two_ranks_share_r_t_and_keep_one_p(digits16, tmp_path):
    """Under data parallelism every rank's signs are summed, so all ranks adapt p alike
    (their augmentations themselves draw from per-rank streams)."""
    ada = {"ada": {"mode": "adaptive", "p": 0.5, "interval": 1, "kimg": 0.05}}
    cfg = tiny(digits16, tmp_path, steps=8, world_size=2, augment=ada, log_every=1)
    train(cfg)
    ranks = load_torch(list_checkpoints(cfg.run_dir)[-1])["rank_rng"]
    a, b = (r["augment"]["ada"] for r in ranks)
    assert torch.equal(a["p"], b["p"]) and torch.equal(a["rt"], b["rt"])
    assert not torch.equal(a["generator"], b["generator"])
    # p moves by +-0.32 a step, so it can be back at 0.5 after 8: it moved on the way
    logged = pd.read_csv(cfg.run_dir / "log.csv")["augment_p"]
    assert (logged != 0.5).any()
