"""Spectrally normalised Conv2d, Linear and Embedding (Miyato et al. 2018, as BigGAN uses it).

Each layer keeps its raw ``weight`` as the parameter (so initialisers, optimisers and
regularisers see the usual tensor) and divides it by an estimate of its largest singular
value on every forward pass. The estimate comes from power iteration on the weight viewed
as a matrix ``[rows, -1]``; its left singular vector ``weight_u`` and the last estimate
``weight_sigma`` are buffers, so they are in ``state_dict`` (checkpoints resume exactly)
and are not parameters. Only training mode advances the iteration; eval mode reuses the
stored vector and changes nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_EPS = 1e-6  # the official BigGAN 128x128 launch script passes --SN_eps 1e-6


def estimate_sigma(
    matrix: torch.Tensor, u: torch.Tensor, n_power_iterations: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest singular value of ``matrix`` (differentiable) and the refined left vector.

    The singular vectors are found without gradient; sigma = u' W v is then differentiable
    in W. The returned vector is a fresh tensor, never the caller's buffer.
    """
    # the iteration and sigma stay in the weight's precision even under autocast
    with torch.no_grad(), torch.autocast(matrix.device.type, enabled=False):
        left = u
        for _ in range(n_power_iterations):
            right = F.normalize(left @ matrix, dim=0, eps=eps)
            left = F.normalize(matrix @ right, dim=0, eps=eps)
        left, right = left.clone(), right.clone()
    with torch.autocast(matrix.device.type, enabled=False):
        sigma = torch.dot(left, matrix @ right)
    return sigma, left


class _SpectralWeight:
    """Mixin for a layer whose ``weight`` parameter is used divided by its spectral norm."""

    weight: nn.Parameter
    training: bool
    weight_u: torch.Tensor
    weight_sigma: torch.Tensor

    def _init_spectral(self, rows: int, n_power_iterations: int, eps: float) -> None:
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be at least 1, not {n_power_iterations}")
        self.n_power_iterations = n_power_iterations
        self.sn_eps = eps
        start = F.normalize(torch.randn(rows), dim=0, eps=eps)
        self.register_buffer("weight_u", start)
        self.register_buffer("weight_sigma", torch.ones(()))

    def normalised_weight(self) -> torch.Tensor:
        w = self.weight
        matrix = w.reshape(w.shape[0], -1)
        u = self.weight_u.to(matrix.dtype)
        sigma, u_new = estimate_sigma(matrix, u, self.n_power_iterations, self.sn_eps)
        if self.training:
            with torch.no_grad():
                self.weight_u.copy_(u_new)
                self.weight_sigma.copy_(sigma.detach())
        return w / sigma


class SNConv2d(nn.Conv2d, _SpectralWeight):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        *,
        n_power_iterations: int = 1,
        eps: float = DEFAULT_EPS,
    ) -> None:
        if padding is None:
            padding = kernel_size // 2  # "same" for the odd kernels used here
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self._init_spectral(out_channels, n_power_iterations, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalised_weight(), self.bias)


class SNLinear(nn.Linear, _SpectralWeight):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        n_power_iterations: int = 1,
        eps: float = DEFAULT_EPS,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._init_spectral(out_features, n_power_iterations, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalised_weight(), self.bias)


class SNEmbedding(nn.Embedding, _SpectralWeight):
    """Embedding table ``[num_embeddings, dim]`` normalised as a matrix of that shape."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        n_power_iterations: int = 1,
        eps: float = DEFAULT_EPS,
    ) -> None:
        super().__init__(num_embeddings, embedding_dim)
        self._init_spectral(num_embeddings, n_power_iterations, eps)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.normalised_weight())


SPECTRAL_LAYERS = (SNConv2d, SNLinear, SNEmbedding)
