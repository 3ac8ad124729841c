"""The BigGAN generator: shared class embedding, hierarchical latent, conditional BN."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from gan.models.biggan.arch import BOTTOM, attention_index, generator_stages
from gan.models.biggan.blocks import GBlock, orthogonal_init
from gan.models.layers.attention import SelfAttention, sn_conv1x1
from gan.models.layers.spectral import DEFAULT_EPS, SNConv2d, SNLinear


class Generator(nn.Module):
    """``G(z, y)``: latents ``[N, z_dim]`` and class indices ``[N]`` -> images in [-1, 1].

    With ``hier`` the latent is cut into ``len(blocks) + 1`` equal chunks: the first feeds
    the input linear layer (to a 4x4 map), chunk ``i + 1`` joins the shared class embedding
    to condition block ``i``'s batch norms. Without ``hier`` the whole latent feeds the
    input layer and every block sees the class embedding alone. ``z_dim`` must then split
    evenly (the official code silently drops the remainder).

    The shared embedding is a plain ``nn.Embedding`` (the official code found spectral
    norm on it harmful); every other weight is spectrally normalised.
    """

    def __init__(
        self,
        *,
        resolution: int = 128,
        ch: int = 96,
        z_dim: int = 120,
        shared_dim: int = 128,
        hier: bool = True,
        attention: int = 64,
        n_classes: int = 1000,
        img_channels: int = 3,
        bn_eps: float = 1e-5,
        sn_eps: float = DEFAULT_EPS,
        n_power_iterations: int = 1,
        widths: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        stages = generator_stages(resolution, ch, widths)
        slots = len(stages) + 1 if hier else 1
        if z_dim % slots:
            raise ValueError(
                f"z_dim={z_dim} does not split into {slots} equal chunks (hierarchical z at "
                f"resolution {resolution}); use a multiple of {slots}"
            )
        self.resolution, self.n_classes, self.img_channels = resolution, n_classes, img_channels
        self.z_dim, self.hier = z_dim, hier
        self.z_chunk = z_dim // slots
        cond_dim = shared_dim + (self.z_chunk if hier else 0)

        sn = {"eps": sn_eps, "n_power_iterations": n_power_iterations}
        conv = functools.partial(SNConv2d, **sn)
        norm_linear = functools.partial(SNLinear, bias=False, **sn)

        self.shared = nn.Embedding(n_classes, shared_dim)
        self.input = SNLinear(self.z_chunk, stages[0].c_in * BOTTOM * BOTTOM, **sn)
        self.blocks = nn.ModuleList(
            GBlock(s.c_in, s.c_out, cond_dim, conv, norm_linear, bn_eps) for s in stages
        )
        at = attention_index(stages, attention, "generator")
        self.attention_after = at
        self.attention = (
            SelfAttention(stages[at].c_out, sn_conv1x1(**sn)) if at is not None else None
        )
        self.out_norm = nn.BatchNorm2d(stages[-1].c_out, eps=bn_eps)
        self.out_conv = conv(stages[-1].c_out, img_channels, 3)
        orthogonal_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.synthesize(z, self.shared(y))

    def synthesize(self, z: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        """The forward pass from an already embedded class (for class interpolation)."""
        if z.shape[1] != self.z_dim:
            raise ValueError(f"expected z of width {self.z_dim}, got {tuple(z.shape)}")
        if self.hier:
            first, *rest = torch.split(z, self.z_chunk, dim=1)
            conds = [torch.cat([class_embedding, chunk], dim=1) for chunk in rest]
        else:
            first, conds = z, [class_embedding] * len(self.blocks)
        h = self.input(first).view(z.shape[0], -1, BOTTOM, BOTTOM)
        for i, (block, cond) in enumerate(zip(self.blocks, conds, strict=True)):
            h = block(h, cond)
            if i == self.attention_after:
                h = self.attention(h)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))

    def ortho_parameters(self, exclude_conditional_norm: bool = False) -> list[nn.Parameter]:
        """The parameters BigGAN's orthogonal regularisation applies to.

        The official training loop excludes only the shared embedding (``G.shared``); the
        conditional-BN gain/bias linear layers are regularised there. Set
        ``exclude_conditional_norm`` to leave those out as well.
        """
        skip = {id(p) for p in self.shared.parameters()}
        if exclude_conditional_norm:
            for block in self.blocks:
                for bn in (block.bn1, block.bn2):
                    skip |= {id(p) for p in bn.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]
