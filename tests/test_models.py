import pytest
import torch

from gan.config import OptimConfig
from gan.models.dcgan import DCGAN, DCGANConfig, Discriminator, Generator
from gan.models.family import DataInfo


@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_per_resolution(resolution, channels):
    G = Generator(z_dim=16, width=8, resolution=resolution, channels=channels)
    D = Discriminator(width=8, resolution=resolution, channels=channels, norm="batch")
    x = G(torch.randn(2, 16))
    assert x.shape == (2, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (2,)


@pytest.mark.parametrize("resolution", [8, 512])
def test_dcgan_rejects_unsupported_resolution(resolution):
    with pytest.raises(ValueError, match="16 to 256"):
        Generator(16, 8, resolution, 1)


def test_wgan_gp_critic_has_no_batch_norm():
    cfg = DCGANConfig(loss="wgan-gp", width=8)
    fam = DCGAN(cfg, DataInfo(16, 1), OptimConfig(), torch.device("cpu"), lambda x: x)
    kinds = {type(m).__name__ for m in fam.nets["D"].modules()}
    assert "BatchNorm2d" not in kinds and "GroupNorm" in kinds


def test_generate_is_seeded():
    cfg = DCGANConfig(width=8, z_dim=8)
    G = DCGAN.build_generator(cfg, DataInfo(16, 1)).eval()
    a = DCGAN.generate(G, 4, torch.Generator().manual_seed(1))
    b = DCGAN.generate(G, 4, torch.Generator().manual_seed(1))
    c = DCGAN.generate(G, 4, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
