"""A linear identity embedding -> shape map fitted in closed form on rendered faces whose shape is known (MICA's idea,
with the project's synthetic faces standing in for scans).

Why: the shape the landmarks give follows one photo's outline, pose and detector noise; two photos of one person
get shapes hardly closer than two people's (docs/accuracy.md, section 6). The identity network's embedding is what
stays the same from photo to photo of a person. Faces drawn from the model's prior are rendered as the synthetic
training faces are (:class:`~fastganfit.data.synthetic.SyntheticFaceSource`, procedural texture, random pose and
light) at the graph's render size, the graph's identity network embeds them exactly as in training, and the
ridge least-squares map from the standardised embedding to what the landmark map leaves of the true shape
coefficients (the residual: the two heads add up) is solved once. The regressor's identity head starts from it.

``gain`` undoes part of the ridge's shrinkage: a map fitted where the embedding explains only part of the shape
predicts shapes closer to the mean than the truth, which is right for the vertex error but shrinks the distances
between people. Measured in docs/accuracy.md, section 6.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fastganfit.data.synthetic import SyntheticFaceSource
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.regression.landmark_prior import LinearLandmarkMap, fit_linear_map

BATCH = 16  # faces rendered and embedded at a time


@dataclass(frozen=True)
class IdentityPriorSettings:
    """How the map is fitted. ``samples``: rendered faces; ``seed``: their seed (kept apart from the synthetic
    sets' seeds, so held-out faces are never the prior's); ``ridge``: on the standardised embedding; ``gain``: the
    map's output multiplied by it (1: the least-squares map)."""

    samples: int = 2000
    seed: int = 7919
    ridge: float = 10.0
    gain: float = 1.0

    def __post_init__(self) -> None:
        if self.samples < 16:
            raise ValueError(f"identity prior: samples must be at least 16, got {self.samples}")
        if self.seed < 0:
            raise ValueError(f"identity prior: seed must be non-negative, got {self.seed}")
        if not self.ridge >= 0:
            raise ValueError(f"identity prior: ridge must be non-negative, got {self.ridge}")
        if not self.gain > 0:
            raise ValueError(f"identity prior: gain must be positive, got {self.gain}")


@torch.no_grad()
def identity_prior_samples(
    graph: FaceReconstructionGraph, settings: IdentityPriorSettings, landmark_noise: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Rendered faces: the graph's identity embeddings ``[N, D]``, landmark features ``[N, F]`` (render frame,
    landmark camera; the landmarks moved by ``landmark_noise``, a fraction of the face size, as the landmark
    prior's are) and true shape coefficients ``[N, Ks]``; float64, on the graph's device."""
    height, width = graph.render_size
    if height != width:
        raise ValueError(f"identity prior: needs a square render size, got {height}x{width}")
    source = SyntheticFaceSource(settings.seed, crop_size=height, model=graph.model)
    device = graph.device
    generator = torch.Generator().manual_seed(settings.seed)
    embeddings, features, shapes = [], [], []
    for start in range(0, settings.samples, BATCH):
        faces = source.render(range(start, min(start + BATCH, settings.samples)))
        images = torch.stack([torch.from_numpy(face["image"]) for face in faces]).to(device)
        images = images.permute(0, 3, 1, 2).float() / 255.0
        landmarks = torch.stack([torch.from_numpy(face["landmarks"][:, :2]) for face in faces]).to(device).float()
        embeddings.append(graph.identity(images, landmarks).embedding.double())
        face_size = torch.linalg.vector_norm(landmarks.amax(dim=1) - landmarks.amin(dim=1), dim=1)
        noise = torch.randn(landmarks.shape, generator=generator).to(device)
        noisy = landmarks + landmark_noise * face_size[:, None, None] * noise
        features.append(graph.landmark_features(noisy, graph.landmark_camera(noisy)).double())
        shapes.append(torch.stack([torch.from_numpy(face["params"]["shape"]) for face in faces]).to(device).double())
    return torch.cat(embeddings), torch.cat(features), torch.cat(shapes)


def fit_identity_prior(
    graph: FaceReconstructionGraph,
    settings: IdentityPriorSettings,
    landmark_map: LinearLandmarkMap | None = None,
    landmark_noise: float = 0.0,
) -> LinearLandmarkMap:
    """The ridge map from the graph's identity embedding to the shape coefficients that ``landmark_map`` (the
    landmark heads' map: shape then expression; ``None``: no landmark heads) leaves unexplained on landmarks
    moved by ``landmark_noise`` (the landmark prior's), times ``settings.gain`` (module docstring)."""
    embeddings, features, shapes = identity_prior_samples(graph, settings, landmark_noise)
    if landmark_map is not None:
        to_device = {name: getattr(landmark_map, name).to(features) for name in ("mean", "std", "weight", "bias")}
        shapes = shapes - LinearLandmarkMap(**to_device)(features)[:, : shapes.shape[1]]
    fitted = fit_linear_map(embeddings, shapes, settings.ridge)
    return LinearLandmarkMap(fitted.mean, fitted.std, fitted.weight * settings.gain, fitted.bias * settings.gain)
