"""The mapping network z (+ label c) -> w, with the running mean of w and truncation."""

from __future__ import annotations

import torch
from torch import nn

from gan.models.layers.equalized import EqualizedLinear


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (StyleGAN's "pixel norm" of the latent)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """``num_layers`` equalised FC layers with leaky ReLU, lr multiplier ``lr_multiplier``.

    The input is the 2nd-moment-normalised z, concatenated (when ``c_dim > 0``) with the
    normalised embedding of the label c (one FC layer ``c_dim -> embed_features``, plain
    lr). ``z_dim = 0`` maps the label alone (the discriminator's cmap). With ``num_ws`` the
    output is broadcast to [N, num_ws, w_dim], else it is [N, w_dim].

    ``w_avg`` (a buffer, saved with the network) follows the batch mean of w with decay
    ``w_avg_beta`` on every training-mode forward that does not opt out; truncation pulls
    w towards it: ``w_avg + psi * (w - w_avg)``, for the first ``truncation_cutoff`` ws
    only when a cutoff is given.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        *,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        if z_dim <= 0 and c_dim <= 0:
            raise ValueError("a mapping network needs a latent (z_dim > 0) or a label (c_dim > 0)")
        if num_layers < 1:
            raise ValueError(f"mapping num_layers must be >= 1, got {num_layers}")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.w_avg_beta = w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        hidden = w_dim if layer_features is None else layer_features
        self.embed = EqualizedLinear(c_dim, embed_features) if c_dim else None
        widths = [z_dim + embed_features, *([hidden] * (num_layers - 1)), w_dim]
        self.layers = nn.Sequential(
            *(
                EqualizedLinear(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> torch.Tensor:
        parts = []
        if self.z_dim:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(
                    f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}"
                )
            parts.append(normalize_2nd_moment(z.float()))
        if self.embed is not None:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(
                    f"c must be [N, {self.c_dim}], got {None if c is None else tuple(c.shape)}"
                )
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        w = self.layers(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])

        if self.w_avg_beta is not None and self.training and update_w_avg:
            with torch.no_grad():
                # fp32 like every running average, also when w comes out of bf16 autocast
                self.w_avg.lerp_(w.detach().float().mean(dim=0), 1.0 - self.w_avg_beta)

        if self.num_ws is not None:
            w = w.unsqueeze(1).expand(-1, self.num_ws, -1)
        if truncation_psi != 1:
            w = self.truncate(w, truncation_psi, truncation_cutoff)
        return w

    def truncate(self, w: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        """w_avg + psi * (w - w_avg); with a cutoff only ws[:, :cutoff] (w must be [N, num_ws, w_dim])."""
        if self.w_avg_beta is None:
            raise ValueError("truncation needs w_avg: this mapping network does not track it")
        pulled = self.w_avg.to(w.dtype).lerp(w, psi)
        if cutoff is None:
            return pulled
        if w.ndim != 3:
            raise ValueError("a truncation cutoff needs broadcast ws [N, num_ws, w_dim]")
        keep = torch.arange(w.shape[1], device=w.device) < cutoff
        return torch.where(keep.view(1, -1, 1), pulled, w)
