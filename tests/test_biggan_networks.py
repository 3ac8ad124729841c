import pytest
import torch

from gan.models.biggan.discriminator import Discriminator
from gan.models.biggan.generator import Generator
from gan.models.biggan.regularisation import orthogonal_regularisation
from gan.models.biggan.sampling import truncated_normal
from gan.models.layers.attention import SelfAttention
from gan.models.layers.conditional_norm import ConditionalBatchNorm2d
from gan.models.layers.spectral import SPECTRAL_LAYERS, SNConv2d, SNLinear

TINY = {"ch": 8, "n_classes": 10}
PASSES = 15


def tiny_g(resolution=32, img_channels=3, **kw):
    cfg = {"z_dim": 20, "shared_dim": 16, "hier": True, "attention": 16} | TINY | kw
    return Generator(resolution=resolution, img_channels=img_channels, **cfg)


def tiny_d(resolution=32, img_channels=3, **kw):
    cfg = {"attention": 16} | TINY | kw
    return Discriminator(resolution=resolution, img_channels=img_channels, **cfg)


def planted_spectrum(shape, top=3.0, ratio=0.7):
    """A random matrix (viewed [rows, -1]) with singular values top * ratio**i."""
    u, _, vh = torch.linalg.svd(torch.randn(shape[0], int(torch.tensor(shape[1:]).prod())))
    s = top * ratio ** torch.arange(min(u.shape[0], vh.shape[0]), dtype=torch.float32)
    return ((u[:, : len(s)] * s) @ vh[: len(s)]).reshape(shape)


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("img_channels", [1, 3])
def test_shapes(resolution, img_channels):
    torch.manual_seed(0)
    G, D = tiny_g(resolution, img_channels), tiny_d(resolution, img_channels)
    assert G.attention is not None and D.attention is not None
    y = torch.tensor([0, 3, 9])
    x = G(torch.randn(3, G.z_dim), y)
    assert x.shape == (3, img_channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (3,)


def test_width_plans_replace_the_official_ones():
    kw = {"resolution": 32, "ch": 8, "n_classes": 10, "img_channels": 1, "attention": 0}
    G = Generator(z_dim=20, shared_dim=16, widths=(4, 4, 2, 1), **kw)
    D = Discriminator(widths=(1, 2, 4, 4), **kw)
    assert [b.conv1.out_channels for b in G.blocks] == [32, 16, 8]
    assert [b.conv1.out_channels for b in D.blocks] == [8, 16, 32, 32]
    assert [b.downsample for b in D.blocks] == [True, True, True, False]
    x = G(torch.randn(2, 20), torch.tensor([1, 2]))
    assert x.shape == (2, 1, 32, 32) and D(x, torch.tensor([1, 2])).shape == (2,)
    with pytest.raises(ValueError, match="g_widths needs 4 multipliers"):
        Generator(z_dim=20, shared_dim=16, widths=(4, 2, 1), **kw)
    with pytest.raises(ValueError, match="d_widths needs 2 to 4 multipliers"):
        Discriminator(widths=(1, 2, 4, 4, 4), **kw)


def test_hierarchical_latent_split_and_validation():
    G = tiny_g()  # 3 blocks + the input: 4 chunks of 5
    assert G.z_chunk == 5 and G.blocks[0].bn1.gain.in_features == 16 + 5
    flat = tiny_g(hier=False)
    assert flat.z_chunk == 20 and flat.blocks[0].bn1.gain.in_features == 16
    with pytest.raises(ValueError, match="equal chunks"):
        tiny_g(z_dim=21)
    with pytest.raises(ValueError, match="attention must be 0 or one of"):
        tiny_g(attention=64)
    with pytest.raises(ValueError, match="resolutions"):
        tiny_g(resolution=48)


def test_every_latent_chunk_reaches_the_image():
    torch.manual_seed(0)
    G = tiny_g().eval()
    z, y = torch.randn(2, G.z_dim), torch.tensor([1, 2])
    base = G(z, y)
    for k in range(4):
        z2 = z.clone()
        z2[:, k * 5 : (k + 1) * 5] += 1.0
        assert not torch.allclose(G(z2, y), base)


def test_spectral_norm_converges_to_unit_top_singular_value():
    torch.manual_seed(0)
    G, D = tiny_g(), tiny_d()
    wrapped = [m for net in (G, D) for m in net.modules() if isinstance(m, SPECTRAL_LAYERS)]
    assert len(wrapped) > 20
    with torch.no_grad():
        for m in wrapped:  # orthogonal init has all singular values equal: too easy
            m.weight.copy_(planted_spectrum(m.weight.shape))
    y = torch.randint(0, 10, (2,))
    for _ in range(PASSES):  # each training pass runs one power iteration per layer
        with torch.no_grad():
            D(G(torch.randn(2, G.z_dim), y), y)
    for m in wrapped:
        w = m.normalised_weight().detach()
        top = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2)
        assert abs(top.item() - 1.0) < 1e-3, (m, top.item())
        assert torch.allclose(
            m.weight_sigma, torch.linalg.matrix_norm(m.weight.reshape(w.shape[0], -1), 2), rtol=1e-3
        )


def test_spectral_buffers_are_checkpointed_and_frozen_in_eval():
    torch.manual_seed(0)
    layer = SNConv2d(4, 6, 3)
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"weight", "bias"}
    state = layer.state_dict()
    assert state["weight_u"].shape == (6,) and "weight_sigma" in state
    x = torch.randn(2, 4, 8, 8)
    before = layer.weight_u.clone()
    layer.train()(x)
    assert not torch.equal(layer.weight_u, before)
    after_train = layer.weight_u.clone()
    out_a = layer.eval()(x)
    out_b = layer(x)
    assert torch.equal(layer.weight_u, after_train) and torch.equal(out_a, out_b)
    clone = SNConv2d(4, 6, 3)
    clone.load_state_dict(layer.state_dict())
    assert torch.equal(clone.train()(x), layer.train()(x))


def test_eval_passes_change_no_buffer():
    torch.manual_seed(0)
    G, D = tiny_g().eval(), tiny_d().eval()
    before = {k: v.clone() for net in (G, D) for k, v in net.state_dict().items()}
    y = torch.tensor([1, 2])
    with torch.no_grad():
        D(G(torch.randn(2, G.z_dim), y), y)
    after = {k: v for net in (G, D) for k, v in net.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_generator_norms_are_batch_norms_for_standing_statistics():
    norms = [m for m in tiny_g().modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 2 * 3 + 1  # two conditional norms per block, one at the output


def test_spectral_norm_under_autocast():
    lin = SNLinear(8, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lin(torch.randn(3, 8))
    assert out.shape == (3, 4) and lin.weight_sigma.dtype == torch.float32


def test_spectral_layers_survive_repeated_calls_before_backward():
    lin = SNLinear(5, 3)
    x = torch.randn(2, 5)
    (lin(x).sum() + lin(x).sum()).backward()  # u updates twice, graph stays valid
    assert lin.weight.grad is not None


def test_orthogonal_regularisation():
    q, _ = torch.linalg.qr(torch.randn(8, 8))
    conv_like = q[:4].reshape(4, 2, 2, 2)  # orthonormal rows once flattened
    assert orthogonal_regularisation([conv_like, torch.randn(7)]).item() < 1e-10
    scaled_rows = q[:4] * torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    assert orthogonal_regularisation([scaled_rows]).item() < 1e-10  # diagonal is free
    w = torch.randn(6, 10, requires_grad=True)
    loss = orthogonal_regularisation([w], strength=1e-4)
    assert loss.ndim == 0 and loss.item() > 0
    gram = w.detach() @ w.detach().T
    expected = 1e-4 * (gram * (1 - torch.eye(6))).square().sum()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert w.grad.abs().sum() > 0
    assert orthogonal_regularisation([]).item() == 0.0


def test_ortho_parameters_exclude_the_shared_embedding():
    G = tiny_g()
    ids = {id(p) for p in G.ortho_parameters()}
    assert id(G.shared.weight) not in ids and id(G.blocks[0].bn1.gain.weight) in ids
    narrow = {id(p) for p in G.ortho_parameters(exclude_conditional_norm=True)}
    assert id(G.blocks[0].bn1.gain.weight) not in narrow and id(G.input.weight) in narrow
    assert orthogonal_regularisation(G.ortho_parameters()).item() > 0


def test_conditional_batch_norm_depends_on_the_class():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(4, 3)
    x = torch.randn(1, 4, 5, 5).repeat(2, 1, 1, 1)
    out = cbn(x, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert not torch.allclose(out[0], out[1])
    G = tiny_g().eval()
    z = torch.randn(1, G.z_dim).repeat(2, 1)
    images = G(z, torch.tensor([0, 1]))
    assert not torch.allclose(images[0], images[1])


def test_truncated_normal_bound_and_seed():
    z = truncated_normal((64, 120), 0.5, torch.Generator().manual_seed(3))
    assert z.shape == (64, 120) and z.abs().max() <= 0.5
    assert z.std() > 0.2  # not collapsed to 0
    again = truncated_normal((64, 120), 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(z, again)
    plain = truncated_normal((1000,), None, torch.Generator().manual_seed(3))
    assert plain.abs().max() > 2.0
    assert torch.equal(truncated_normal((3,), 0.0), torch.zeros(3))  # the mean latent
    with pytest.raises(ValueError, match="0 or more"):
        truncated_normal((2,), -0.5)


def test_attention_block_is_identity_at_init():
    attn = SelfAttention(16)
    assert attn.gamma.item() == 0.0
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(attn(x), x)
    with torch.no_grad():
        attn.gamma.fill_(1.0)
    out = attn(x)
    assert out.shape == x.shape and not torch.allclose(out, x)


@pytest.fixture
def fast_init(monkeypatch):
    """Parameter counts do not depend on the values: skip the QR of orthogonal init."""
    monkeypatch.setattr(torch.nn.init, "orthogonal_", lambda w, *a, **k: w)


def test_parity_32(fast_init):
    G = Generator(
        resolution=32, ch=64, z_dim=128, shared_dim=128, hier=True, attention=0, n_classes=10
    )
    D = Discriminator(resolution=32, ch=64, attention=0, n_classes=10)
    assert n_params(G) == 4_373_251
    assert n_params(D) == 4_207_361


def test_parity_128(fast_init):
    """ajbrock/BigGAN-PyTorch launch_BigGAN_bs256x8.sh: --G_ch 96 --D_ch 96 --hier
    --dim_z 120 --shared_dim 128 --G_shared --G_attn 64 --D_attn 64, ImageNet classes."""
    G = Generator(
        resolution=128, ch=96, z_dim=120, shared_dim=128, hier=True, attention=64, n_classes=1000
    )
    assert n_params(G) == 70_433_988
    del G
    D = Discriminator(resolution=128, ch=96, attention=64, n_classes=1000)
    assert n_params(D) == 87_982_370
