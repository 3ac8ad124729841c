"""Random translation: shift bounds, fill modes, and that the generator alone decides it."""

import torch

from gan.data.augment import random_translate


def _square(background: float) -> torch.Tensor:
    x = torch.full((64, 1, 8, 8), background)
    x[:, :, 3:5, 3:5] = -background  # a 2x2 square of the opposite colour
    return x


def test_zero_fill_pads_with_mid_grey_and_keeps_content():
    out = random_translate(_square(1.0), 0.25, torch.Generator().manual_seed(0))
    assert ((out == 0.0).flatten(1).any(1)).float().mean() > 0.5  # most shifts expose the pad
    assert ((out == -1.0).flatten(1).sum(1) == 4).all()  # the square never leaves the image


def test_edge_fill_keeps_the_background_colour_whatever_it_is():
    for background in (1.0, -1.0):
        x = _square(background)
        out = random_translate(x, 0.25, torch.Generator().manual_seed(0), fill="edge")
        assert set(out.unique().tolist()) == {background, -background}
        assert ((out == -background).flatten(1).sum(1) == 4).all()
        moved = (out != x).flatten(1).any(1)
        assert 0.5 < moved.float().mean() < 1.0  # most images shift, a few draw (0, 0)


def test_shift_is_bounded_and_seeded():
    x = _square(-1.0)
    a = random_translate(x, 0.25, torch.Generator().manual_seed(3), fill="edge")
    b = random_translate(x, 0.25, torch.Generator().manual_seed(3), fill="edge")
    assert torch.equal(a, b)
    rows = (a == 1.0).any(3).squeeze(1).float().argmax(1)  # first row of the square
    assert rows.min() >= 3 - 2 and rows.max() <= 3 + 2  # 0.25 of 8 px: at most 2 px
    assert rows.unique().numel() == 5
    assert torch.equal(random_translate(x, 0.0, torch.Generator()), x)


def test_rgb_keeps_its_layout_and_moves_all_channels_together():
    x = torch.rand(8, 3, 8, 8) * 2 - 1
    g = torch.Generator().manual_seed(0)
    for fill in ("zeros", "edge"):
        out = random_translate(x, 0.25, g, fill=fill)
        assert out.shape == x.shape and out.is_contiguous()
    cl = x.contiguous(memory_format=torch.channels_last)
    out = random_translate(cl, 0.25, torch.Generator().manual_seed(1))
    assert out.is_contiguous(memory_format=torch.channels_last)
    same = random_translate(x, 0.25, torch.Generator().manual_seed(1))
    assert torch.equal(out, same)
    # one shift per image: every channel of an image moves the same way
    marked = torch.zeros(4, 3, 8, 8)
    marked[:, :, 4, 4] = 1.0
    moved = random_translate(marked, 0.25, torch.Generator().manual_seed(2))
    assert torch.equal(moved[:, 0], moved[:, 1]) and torch.equal(moved[:, 1], moved[:, 2])
