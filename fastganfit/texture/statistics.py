"""Colour statistics of UV textures per UV region, to compare a texture prior with its training data."""

from __future__ import annotations

from collections.abc import Callable

import torch

from fastganfit.texture.procedural import ProceduralTexture


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


Statistics = tuple[torch.Tensor, torch.Tensor]


def procedural_and_sample_statistics(
    sample: Callable[[int, torch.Generator], torch.Tensor],
    procedural: ProceduralTexture,
    num_samples: int = 256,
    seeds: tuple[int, int] = (1, 2),
) -> tuple[Statistics, Statistics]:
    """Per-region colour ``(mean, std)`` (``[K, 3]`` each) of ``num_samples`` procedural textures and of as
    many from ``sample`` (``seeds``: procedural, candidate).

    ``sample(count, generator)`` returns textures ``[count, 3, R, R]`` in [0, 1] at ``procedural``'s
    resolution (e.g. ``TextureGenerator.sample``).
    """
    with torch.no_grad():
        reference = region_colour_statistics(
            procedural.sample(num_samples, torch.Generator().manual_seed(seeds[0])), procedural.masks
        )
        candidate = region_colour_statistics(
            sample(num_samples, torch.Generator().manual_seed(seeds[1])), procedural.masks
        )
    return reference, candidate


def procedural_statistics_errors(
    sample: Callable[[int, torch.Generator], torch.Tensor],
    procedural: ProceduralTexture,
    num_samples: int = 256,
    seeds: tuple[int, int] = (1, 2),
) -> Statistics:
    """Relative errors ``[K, 3]`` of the per-region colour means and spreads of ``sample``'s textures against
    ``procedural``'s (see :func:`procedural_and_sample_statistics`)."""
    return relative_differences(*procedural_and_sample_statistics(sample, procedural, num_samples, seeds))
