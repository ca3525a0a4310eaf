"""Per-texel colour moments of UV textures, and a loss that matches a generator's moments to the data's.

UV maps are aligned: a texel is the same point of the face in every sample, so the mean and the spread of
each texel's colour across samples describe the data distribution texel by texel. Matching both also
matches any pooled statistic of a UV region (its mean colour, and its colour spread, which is the average
per-texel variance plus the variance of the per-texel means).

A GAN only learns these moments through its discriminator. With the small batches of a CPU run the
discriminator stops telling G that its colour spreads are too small (see docs/textures.md), and a
direct moment term keeps pulling them towards the data's.
"""

from __future__ import annotations

import torch
from torch import nn


class DataTexelMoments(nn.Module):
    """Running per-texel colour mean and variance ``[3, R, R]`` over every real texture seen so far.

    Sums are kept (not a moving average): the data distribution does not change during training, so all
    samples count equally. Texels are weighted by the samples' masks, so unobserved texels do not count.
    """

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(1, resolution, resolution, dtype=torch.float64))
        self.register_buffer("total", torch.zeros(3, resolution, resolution, dtype=torch.float64))
        self.register_buffer("total_square", torch.zeros(3, resolution, resolution, dtype=torch.float64))

    @torch.no_grad()
    def update(self, textures: torch.Tensor, masks: torch.Tensor | None = None) -> None:
        """Add ``textures [B, 3, R, R]`` (weighted by ``masks [B, 1, R, R]`` in [0, 1], or all ones)."""
        textures = textures.to(self.total.dtype)
        masks = torch.ones_like(textures[:, :1]) if masks is None else masks.to(textures.dtype)
        self.weight += masks.sum(0)
        self.total += (textures * masks).sum(0)
        self.total_square += (textures.square() * masks).sum(0)

    def mean_and_variance(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-texel ``mean [3, R, R]``, ``variance [3, R, R]`` (float32) and ``observed [1, R, R]`` (bool:
        texels that some sample has covered)."""
        weight = self.weight.clamp(min=1e-12)
        mean = self.total / weight
        variance = (self.total_square / weight - mean.square()).clamp(min=0.0)
        return mean.float(), variance.float(), self.weight > 0


class TexelMomentLoss(nn.Module):
    """Squared differences between the generator's and the data's per-texel colour means and variances.

    For each batch the generated textures are split into two halves, and the loss is
    ``(mean_1 - m) * (mean_2 - m) + (var_1 - v) * (var_2 - v) / (4 * (v + min_std**2))`` per texel and channel,
    averaged over the texels the data covers (``m``, ``v``: the data's mean and variance). The halves are
    independent, so this is an unbiased estimate of the squared errors of the generator's true moments,
    and its gradient an unbiased estimate of theirs, from batches as small as 4. (The squared error of one
    batch's own moments would be biased by their sampling noise; moving averages over batches were tried
    and left G's spreads short, see docs/textures.md.) The variance term is about the squared error of the
    standard deviation, so both terms are in colour units squared; it can be negative for a single batch.
    Call :meth:`observe_data` with every real batch.
    """

    def __init__(self, resolution: int, min_std: float = 0.01) -> None:
        super().__init__()
        self.data = DataTexelMoments(resolution)
        self.min_variance = min_std**2

    def observe_data(self, textures: torch.Tensor, masks: torch.Tensor | None = None) -> None:
        """Add real ``textures [B, 3, R, R]`` (optional ``masks [B, 1, R, R]``) to the data's moments."""
        self.data.update(textures, masks)

    def forward(self, generated: torch.Tensor) -> torch.Tensor:
        """Scalar loss for generated textures ``[B, 3, R, R]``, B >= 4 (same value range as the observed data)."""
        half = generated.shape[0] // 2
        if half < 2:
            raise ValueError(f"moment loss: needs at least 4 generated textures per batch, got {generated.shape[0]}")
        first, second = generated[:half], generated[half:2 * half]
        data_mean, data_variance, observed = self.data.mean_and_variance()
        mean_term = (first.mean(0) - data_mean) * (second.mean(0) - data_mean)
        variance_term = (first.var(0) - data_variance) * (second.var(0) - data_variance)
        terms = (mean_term + variance_term / (4.0 * (data_variance + self.min_variance))) * observed
        return terms.sum() / (observed.sum() * 3).clamp(min=1)
