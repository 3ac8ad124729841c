"""R3GAN's networks: the official presets' parameter counts through the family registry, the
initialisation rule, the plan checks, the stages' precision under bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from gan.models import get_family
from gan.models.family import DataInfo
from gan.models.r3gan.blocks import ACTIVATION_GAIN, ResidualBlock
from gan.models.r3gan.networks import Discriminator, Generator, Plan
from gan.train_config import OptimConfig

CIFAR = {"widths": [768] * 4, "cardinality": [96] * 4, "blocks": [2] * 4}
FFHQ64 = {"widths": [768] * 4 + [384], "cardinality": [96] * 4 + [48], "blocks": [2] * 5}
FFHQ256 = {
    "widths": [768] * 4 + [384, 192, 96],
    "cardinality": [96] * 4 + [48, 24, 12],
    "blocks": [2] * 7,
}


def count(net) -> int:
    return sum(p.numel() for p in net.parameters())


def build(model: dict, data: DataInfo):
    family = get_family("r3gan")
    cfg = family.config_class.model_validate({"family": "r3gan", **model})
    return family(cfg, data, OptimConfig(), torch.device("cpu"), lambda x: x)


@pytest.mark.parametrize(
    ("model", "data", "g_params", "d_params"),
    [
        ({**CIFAR, "conditional": True}, DataInfo(32, 3, 10), 20_781_952, 21_280_512),
        (CIFAR, DataInfo(32, 3), 20_732_160, 20_683_776),
        (FFHQ64, DataInfo(64, 3), 22_429_824, 22_381_440),
        (FFHQ256, DataInfo(256, 3), 23_057_952, 23_009_568),
    ],
    ids=["cifar10-conditional", "cifar10", "ffhq64", "ffhq256"],
)
def test_official_parameter_counts_through_the_family_registry(model, data, g_params, d_params):
    """The counts of brownvc/R3GAN's presets (train.py; z 64, class embedding 64 in G and
    the 4x4 width in D), built on the meta device: no memory, no initialisation time."""
    with torch.device("meta"):
        fam = build({"z_dim": 64, "class_dim": 64, "expansion": 2, **model}, data)
    assert count(fam.nets["G"]) == g_params
    assert count(fam.nets["D"]) == d_params


def _std_ratio(weight: torch.Tensor, gain: float) -> float:
    fan_in = weight.shape[1] * weight[0][0].numel()
    return float(weight.detach().std()) / (gain / math.sqrt(fan_in))


def test_initialisation_rule():
    """Block convs 1-2: N(0, sqrt(2/1.04) * L^(-1/4) / sqrt(fan_in)), conv 3 zero (every block
    starts as the identity); other layers N(0, 1/sqrt(fan_in)); biases zero; D's class
    embedding has gain 1/sqrt(width)."""
    torch.manual_seed(0)
    plan = Plan(widths=(128, 128, 64), cardinality=(16, 16, 8), blocks=(2, 1, 1))
    G = Generator(16, 1, plan, z_dim=32, c_dim=10, class_dim=16)
    D = Discriminator(16, 1, plan, c_dim=10)
    gain = ACTIVATION_GAIN * sum(plan.blocks) ** -0.25
    assert gain == pytest.approx(math.sqrt(2 / 1.04) / 4**0.25)
    for net in (G, D):
        found = [m for m in net.modules() if isinstance(m, ResidualBlock)]
        assert len(found) == sum(plan.blocks)
        for block in found:
            assert _std_ratio(block.conv1.weight, gain) == pytest.approx(1, abs=0.05)
            assert _std_ratio(block.conv2.weight, gain) == pytest.approx(1, abs=0.05)
            assert not block.conv3.weight.any()
            assert not block.act1.bias.any() and not block.act2.bias.any()
            x = torch.randn(2, block.conv1.in_channels, 4, 4)
            assert torch.equal(block(x), x)
    assert _std_ratio(G.stages[0].transition.linear.weight, 1) == pytest.approx(1, abs=0.05)
    assert G.stages[1].transition.conv is None  # 128 -> 128: no 1x1 convolution
    assert _std_ratio(G.stages[2].transition.conv.weight, 1) == pytest.approx(1, abs=0.1)
    assert float(G.stages[0].transition.basis.detach().std()) == pytest.approx(1, abs=0.1)
    assert _std_ratio(D.stages[0].transition.conv.weight, 1) == pytest.approx(1, abs=0.1)
    assert _std_ratio(D.stages[-1].transition.linear.weight, 1) == pytest.approx(1, abs=0.1)
    assert _std_ratio(D.embed.weight, 128**-0.5) == pytest.approx(1, abs=0.1)
    assert _std_ratio(G.embed.weight, 1) == pytest.approx(1, abs=0.25)  # 16 x 10 weights


def test_shapes_and_widths_per_stage():
    plan = Plan(widths=(16, 16, 8, 8), cardinality=(2, 2, 1, 1), blocks=(1, 1, 1, 1))
    G, D = Generator(32, 1, plan, z_dim=8), Discriminator(32, 1, plan)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 1, 32, 32) and D(x).shape == (3,)
    assert G.stages[1].transition.conv is None and G.stages[2].transition.conv is not None
    assert D.stages[1].transition.conv is not None  # 16 -> 8 px: 8 -> 16 channels


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ({"widths": [8, 8], "cardinality": [2], "blocks": [1, 1]}, "one entry per stage"),
        ({"widths": [0, 8], "cardinality": [2, 2], "blocks": [1, 1]}, "widths"),
    ],
)
def test_plan_keys_are_checked(model, match):
    with pytest.raises(ValidationError, match=match):
        get_family("r3gan").config_class.model_validate({"family": "r3gan", **model})


def test_plan_must_fit_the_resolution_and_the_groups():
    small = {"widths": [8, 8], "cardinality": [2, 2], "blocks": [1, 1]}
    with pytest.raises(ValueError, match="widths has 2 entries but 32 px needs 4"):
        build(small, DataInfo(32, 1))
    with pytest.raises(ValueError, match="cardinality 3 must divide"):
        build({**small, "cardinality": [3, 2]}, DataInfo(8, 1))
    with pytest.raises(ValueError, match="labelled data"):
        build({**small, "conditional": True}, DataInfo(8, 1))


def test_only_the_highest_stages_run_in_bf16_under_autocast():
    """CIFAR-10's split (3 of 4 stages in reduced precision): the 4x4 stages of G and D, G's
    class embedding and D's head run in fp32; autocast off, everything is fp32."""
    plan = Plan((8, 8, 8, 8), (2, 2, 2, 2), (1, 1, 1, 1), bf16_stages=3)
    G = Generator(32, 1, plan, z_dim=8, c_dim=3, class_dim=4)
    D = Discriminator(32, 1, plan, c_dim=3)
    dtypes: list[torch.dtype] = []
    for stage in [*G.stages, *D.stages]:
        stage.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    c = torch.eye(3)[[0, 1]]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = D(G(torch.randn(2, 8), c), c)
    assert dtypes == [torch.float32] + [torch.bfloat16] * 3 * 2 + [torch.float32]
    assert logits.dtype == torch.float32
    dtypes.clear()
    assert D(G(torch.randn(2, 8), c), c).dtype == torch.float32
    assert set(dtypes) == {torch.float32}
