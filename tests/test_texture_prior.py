"""The shipped default texture prior: loads offline and reproduces the procedural colour statistics."""

from __future__ import annotations

import pytest
import torch

from fastganfit.texture.generator import default_texture_prior_path, load_default_texture_prior
from fastganfit.texture.procedural import REGION_NAMES, ProceduralTexture
from fastganfit.texture.statistics import (
    procedural_statistics_errors,
    region_colour_statistics,
    relative_differences,
)

SAMPLES = 1024  # sampling noise of a spread estimate ~ 1 / sqrt(2 * SAMPLES): 2 %, well inside the 10 % bar


def test_prior_is_small_and_loads_frozen() -> None:
    assert default_texture_prior_path().stat().st_size <= 20e6
    prior = load_default_texture_prior("w+")
    assert prior.resolution == 128 and not prior.training
    assert not any(parameter.requires_grad for parameter in prior.parameters())
    texture = prior(prior.zero_latent(1))
    assert texture.shape == (1, 3, 128, 128)


def test_region_statistics_match_a_hand_computed_reference() -> None:
    textures = torch.zeros(2, 3, 8, 8)
    textures[0, 0], textures[1, 0] = 0.2, 0.6
    textures[:, 1, :, :4], textures[:, 1, :, 4:] = 0.0, 1.0
    masks = torch.zeros(2, 1, 8, 8)
    masks[0, 0, :, :4] = 1.0
    masks[1] = 1.0
    mean, std = region_colour_statistics(textures, masks)
    torch.testing.assert_close(mean, torch.tensor([[0.4, 0.0, 0.0], [0.4, 0.5, 0.0]]))
    torch.testing.assert_close(std, torch.tensor([[0.2, 0.0, 0.0], [0.2, 0.5, 0.0]]))
    mean_error, std_error = relative_differences((mean, std + 0.1), (mean * 1.1, std + 0.1))
    torch.testing.assert_close(mean_error[:, :2], torch.tensor([[0.1, 0.0], [0.1, 0.1]]))
    assert std_error.abs().max() < 1e-6


def test_procedural_statistics_errors_separate_the_procedural_distribution_from_a_wrong_one() -> None:
    procedural = ProceduralTexture.for_ict(32)
    mean_error, std_error = procedural_statistics_errors(procedural.sample, procedural, 512)
    assert mean_error.max() < 0.05 and std_error.max() < 0.10
    assert std_error.max() > 0, "different seeds must give different samples"

    def washed_out(count: int, generator: torch.Generator) -> torch.Tensor:
        return 0.5 + 0.5 * (procedural.sample(count, generator) - 0.5)

    _, washed_std_error = procedural_statistics_errors(washed_out, procedural, 512)
    torch.testing.assert_close(washed_std_error, torch.full_like(washed_std_error, 0.5), atol=0.1, rtol=0)


@pytest.fixture(scope="module")
def region_errors() -> tuple[torch.Tensor, torch.Tensor]:
    """Relative errors ``[5, 3]`` of the prior's per-region colour mean and spread vs procedural textures."""
    prior = load_default_texture_prior()
    return procedural_statistics_errors(prior.sample, ProceduralTexture.for_ict(prior.resolution), SAMPLES)


def test_prior_mean_colours_match_procedural_per_region(region_errors: tuple[torch.Tensor, torch.Tensor]) -> None:
    mean_error, _ = region_errors
    for index, name in enumerate(REGION_NAMES):
        assert mean_error[index].max() <= 0.10, f"{name}: mean colour off by {mean_error[index].max():.1%}"


def test_prior_colour_spreads_match_procedural_per_region(region_errors: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, std_error = region_errors
    for index, name in enumerate(REGION_NAMES):
        assert std_error[index].max() <= 0.10, f"{name}: colour spread off by {std_error[index].max():.1%}"
