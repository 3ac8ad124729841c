"""FIR-filtered resampling in plain PyTorch (no custom kernels; any-order gradients).

The semantics follow StyleGAN2's ``upfirdn2d``: upsample by inserting ``up - 1`` zeros
after every pixel, pad (a negative pad crops), convolve with a 2-D low-pass filter and
keep every ``down``-th pixel. The filter is separable here: a normalised 1-D tap vector
(``[1, 3, 3, 1] / 8`` by default) applied along the width and then the height, which is
the same as the normalised outer product the official code builds. Everything is built
from reshape, ``F.pad``, ``F.conv2d`` and ``F.conv_transpose2d``, so R1 and path-length
regularisation can differentiate through it twice, on the CPU as on CUDA.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

DEFAULT_TAPS = (1.0, 3.0, 3.0, 1.0)

Padding = tuple[int, int, int, int]  # left, right, top, bottom


def fir_filter(taps: Sequence[float] = DEFAULT_TAPS) -> torch.Tensor:
    """The 1-D filter normalised to unit DC gain (its 2-D outer product sums to one)."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"FIR taps must be a non-empty 1-D sequence, got {taps!r}")
    return f / f.sum()


def _zero_stuff(x: torch.Tensor, up: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H*up, W*up] with the input at every up-th pixel, zeros elsewhere."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    return x.reshape(n, c, h * up, w * up)


def _pad_or_crop(x: torch.Tensor, padding: Padding) -> torch.Tensor:
    left, right, top, bottom = padding
    x = F.pad(x, [max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)])
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-top, 0) : h - max(-bottom, 0), max(-left, 0) : w - max(-right, 0)]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: Padding = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample, pad, FIR-filter (true convolution with f (x) f, times gain), downsample."""
    if up > 1:
        x = _zero_stuff(x, up)
    x = _pad_or_crop(x, padding)
    channels = x.shape[1]
    # conv2d correlates, so flip the taps to convolve; the 2-D gain splits over two passes.
    taps = (f.flip(0) * gain**0.5).to(dtype=x.dtype, device=x.device)
    if torch.onnx.is_in_onnx_export():  # a traced graph need not know C, which a
        return _filter_as_batch(x, taps, down)  # depthwise kernel's shape needs
    along_w = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    along_h = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    x = F.conv2d(x, along_w, stride=(1, down), groups=channels)
    return F.conv2d(x, along_h, stride=(down, 1), groups=channels)


def _filter_as_batch(x: torch.Tensor, taps: torch.Tensor, down: int) -> torch.Tensor:
    """upfirdn2d's two passes with every channel as an image of its own (the ONNX export's
    form: the same filter, the kernel's shape independent of the channel count)."""
    n, c, h, w = x.shape
    x = F.conv2d(x.reshape(n * c, 1, h, w), taps.view(1, 1, 1, -1), stride=(1, down))
    x = F.conv2d(x, taps.view(1, 1, -1, 1), stride=(down, 1))
    return x.reshape(n, c, x.shape[2], x.shape[3])


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """H x W -> up*H x up*W, filtered; gain up**2 keeps a constant image constant."""
    k = f.numel()
    lead, trail = (k + up - 1) // 2, (k - up) // 2
    return upfirdn2d(x, f, up=up, padding=(lead, trail, lead, trail), gain=up**2)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2) -> torch.Tensor:
    """H x W -> H/down x W/down, low-pass filtered before the decimation."""
    k = f.numel()
    lead, trail = (k - down + 1) // 2, (k - down) // 2
    return upfirdn2d(x, f, down=down, padding=(lead, trail, lead, trail))


def resample_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    f: torch.Tensor | None = None,
    *,
    up: int = 1,
    down: int = 1,
    groups: int = 1,
) -> torch.Tensor:
    """A same-padded k x k convolution, optionally upsampling or downsampling by 2 with f.

    up: a stride-``up`` transposed convolution (weight used as stored, not flipped, as the
    official synthesis layers do), then the filter with gain ``up**2``.
    down: the filter first, then a stride-``down`` convolution.
    weight is [out, in // groups, k, k], as for ``F.conv2d``.
    """
    k = weight.shape[-1]
    if up > 1 and down > 1:
        raise ValueError("resample_conv2d resamples in one direction at a time")
    if (up > 1 or down > 1) and f is None:
        raise ValueError("resampling needs a FIR filter")
    if up > 1:
        assert f is not None
        out_per_group = weight.shape[0] // groups
        in_per_group = weight.shape[1]
        w_t = weight.reshape(groups, out_per_group, in_per_group, k, k).transpose(1, 2)
        w_t = w_t.reshape(groups * in_per_group, out_per_group, k, k)
        x = F.conv_transpose2d(x, w_t, stride=up, groups=groups)
        # The transposed conv grew each side by k - 1 (right/bottom: k - up); trim or pad so
        # the filtered result is exactly up * H, aligned like the official layers.
        taps = f.numel()
        lead = k // 2 + (taps + up - 1) // 2 - (k - 1)
        trail = k // 2 + (taps - up) // 2 - (k - up)
        return upfirdn2d(x, f, padding=(lead, trail, lead, trail), gain=up**2)
    if down > 1:
        assert f is not None
        taps = f.numel()
        lead = k // 2 + (taps - down + 1) // 2
        trail = k // 2 + (taps - down) // 2
        x = upfirdn2d(x, f, padding=(lead, trail, lead, trail))
        return F.conv2d(x, weight, stride=down, groups=groups)
    return F.conv2d(x, weight, padding=k // 2, groups=groups)
