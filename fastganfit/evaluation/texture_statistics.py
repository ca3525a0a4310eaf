"""Colour statistics of UV textures per UV region, to compare a texture prior with its training data."""

from __future__ import annotations

import torch


def region_colour_statistics(textures: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``[K, 3]`` of texel colours in each region, pooled over the batch.

    ``textures [B, 3, R, R]``; ``masks [K, 1, R, R]`` soft region weights (texels weighted by them).
    """
    if textures.ndim != 4 or textures.shape[1] != 3:
        raise ValueError(f"textures: expected [B, 3, R, R], got {list(textures.shape)}")
    if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[2:] != textures.shape[2:]:
        raise ValueError(f"masks: expected [K, 1, {textures.shape[2]}, {textures.shape[3]}], got {list(masks.shape)}")
    weights = masks[:, None, 0]
    total = weights.sum((-1, -2)) * textures.shape[0]
    mean = (textures[None] * weights[:, :, None]).sum((1, 3, 4)) / total
    variance = ((textures[None] - mean[:, None, :, None, None]).square() * weights[:, :, None]).sum((1, 3, 4)) / total
    return mean, variance.sqrt()


def relative_differences(
    reference: tuple[torch.Tensor, torch.Tensor], candidate: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``|candidate - reference| / reference`` for the means and the standard deviations, ``[K, 3]`` each."""
    return tuple((c - r).abs() / r.clamp(min=1e-6) for r, c in zip(reference, candidate, strict=True))
