"""StyleGAN2 networks: shapes, modulation, truncation, w_avg, mbstd, FIR ops, regularisers,
double backward, and parameter-count parity with the official networks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan.losses import r1_penalty
from gan.models.layers.fir import fir_filter, resample_conv2d, upfirdn2d, upsample2d
from gan.models.layers.modulated import ModulatedConv2d, modulated_conv2d
from gan.models.stylegan2 import (
    Discriminator,
    Generator,
    MinibatchStdLayer,
    PathLengthPenalty,
    mix_styles,
)
from gan.models.stylegan2.discriminator import mbstd_groups

TINY = dict(channel_base=512, channel_max=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_G(res: int = 16, channels: int = 3, c_dim: int = 0) -> Generator:
    return Generator(
        img_resolution=res, img_channels=channels, z_dim=32, w_dim=32, c_dim=c_dim,
        mapping_layers=2, **TINY,
    )  # fmt: skip


def tiny_D(res: int = 16, channels: int = 3, c_dim: int = 0, **kw) -> Discriminator:
    return Discriminator(
        img_resolution=res, img_channels=channels, c_dim=c_dim, cmap_layers=2, **TINY, **kw
    )


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("res", "base", "g_params", "d_params"),
    [(1024, 32768, 30_370_060, 29_012_513), (256, 16384, 24_767_458, 24_001_089)],
)
def test_parameter_counts_match_official(res, base, g_params, d_params):
    with torch.device("meta"):  # shapes only: no memory, no init time
        G = Generator(img_resolution=res, z_dim=512, w_dim=512, mapping_layers=8, channel_base=base)
        D = Discriminator(img_resolution=res, channel_base=base, channel_max=512)
    assert count(G) == g_params
    assert count(D) == d_params
    assert G.num_ws == 2 * int(math.log2(res)) - 2
    assert G.w_avg.shape == (512,)
    assert "mapping.w_avg" in dict(G.named_buffers())


@pytest.mark.parametrize("res", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(res, channels):
    G, D = tiny_G(res, channels), tiny_D(res, channels)
    img = G(torch.randn(2, 32))
    assert img.shape == (2, channels, res, res)
    assert torch.isfinite(img).all()
    assert D(img).shape == (2, 1)


def test_conditional_shapes_and_labels_matter():
    G, D = tiny_G(32, 3, c_dim=5).eval(), tiny_D(32, 3, c_dim=5)
    z = torch.randn(4, 32)
    c = F.one_hot(torch.tensor([0, 1, 2, 3]), 5).float()
    img = G(z, c, noise_mode="const")
    assert img.shape == (4, 3, 32, 32)
    assert D(img, c).shape == (4, 1)
    other = F.one_hot(torch.tensor([4, 4, 4, 4]), 5).float()
    assert not torch.allclose(img, G(z, other, noise_mode="const"))
    assert not torch.allclose(D(img, c), D(img, other))
    with pytest.raises(ValueError, match="c must be"):
        G(z)


def test_style_changes_modulated_output():
    torch.manual_seed(0)
    layer = ModulatedConv2d(8, 8, 3, w_dim=16)
    x = torch.randn(1, 8, 8, 8)
    w1, w2 = torch.randn(1, 16), torch.randn(1, 16)
    assert torch.equal(layer(x, w1), layer(x, w1))
    assert not torch.allclose(layer(x, w1), layer(x, w2))


def test_demodulation_keeps_unit_std():
    torch.manual_seed(0)
    layer = ModulatedConv2d(64, 64, 3, w_dim=32)
    y = layer(torch.randn(8, 64, 16, 16), torch.randn(8, 32))
    std = y[:, :, 1:-1, 1:-1].std(dim=(1, 2, 3))  # the border sees zero padding
    assert ((std > 0.7) & (std < 1.4)).all(), std
    # The 2x up layer also interpolates: on white noise the [1, 3, 3, 1] filter's taps
    # (0.25, 0.75 per axis after the gain) leave std 0.25^2 + 0.75^2 = 0.625.
    up = ModulatedConv2d(64, 64, 3, w_dim=32, up=2)
    std_up = up(torch.randn(8, 64, 16, 16), torch.randn(8, 32))[:, :, 2:-2, 2:-2].std()
    assert std_up.item() == pytest.approx(0.625, rel=0.1)


def test_modulated_conv_matches_per_sample_kernels():
    """Scaling activations equals building each sample's modulated, demodulated kernel."""
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    kernels = weight.unsqueeze(0) * styles.reshape(3, 1, 4, 1, 1)
    kernels = kernels * (kernels.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    expected = F.conv2d(x.reshape(1, 12, 6, 6), kernels.reshape(15, 4, 3, 3), padding=1, groups=3)
    got = modulated_conv2d(x, weight, styles)
    torch.testing.assert_close(got, expected.reshape(3, 5, 6, 6), rtol=1e-5, atol=1e-5)


def test_fir_semantics():
    f = fir_filter()
    torch.testing.assert_close(f, torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8)
    const = torch.full((1, 2, 8, 8), 3.0)
    up = upsample2d(const, f)
    assert up.shape == (1, 2, 16, 16)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0))
    # An impulse upsampled by 2 spreads as the 2-D filter times 4 (the upsampling gain).
    impulse = torch.zeros(1, 1, 4, 4)
    impulse[0, 0, 1, 1] = 1.0
    out = upfirdn2d(impulse, f, up=2, padding=(2, 1, 2, 1), gain=4)
    assert out.sum().item() == pytest.approx(4.0)
    torch.testing.assert_close(out[0, 0, 1:5, 1:5], torch.outer(f, f) * 4)
    x = torch.randn(2, 3, 8, 8)
    assert resample_conv2d(x, torch.randn(5, 3, 3, 3), f, down=2).shape == (2, 5, 4, 4)
    assert resample_conv2d(x, torch.randn(5, 3, 1, 1), f, down=2).shape == (2, 5, 4, 4)
    assert resample_conv2d(x, torch.randn(5, 3, 3, 3), f, up=2).shape == (2, 5, 16, 16)


def test_resampling_ops_support_double_backward():
    f = fir_filter().double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(1, 2, dtype=torch.float64, requires_grad=True)
    for up, down in [(2, 1), (1, 2)]:
        fn = lambda x, w, up=up, down=down: resample_conv2d(x, w, f, up=up, down=down)  # noqa: E731
        assert torch.autograd.gradgradcheck(fn, (x, w))
    modconv = lambda x, w, s: modulated_conv2d(x, w, s, up=2, resample_filter=f)  # noqa: E731
    assert torch.autograd.gradgradcheck(modconv, (x, w, s))


def test_noise_modes():
    G = tiny_G().eval()
    z = torch.randn(2, 32)
    with torch.no_grad():
        for module in G.modules():
            if hasattr(module, "noise_strength"):
                module.noise_strength.fill_(0.5)
    assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
    assert torch.equal(G(z, noise_mode="none"), G(z, noise_mode="none"))
    assert not torch.allclose(G(z, noise_mode="const"), G(z, noise_mode="none"))
    assert not torch.allclose(G(z, noise_mode="random"), G(z, noise_mode="random"))
    noise_buffers = [k for k in G.state_dict() if k.endswith("noise_const")]
    assert len(noise_buffers) == G.num_ws - 1  # one per synthesis conv layer
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="fixed")


def test_truncation_psi_zero_gives_one_image():
    G = tiny_G(c_dim=0).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        img = G(torch.randn(4, 32), truncation_psi=0.0, noise_mode="const")
    torch.testing.assert_close(img, img[:1].expand_as(img))
    # A cutoff truncates only the first ws.
    ws = G.mapping(torch.randn(3, 32), truncation_psi=0.0, truncation_cutoff=2)
    torch.testing.assert_close(ws[:, :2], G.w_avg.expand(3, 2, -1))
    assert not torch.allclose(ws[:, 2], G.w_avg.expand(3, -1))


def test_w_avg_tracks_training_mode_only():
    G = tiny_G()
    z = torch.randn(8, 32)
    G.eval()
    G(z)
    assert torch.equal(G.w_avg, torch.zeros(32))
    G.train()
    G(z, update_w_avg=False)
    assert torch.equal(G.w_avg, torch.zeros(32))
    G(z)
    w = G.mapping(z, update_w_avg=False)[:, 0]
    torch.testing.assert_close(G.w_avg, 0.005 * w.mean(0).detach())


@pytest.mark.parametrize("batch", [2, 4, 8, 6])
def test_minibatch_std(batch):
    layer = MinibatchStdLayer(group_size=4, num_channels=1)
    x = torch.randn(batch, 6, 4, 4)
    out = layer(x)
    assert out.shape == (batch, 7, 4, 4)
    torch.testing.assert_close(out[:, :6], x)
    g = mbstd_groups(batch, 4)
    assert g == {2: 2, 4: 4, 8: 4, 6: 3}[batch]
    # Sample n belongs to the group {n mod (N/G) + k * N/G}.
    stride = batch // g
    members = x[torch.arange(0, batch, stride)]
    expected = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(out[0, 6], expected.expand(4, 4))
    D = tiny_D(16, 3, mbstd_group_size=4)
    assert D(torch.randn(batch, 3, 16, 16)).shape == (batch, 1)


def test_r1_through_discriminator_double_backward():
    D = tiny_D(16, 3, c_dim=3)
    real = torch.randn(4, 3, 16, 16)
    c = F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    penalty = r1_penalty(lambda x: D(x, c), real)
    assert penalty.ndim == 0 and penalty.item() > 0
    penalty.backward()
    # Every parameter but the output bias (a constant shift of the logit) shapes dD/dx.
    grads = {name: p.grad for name, p in D.named_parameters()}
    assert [name for name, g in grads.items() if g is None] == ["epilogue.out.bias"]
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)
    assert D.blocks["16"].conv1.weight.grad.abs().sum() > 0


def test_path_length_penalty_on_linear_synthesis():
    """img = <ws[:, k], v> summed over k: d(sum img * y)/d ws[n, k] = y_n v, so every
    sample's length is |y_n| * |v| with y_n = noise_n / sqrt(1 * 1)."""
    v = torch.tensor([3.0, 4.0])  # |v| = 5
    synthesis = lambda ws: (ws @ v).sum(dim=1).reshape(-1, 1, 1, 1)  # noqa: E731
    ws = torch.randn(6, 3, 2, requires_grad=True)
    pl = PathLengthPenalty(decay=0.01)
    gen = torch.Generator().manual_seed(7)
    penalty, lengths = pl(synthesis, ws, gen)

    noise = torch.randn((6, 1, 1, 1), generator=torch.Generator().manual_seed(7))
    expected = noise.flatten().abs() * 5
    torch.testing.assert_close(lengths, expected)
    mean1 = 0.01 * expected.mean()
    torch.testing.assert_close(pl.pl_mean, mean1)
    torch.testing.assert_close(penalty, (expected - mean1).square())

    saved, gen_state = {k: t.clone() for k, t in pl.state_dict().items()}, gen.get_state()
    penalty2, lengths2 = pl(synthesis, ws, gen)
    mean2 = mean1 + 0.01 * (lengths2.mean() - mean1)
    torch.testing.assert_close(pl.pl_mean, mean2.detach())
    torch.testing.assert_close(penalty2, (lengths2 - mean2).square())

    resumed = PathLengthPenalty(decay=0.01)
    resumed.load_state_dict(saved)
    gen_resumed = torch.Generator()
    gen_resumed.set_state(gen_state)
    penalty3, _ = resumed(synthesis, ws, gen_resumed)
    torch.testing.assert_close(penalty3, penalty2)
    torch.testing.assert_close(resumed.pl_mean, pl.pl_mean)


def test_path_length_double_backward_through_generator():
    G = tiny_G()
    ws = G.mapping(torch.randn(2, 32))
    penalty, lengths = PathLengthPenalty()(G.synthesis, ws, torch.Generator().manual_seed(0))
    assert penalty.shape == lengths.shape == (2,)
    penalty.mean().backward()
    assert G.synthesis.blocks["16"].conv1.conv.weight.grad.abs().sum() > 0
    assert G.mapping.layers[0].weight.grad is not None


def test_style_mixing():
    G = tiny_G()
    z = torch.randn(4, 32)
    ws = G.mapping(z, update_w_avg=False)
    assert mix_styles(G.mapping, ws, z, None, 0.0, torch.Generator().manual_seed(1)) is ws
    mixed = mix_styles(G.mapping, ws, z, None, 1.0, torch.Generator().manual_seed(1))
    again = mix_styles(G.mapping, ws, z, None, 1.0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(mixed, again)
    same = (mixed == ws).all(dim=2).all(dim=0)  # [num_ws]: untouched ws
    cutoff = int(same.sum())
    assert 1 <= cutoff < G.num_ws
    assert same[:cutoff].all() and not same[cutoff:].any()
    cutoffs = set()
    for seed in range(40):
        out = mix_styles(G.mapping, ws, z, None, 0.5, torch.Generator().manual_seed(seed))
        cutoffs.add(int((out == ws).all(dim=2).all(dim=0).sum()))
    assert G.num_ws in cutoffs and len(cutoffs) > 2  # some unmixed, several cutoffs
