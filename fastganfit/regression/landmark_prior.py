"""A linear landmarks -> shape and expression estimate fitted in closed form on the face model's own prior.

Why: 68 landmarks fix much of a face's shape, and the map from the regressor's landmark features (offsets of the
landmarks from the mean face under the landmark camera, :func:`landmark_residual_features`) to the shape and
expression coefficients is close to linear. Learnt by Adam from zero in the demo's 1000 CPU steps it stays far
from its optimum (held-out similarity-aligned vertex error 2.6 mm with lr 1e-3, against 1.7 mm for the least-squares
map on the same features and 4.0 mm for the mean face; docs/accuracy.md). Least squares needs no data: faces drawn
from the model's prior (:func:`~fastganfit.data.random_faces.sample_random_faces`, plus the framing jitter of
real crops) are projected by the graph's camera, their features computed exactly as in training, and the
ridge-regularised least-squares map from features to coefficients solved once. The regressor's landmark heads
start from it and keep learning; the other heads predict what the landmarks cannot say.

Works for any linear face model (BFM, FLAME, ICT): only its landmarks are projected, in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fastganfit.data.random_faces import sample_random_faces
from fastganfit.data.synthetic import SyntheticSettings, framing_jitter
from fastganfit.reconstruction.graph import FaceReconstructionGraph

CHUNK = 512  # faces projected at a time (a BFM chunk's vertices are about 330 MB)


@dataclass(frozen=True)
class LandmarkPriorSettings:
    """How the prior's faces are drawn. ``samples``: faces; ``noise``: landmark noise, a fraction of the face size
    (the landmarks' bounding-box diagonal; detectors on photos are off by about 1 %); ``ridge``: the least-squares
    ridge on standardised features. Pose, expression and framing are drawn as the synthetic faces' are
    (:class:`~fastganfit.data.synthetic.SyntheticSettings` defaults)."""

    samples: int = 4096
    seed: int = 0
    noise: float = 0.005
    ridge: float = 1.0

    def __post_init__(self) -> None:
        if self.samples < 16:
            raise ValueError(f"landmark prior: samples must be at least 16, got {self.samples}")
        for name in ("noise", "ridge"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"landmark prior: {name} must be non-negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class LinearLandmarkMap:
    """``coefficients ≈ (features - mean) / std @ weight + bias``: ``mean, std [F]``, ``weight [F, Ks + Ke]``,
    ``bias [Ks + Ke]`` (shape coefficients first, then expression)."""

    mean: Tensor
    std: Tensor
    weight: Tensor
    bias: Tensor

    def __call__(self, features: Tensor) -> Tensor:
        """``[B, F] -> [B, Ks + Ke]``."""
        return (features - self.mean) / self.std @ self.weight + self.bias


@torch.no_grad()
def prior_landmark_samples(
    graph: FaceReconstructionGraph, settings: LandmarkPriorSettings
) -> tuple[Tensor, Tensor]:
    """Faces drawn from the prior: the graph's landmark features ``[N, F]`` (render frame, landmark camera) and
    their true coefficients ``[N, Ks + Ke]``; float64, on the graph's device."""
    model, camera, size = graph.model, graph.renderer.camera, graph.render_size
    generator = torch.Generator().manual_seed(settings.seed)
    features, targets = [], []
    for start in range(0, settings.samples, CHUNK):
        count = min(CHUNK, settings.samples - start)
        faces = sample_random_faces(model, count, generator)
        params = framing_jitter(faces.camera, SyntheticSettings(), generator, camera.translation_scale)
        noise = torch.randn(count, graph.mean_landmarks.shape[0], 2, generator=generator)
        device = graph.device
        shape, expression = faces.shape.to(device), faces.expression.to(device)
        landmarks = camera.project(model.landmarks(model(shape, expression)), params.to(device), size)[..., :2]
        extent = landmarks.amax(dim=1) - landmarks.amin(dim=1)
        face_size = torch.linalg.vector_norm(extent, dim=1)
        landmarks = landmarks + settings.noise * face_size[:, None, None] * noise.to(device)
        features.append(graph.landmark_features(landmarks, graph.landmark_camera(landmarks)).double())
        targets.append(torch.cat([shape, expression], dim=1).double())
    return torch.cat(features), torch.cat(targets)


def fit_linear_map(features: Tensor, targets: Tensor, ridge: float) -> LinearLandmarkMap:
    """Ridge least squares ``targets [N, K] ≈ standardised(features [N, F]) @ W + b`` (the bias unpenalised)."""
    mean = features.mean(dim=0)
    std = features.std(dim=0).clamp(min=1e-6)
    standardised = (features - mean) / std
    target_mean = targets.mean(dim=0)
    normal = standardised.T @ standardised + ridge * torch.eye(features.shape[1], dtype=features.dtype,
                                                                device=features.device)
    # Cholesky: the normal matrix is symmetric positive definite (ridge > 0, or full-rank features)
    factor = torch.linalg.cholesky(normal)
    weight = torch.cholesky_solve(standardised.T @ (targets - target_mean), factor)
    return LinearLandmarkMap(mean, std, weight, target_mean)


def fit_landmark_prior(graph: FaceReconstructionGraph, settings: LandmarkPriorSettings) -> LinearLandmarkMap:
    """The least-squares map from the graph's landmark features to shape and expression coefficients, on faces
    drawn from the model's prior (module docstring)."""
    features, targets = prior_landmark_samples(graph, settings)
    return fit_linear_map(features, targets, settings.ridge)
