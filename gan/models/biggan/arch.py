"""Channel plans of the official BigGAN networks, as multiples of the width ``ch``.

A plan lists the widths a network passes through: the generator's block ``i`` maps
``widths[i] -> widths[i + 1]`` and doubles the resolution from 4x4; the discriminator's
block ``i`` maps ``widths[i - 1] -> widths[i]`` (the image for ``i = 0``) and halves the
resolution when ``down[i]``. Values follow ajbrock/BigGAN-PyTorch's G_arch / D_arch; the
512 discriminator (absent there) follows the paper's 512x512 table.
"""

from __future__ import annotations

from dataclasses import dataclass

BOTTOM = 4  # the generator's first feature map is BOTTOM x BOTTOM

_G_WIDTHS: dict[int, tuple[int, ...]] = {
    32: (4, 4, 4, 4),
    64: (16, 16, 8, 4, 2),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
    512: (16, 16, 8, 8, 4, 2, 1, 1),
}

# (widths, which blocks downsample); every plan ends with one block at the final size
_D_PLANS: dict[int, tuple[tuple[int, ...], tuple[bool, ...]]] = {
    32: ((4, 4, 4, 4), (True, True, False, False)),
    64: ((1, 2, 4, 8, 16), (True,) * 4 + (False,)),
    128: ((1, 2, 4, 8, 16, 16), (True,) * 5 + (False,)),
    256: ((1, 2, 4, 8, 8, 16, 16), (True,) * 6 + (False,)),
    512: ((1, 1, 2, 4, 8, 8, 16, 16), (True,) * 7 + (False,)),
}

RESOLUTIONS = tuple(sorted(_G_WIDTHS))


@dataclass(frozen=True)
class Stage:
    """One residual block: channels in and out, and the resolution of its output."""

    c_in: int
    c_out: int
    out_resolution: int
    resamples: bool


def _check(resolution: int) -> None:
    if resolution not in _G_WIDTHS:
        raise ValueError(f"BigGAN supports resolutions {RESOLUTIONS}, not {resolution}")


def official_widths(resolution: int) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """The official plan of the resolution as `g_widths` and `d_widths` write it; `d_widths`
    None where the plan keeps its size in more than the last block (32 px: two blocks at
    8x8), which `d_widths` cannot say and None (the official plan) does."""
    _check(resolution)
    mults, down = _D_PLANS[resolution]
    halving = down == (True,) * (len(down) - 1) + (False,)
    return _G_WIDTHS[resolution], mults if halving else None


def generator_stages(
    resolution: int, ch: int, widths: tuple[int, ...] | None = None
) -> list[Stage]:
    """``widths`` (multipliers of ``ch``, 4x4 input first) replaces the official plan."""
    _check(resolution)
    if widths is not None and len(widths) != len(_G_WIDTHS[resolution]):
        n = len(_G_WIDTHS[resolution])
        raise ValueError(
            f"g_widths needs {n} multipliers at resolution {resolution} (4x4 input, then one "
            f"per block), not {len(widths)}"
        )
    w = [m * ch for m in (widths or _G_WIDTHS[resolution])]
    return [
        Stage(a, b, BOTTOM * 2 ** (i + 1), True)
        for i, (a, b) in enumerate(zip(w[:-1], w[1:], strict=True))
    ]


def discriminator_stages(
    resolution: int, ch: int, img_channels: int, widths: tuple[int, ...] | None = None
) -> list[Stage]:
    """``widths`` (block output multipliers of ``ch``) replaces the official plan; every
    block but the last then halves the resolution, as the official 64-512 plans do."""
    _check(resolution)
    mults, down = _D_PLANS[resolution]
    if widths is not None:
        if len(widths) < 2 or resolution >> (len(widths) - 1) < BOTTOM:
            raise ValueError(
                f"d_widths needs 2 to {resolution.bit_length() - 2} multipliers at resolution "
                f"{resolution} (every block but the last halves it, down to 4x4 at least), "
                f"not {len(widths)}"
            )
        mults, down = tuple(widths), (True,) * (len(widths) - 1) + (False,)
    widths = [img_channels] + [m * ch for m in mults]
    stages, size = [], resolution
    for i, d in enumerate(down):
        size //= 2 if d else 1
        stages.append(Stage(widths[i], widths[i + 1], size, d))
    return stages


def attention_index(stages: list[Stage], attention: int, net: str) -> int | None:
    """The block after which self-attention goes: the first with that output resolution.

    The official 32x32 discriminator labels all of its blocks 16x16, so there an
    ``attention=16`` adds a block after each of them; here placement follows the real
    output size and a network has at most one attention block.
    """
    if attention == 0:
        return None
    for i, s in enumerate(stages):
        if s.out_resolution == attention:
            return i
    choices = sorted({s.out_resolution for s in stages})
    raise ValueError(f"{net} attention must be 0 or one of {choices}, not {attention}")
