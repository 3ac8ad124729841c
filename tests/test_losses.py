import math

import pytest
import torch

from gan.losses import gradient_penalty, r1_penalty
from gan.objectives import build_objective

REAL = torch.tensor([2.0, 0.0])
FAKE = torch.tensor([-1.0, 0.5])


def sp(x):  # softplus
    return math.log1p(math.exp(x))


@pytest.mark.parametrize(
    ("name", "d_expected", "g_expected"),
    [
        (
            "nonsaturating",
            (sp(-2) + sp(0)) / 2 + (sp(-1) + sp(0.5)) / 2,
            (sp(1) + sp(-0.5)) / 2,
        ),
        ("hinge", (0 + 1) / 2 + (0 + 1.5) / 2, -(-1 + 0.5) / 2),
        ("lsgan", 0.5 * ((1 + 1) / 2 + (1 + 0.25) / 2), 0.5 * (4 + 0.25) / 2),
        ("wgan-gp", (-1 + 0.5) / 2 - (2 + 0) / 2, -(-1 + 0.5) / 2),
    ],
)
def test_loss_values(name, d_expected, g_expected):
    objective = build_objective(name)
    assert objective.d_loss(REAL, FAKE).item() == pytest.approx(d_expected, rel=1e-6)
    assert objective.g_loss(FAKE).item() == pytest.approx(g_expected, rel=1e-6)


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss"):
        build_objective("nope")


def test_gradient_penalty_zero_for_unit_gradient_and_positive_otherwise():
    w = torch.randn(1, 2, 3, 3)
    real, fake = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    gen = torch.Generator().manual_seed(0)
    unit = w / w.norm()
    assert gradient_penalty(
        lambda x: (x * unit).flatten(1).sum(1), real, fake, gen
    ).item() == pytest.approx(0, abs=1e-10)
    scale = torch.tensor(3.0, requires_grad=True)  # a parameter of the critic
    gp = gradient_penalty(lambda x: (x * scale * unit).flatten(1).sum(1), real, fake, gen)
    assert gp.item() == pytest.approx(4.0, rel=1e-5)  # (3 - 1)^2
    # the penalty trains the critic: d/ds (s - 1)^2 = 2 (s - 1) = 4 reaches its parameter
    (grad,) = torch.autograd.grad(gp, scale)
    assert grad.item() == pytest.approx(4.0, rel=1e-5)


def test_r1_penalty_is_squared_gradient_norm():
    w = torch.full((1, 1, 2, 2), 0.5)
    real = torch.randn(3, 1, 2, 2)
    assert r1_penalty(lambda x: (x * w).flatten(1).sum(1), real).item() == pytest.approx(4 * 0.25)
