"""`train.model.preset: auto`: BigGAN's official plan for the data's resolution.

ajbrock/BigGAN-PyTorch's BigGAN.py (G_arch, D_arch) sizes both networks by resolution as
multiples of a width `ch`, 64 by default (96 is its 128 px ImageNet launch setting), and
puts self-attention at 64x64. The preset writes that plan into the keys: `ch` and `d_ch`
64, the resolution's channel multipliers (gan/models/biggan/arch.py), and the attention
resolution of G and D: 64 from 128 px; 32 at 64 px, where the official G attends at its
full 64x64 output, a size ganops does not place attention at (at most half the image: D
never reaches the full size), so the middle resolution serves; none at 32 px, as the
official CIFAR-10 launch script (`--G_attn 0 --D_attn 0`) and its [4, 4, 4, 4] plan have.
With hierarchical z (`hier`), z_dim is the official default 128 rounded down to a multiple
of the chunks it splits into (one per G block and one for the input), as the official
Generator rounds it: 128 at 32 and 512 px, 125 at 64, 126 at 128 and 256.
"""

from __future__ import annotations

from typing import Any

from gan.models.biggan.arch import official_widths
from gan.models.family import DataInfo

CH = 64
Z_DIM = 128
ATTENTION = {32: 0, 64: 32, 128: 64, 256: 64, 512: 64}


def auto(data: DataInfo, hier: bool) -> dict[str, Any]:
    g_widths, d_widths = official_widths(data.resolution)
    attention = ATTENTION[data.resolution]
    chunks = len(g_widths) if hier else 1  # the 4x4 input's, then one per block
    return {
        "model.z_dim": Z_DIM // chunks * chunks,
        "model.ch": CH,
        "model.d_ch": CH,
        "model.g_widths": list(g_widths),
        "model.d_widths": list(d_widths) if d_widths else None,  # None: the 32 px plan
        "model.attention": attention,
        "model.d_attention": attention,
    }
