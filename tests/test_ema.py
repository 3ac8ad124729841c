import torch
from torch import nn

from gan.training.ema import ema_beta, update_ema


def test_warmup_copies_then_decays():
    assert ema_beta(0, 0.99, 10) == 0.0
    assert ema_beta(9, 0.99, 10) == 0.0
    assert ema_beta(10, 0.99, 10) == 0.99


def test_update_ema_lerps_parameters_and_copies_buffers():
    src, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        src.weight.fill_(1.0)
        ema.weight.fill_(0.0)
        src.running_mean.fill_(5.0)
    update_ema(ema, src, beta=0.9)
    assert torch.allclose(ema.weight, torch.full((3,), 0.1))
    assert torch.equal(ema.running_mean, src.running_mean)
    update_ema(ema, src, beta=0.0)
    assert torch.equal(ema.weight, src.weight)
