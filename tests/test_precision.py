"""train.precision auto: bf16 autocast where the hardware has fast bf16 kernels, fp32
elsewhere, recorded with its reason; losses, logits and penalties stay fp32 under it."""

from __future__ import annotations

import json

import pytest
import torch
from test_training import tiny

import gan.device
from gan.device import cpu_bf16_reason, pick_precision
from gan.objectives import PenaltyInputs, build_objective
from gan.training.loop import train

CPU = torch.device("cpu")


@pytest.mark.parametrize("fast", [True, False])
def test_auto_picks_bf16_only_where_the_cpu_has_fast_kernels(monkeypatch, fast):
    reason = "CPU with AMX bf16 matrix units" if fast else None
    monkeypatch.setattr(gan.device, "cpu_bf16_reason", lambda: reason)
    p = pick_precision(CPU, "auto", "auto", cpu_channels_last={True: False, False: True})
    assert p.bf16 is fast and p.channels_last is not fast  # the layout measured per precision
    assert p.describe().startswith("bf16 autocast" if fast else "fp32")
    assert ("AMX" in p.reason) if fast else ("without bf16" in p.reason)
    forced = pick_precision(CPU, "fp32")
    assert not forced.bf16 and forced.reason == "train.precision: fp32"
    assert pick_precision(CPU, "bf16").bf16
    kept = pick_precision(CPU, "auto", cpu_bf16=False)  # a family that measured worse in bf16
    assert not kept.bf16 and ("quality" in kept.reason if fast else "without bf16" in kept.reason)
    assert pick_precision(CPU, "bf16", cpu_bf16=False).bf16  # asked for: given


def test_biggan_keeps_fp32_on_the_cpu_and_its_penalty_is_fp32():
    from gan.models import get_family
    from gan.models.biggan.regularisation import orthogonal_regularisation

    assert not get_family("biggan").cpu_bf16
    assert all(get_family(f).cpu_bf16 for f in ("dcgan", "stylegan2", "cyclegan"))
    w = torch.randn(8, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ortho = orthogonal_regularisation([w])
    assert ortho.dtype == torch.float32
    assert torch.allclose(ortho, orthogonal_regularisation([w]))


def test_the_cpu_probe_answers_without_a_benchmark():
    reason = cpu_bf16_reason()
    assert reason is None or "AMX" in reason
    assert (reason is not None) == pick_precision(CPU).bf16


def test_losses_and_penalties_are_fp32_under_bf16_autocast():
    w = torch.full((1, 1, 2, 2), 0.5)

    def critic(x):
        return (x * w.to(x.dtype)).flatten(1).sum(1)

    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2).bfloat16()
    gp = build_objective("wgan-gp", gp_weight=10.0)
    seen = []

    def watched(x):
        seen.append((x.dtype, torch.is_autocast_enabled("cpu")))
        return critic(x)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = gp.d_side(
            critic(real).bfloat16(),
            critic(fake),
            PenaltyInputs(watched, real, fake, torch.Generator()),
        )
        g = gp.g_side(critic(fake))
    assert loss.dtype == torch.float32 and g.dtype == torch.float32
    assert logs["gp"].dtype == torch.float32
    assert seen == [(torch.float32, False)]  # the penalty's D pass: fp32, autocast off


def test_run_json_records_the_precision_and_why(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path, steps=2, precision="bf16", log_every=1)
    train(cfg)
    summary = json.loads((cfg.run_dir / "run.json").read_text())
    assert summary["bf16"] is True
    assert (
        summary["precision"].startswith("bf16 autocast")
        and "train.precision: bf16" in summary["precision"]
    )
