"""Latents for BigGAN sampling: the truncation trick by resampling."""

from __future__ import annotations

import math

import torch


def truncated_normal(
    shape: tuple[int, ...] | torch.Size,
    threshold: float | None,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal values, each redrawn until ``|z| <= threshold``.

    ``threshold`` None or infinite gives the plain normal; 0 gives zeros, the limit of a
    shrinking threshold (the mean latent, as StyleGAN2's psi 0 gives the average w). The
    draws come from ``generator`` only (on its device unless ``device`` says otherwise),
    so a seeded generator gives the same latents every time.
    """
    if threshold is not None and not threshold >= 0:
        raise ValueError(f"truncation threshold must be 0 or more, not {threshold}")
    if device is None and generator is not None:
        device = generator.device
    z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if threshold is None or math.isinf(threshold):
        return z
    if threshold == 0:
        return torch.zeros_like(z)
    outside = z.abs() > threshold
    while bool(outside.any()):
        fresh = torch.randn(int(outside.sum()), generator=generator, device=z.device, dtype=dtype)
        z[outside] = fresh
        outside = z.abs() > threshold
    return z


# M. Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011), single
# precision: a polynomial in w = -log(1 - x^2), one for the centre (w < 5), one for the tails
_ERFINV_CENTRE = (
    2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
    -0.00125372503, -0.00417768164, 0.246640727, 1.50140941,
)  # fmt: skip
_ERFINV_TAILS = (
    -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
    -0.0076224613, 0.00943887047, 1.00167406, 2.83297682,
)  # fmt: skip


def _horner(coefficients: tuple[float, ...], w: torch.Tensor) -> torch.Tensor:
    p = torch.full_like(w, coefficients[0])
    for c in coefficients[1:]:
        p = p * w + c
    return p


def erfinv(x: torch.Tensor) -> torch.Tensor:
    """The inverse error function of x in (-1, 1), to float32 precision, from elementwise
    operations alone (ONNX has no erfinv)."""
    w = -torch.log((1.0 - x) * (1.0 + x))
    centre = _horner(_ERFINV_CENTRE, w - 2.5)
    tails = _horner(_ERFINV_TAILS, torch.sqrt(w) - 3.0)
    return torch.where(w < 5.0, centre, tails) * x


def resample_tails(z: torch.Tensor, truncation: torch.Tensor) -> torch.Tensor:
    """`truncated_normal`'s truncation as a function of z, for a graph without random draws.

    A value within +-truncation is kept; one beyond it is replaced by a truncated-normal
    value, the one at the quantile of the tail it lies in (uniform for N(0, 1) draws, so
    the replacement is distributed as a redraw). z drawn by `truncated_normal` therefore
    passes unchanged, and a plain N(0, 1) z comes out truncated normal. Truncation 1 means
    none, as everywhere in BigGAN's sampling; `truncation` is a 0-d tensor.
    """
    root2 = 2.0**0.5
    inner = torch.erf(truncation / root2)  # P(|x| <= t) for x ~ N(0, 1)
    a = z.abs()
    tail = ((torch.erf(a / root2) - inner) / (1.0 - inner)).clamp(0.0, 1.0)
    redrawn = root2 * erfinv(inner * (2.0 * tail - 1.0))
    kept = (a <= truncation) | (truncation == 1.0)
    return torch.where(kept, z, redrawn)
