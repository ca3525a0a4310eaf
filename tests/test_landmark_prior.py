"""The landmark prior: a least-squares landmarks -> shape and expression map fitted on the face model's prior, the
regressor's landmark heads that carry it, and how build and checkpoints use it."""

from __future__ import annotations

import pytest
import torch

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.perception.heatmaps import GaussianHeatmaps
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.reconstruction.vertex_error import vertex_error_mm
from fastganfit.regression.build import build_fast_ganfit
from fastganfit.regression.landmark_prior import (
    LandmarkPriorSettings,
    fit_landmark_prior,
    fit_linear_map,
    prior_landmark_samples,
)
from fastganfit.regression.regressor import Regressor
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.texture.procedural import ProceduralTexture

SIZE = 64


@pytest.fixture(scope="module")
def graph(ict_model: MorphableModel) -> FaceReconstructionGraph:
    """A graph at test size; the prior needs only its model, camera and render size (no identity network)."""
    renderer = FaceRenderer.from_model(ict_model, image_size=SIZE, backend="torch")
    return FaceReconstructionGraph(
        ict_model, ProceduralTexture(ict_model, 16), renderer, torch.nn.Identity(), GaussianHeatmaps(SIZE, 32)
    )


def test_fit_linear_map_recovers_a_linear_relation() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(500, 6, generator=generator, dtype=torch.float64) * torch.arange(1, 7) + 3.0
    weight, bias = torch.randn(6, 4, generator=generator, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    targets = features @ weight + bias
    fitted = fit_linear_map(features, targets, ridge=1e-9)
    assert torch.allclose(fitted(features), targets, atol=1e-6)
    assert torch.allclose(fitted.weight / fitted.std[:, None], weight, atol=1e-6)  # back in feature units
    # a large ridge shrinks the map towards the mean target
    shrunk = fit_linear_map(features, targets, ridge=1e6)
    assert torch.allclose(shrunk(features), targets.mean(0).expand_as(targets), atol=0.1 * targets.std())


def test_prior_map_recovers_shape_from_landmarks(graph: FaceReconstructionGraph, ict_model: MorphableModel) -> None:
    """Fitted on 2048 prior faces, the map's shape on 200 other prior faces is far closer to the truth than the
    mean face (similarity-aligned vertex error: about 0.45x with exact landmarks), and noisier training landmarks
    make it more cautious (larger error on exact landmarks)."""
    exact = fit_landmark_prior(graph, LandmarkPriorSettings(samples=2048, seed=0, noise=0.0))
    features, targets = prior_landmark_samples(graph, LandmarkPriorSettings(samples=200, seed=1, noise=0.0))
    num_shape = ict_model.num_shape

    def vertices(coefficients: torch.Tensor) -> torch.Tensor:
        coefficients = coefficients.float()
        return ict_model(coefficients[:, :num_shape], coefficients[:, num_shape:])

    truth = vertices(targets)
    mean_face = vertex_error_mm(vertices(torch.zeros_like(targets)), truth, align=True).mean()
    error = vertex_error_mm(vertices(exact(features)), truth, align=True).mean()
    assert error < 0.55 * mean_face, (error, mean_face)
    noisy = fit_landmark_prior(graph, LandmarkPriorSettings(samples=2048, seed=0, noise=0.02))
    noisy_error = vertex_error_mm(vertices(noisy(features)), truth, align=True).mean()
    assert error < noisy_error < mean_face, (error, noisy_error, mean_face)


def test_regressor_landmark_heads_compute_the_map(graph: FaceReconstructionGraph) -> None:
    sizes = graph.sizes
    regressor = Regressor(sizes, [], heatmap_backbone=None, landmark_features=143, feature_dim=8, hidden=8,
                          output_scales={"expression": 0.2}, landmark_heads=True)
    features = torch.randn(3, 143)
    zero = regressor([], None, features)
    assert torch.equal(zero.shape, torch.zeros(3, sizes.shape))  # zero until a map is set
    width = sizes.shape + sizes.expression
    mean, std = torch.randn(143), torch.rand(143) + 0.5
    weight, bias = torch.randn(143, width) * 0.01, torch.randn(width)
    regressor.set_landmark_map(mean, std, weight, bias)
    expected = (features - mean) / std @ weight + bias
    output = regressor([], None, features)
    assert torch.allclose(torch.cat([output.shape, output.expression], 1), expected, atol=1e-5)
    assert torch.equal(output.texture, torch.zeros(3, sizes.texture))
    # the standardisation travels with the weights
    assert {"landmark_mean", "landmark_std"} <= set(regressor.state_dict())
    with pytest.raises(ValueError, match=r"weight \[143, "):
        regressor.set_landmark_map(mean, std, weight[:, :-1], bias)
    with pytest.raises(ValueError, match="landmark_heads needs landmark features"):
        Regressor(sizes, [4], heatmap_backbone=None, landmark_heads=True)
    with pytest.raises(ValueError, match="no landmark heads"):
        Regressor(sizes, [4], heatmap_backbone=None).set_landmark_map(mean, std, weight, bias)


def test_build_fits_the_prior_unless_weights_follow(graph: FaceReconstructionGraph) -> None:
    parts = {"model": graph.model, "texture": graph.texture, "renderer": graph.renderer,
             "identity": _IdentityStub(), "heatmaps": graph.heatmaps}
    regressor = {"heatmap_backbone": None, "landmark_input": True, "feature_dim": 8, "hidden": 8,
                 "landmark_prior": {"samples": 256, "noise": 0.0}}
    fitted = build_fast_ganfit(**parts, regressor=regressor, loss=GANFitLoss(landmark=1.0))
    assert fitted.regressor.landmark_heads["shape"].weight.abs().sum() > 0
    assert not torch.equal(fitted.regressor.landmark_std, torch.ones(143))
    skipped = build_fast_ganfit(**parts, regressor=regressor, loss=GANFitLoss(landmark=1.0), fit_prior=False)
    assert skipped.regressor.landmark_heads["shape"].weight.abs().sum() == 0
    with pytest.raises(ValueError, match=r"landmark_prior needs regressor\.landmark_input"):
        build_fast_ganfit(**parts, regressor={**regressor, "landmark_input": False}, loss=GANFitLoss(landmark=1.0))
    with pytest.raises(ValueError, match="samples must be at least 16"):
        build_fast_ganfit(**parts, regressor={**regressor, "landmark_prior": {"samples": 4}},
                          loss=GANFitLoss(landmark=1.0))


class _IdentityStub(torch.nn.Module):
    """An identity network with no activations (the regressor then has no identity branch)."""

    class _Backbone:
        chip_size = 8

        @staticmethod
        def forward_features(chip: torch.Tensor, layers: list[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
            return chip, []

    def __init__(self) -> None:
        super().__init__()
        self.backbone, self.layers = self._Backbone(), []
        self.anchor = torch.nn.Parameter(torch.zeros(1))
