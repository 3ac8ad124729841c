import pytest
import torch

from gan.config import TrainConfig, dump_section
from gan.models.dcgan import DCGAN, DCGANConfig, Discriminator, Generator
from gan.models.family import DataInfo
from gan.train_config import OptimConfig
from gan.training.fingerprint import fingerprinted


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


def _dcgan(**model) -> DCGAN:
    cfg = DCGANConfig(z_dim=8, width=8, **model)
    return DCGAN(cfg, DataInfo(32, 1), OptimConfig(), torch.device("cpu"), lambda x: x)


def _kinds(net: torch.nn.Module) -> set[str]:
    return {type(m).__name__ for m in net.modules()}


def test_dcgan_defaults_keep_the_original_networks():
    fam = _dcgan()
    assert "SNConv2d" not in _kinds(fam.nets["D"]) and "BatchNorm2d" in _kinds(fam.nets["D"])
    old_g = Generator(z_dim=8, width=8, resolution=32, channels=1)
    old_d = Discriminator(width=8, resolution=32, channels=1, norm="batch")
    for new, old in ((fam.nets["G"], old_g), (fam.nets["D"], old_d)):
        shapes = [tuple(t.shape) for t in new.state_dict().values()]
        assert shapes == [tuple(t.shape) for t in old.state_dict().values()]


def test_dcgan_spectral_discriminator_drops_batch_norm_unless_asked():
    fam = _dcgan(d_spectral=True, loss="hinge")
    convs = [m for m in fam.nets["D"].modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(type(m).__name__ == "SNConv2d" for m in convs)
    assert "BatchNorm2d" not in _kinds(fam.nets["D"])
    assert "BatchNorm2d" in _kinds(_dcgan(d_spectral=True, d_norm="batch").nets["D"])
    x = torch.randn(3, 1, 32, 32)
    assert fam.nets["D"](x).shape == (3,)


def test_dcgan_separate_widths():
    fam = _dcgan(g_width=16, d_width=4)
    x = fam.nets["G"](torch.randn(2, 8))
    assert x.shape == (2, 1, 32, 32) and fam.nets["D"](x).shape == (2,)
    g_first = next(m for m in fam.nets["G"].modules() if isinstance(m, torch.nn.ConvTranspose2d))
    d_first = next(m for m in fam.nets["D"].modules() if isinstance(m, torch.nn.Conv2d))
    assert g_first.out_channels == 16 * 4 and d_first.out_channels == 4  # coarsest G, finest D
    assert DCGAN.build_generator(fam.cfg, DataInfo(32, 1)).state_dict().keys() == (
        fam.nets["G"].state_dict().keys()
    )


def _fingerprinted_model(**model) -> dict:
    return fingerprinted(dump_section(TrainConfig(model=DCGANConfig(**model))))["model"]


def test_dcgan_later_keys_at_their_defaults_stay_out_of_the_fingerprint():
    """Runs fingerprinted before g_width, d_width and d_spectral keep their fingerprints; a
    key written at its default trains the same as unwritten, so it is left out as well."""
    assert _fingerprinted_model().keys().isdisjoint({"g_width", "d_width", "d_spectral"})
    written = _fingerprinted_model(d_spectral=True, g_width=64)
    assert written["d_spectral"] is True and written["g_width"] == 64
    assert "d_width" not in written
    assert _fingerprinted_model(d_spectral=False, g_width=None) == _fingerprinted_model()
