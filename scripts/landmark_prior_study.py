"""How much shape a linear map from the landmark features recovers, and how fast Adam finds such a map from zero.

Held-out synthetic faces (the demo's drawing settings, seed 1, 112 px, exact landmarks) are scored by the
similarity-aligned vertex error of the shape and expression that each estimate gives:

- the mean face;
- the landmark prior's least-squares map (fastganfit.regression.landmark_prior), fitted on faces drawn from the
  model's prior, at several landmark-noise levels;
- a linear map on the same features trained by Adam from zero (the demo's 800 faces, batch 8, cosine schedule),
  what a zero-initialised head has to do without the prior.

Usage: python scripts/landmark_prior_study.py [--faces 300] [--adam-steps 1000]  (docs/accuracy.md, section 4)
"""

from __future__ import annotations

import argparse

import torch

from fastganfit.data.synthetic import SyntheticSettings, sample_generator, sample_params
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.perception.heatmaps import GaussianHeatmaps
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.reconstruction.vertex_error import vertex_error_mm
from fastganfit.regression.landmark_prior import LandmarkPriorSettings, fit_landmark_prior
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.texture.procedural import ProceduralTexture

SIZE = 112


def synthetic_faces(graph: FaceReconstructionGraph, seed: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmark features ``[N, F]`` and true coefficients ``[N, Ks + Ke]`` of synthetic faces of set ``seed``."""
    model, camera = graph.model, graph.renderer.camera
    drawn = [sample_params(model, 43, sample_generator(seed, index), SyntheticSettings(), camera.translation_scale)
             for index in range(count)]
    batch = {name: torch.stack([params[name] for params in drawn]) for name in drawn[0]}
    with torch.no_grad():
        vertices = model(batch["shape"], batch["expression"])
        landmarks = camera.project(model.landmarks(vertices), batch["camera"], graph.render_size)[..., :2]
        features = graph.landmark_features(landmarks, graph.landmark_camera(landmarks))
    return features, torch.cat([batch["shape"], batch["expression"]], dim=1)


def adam_linear_map(features: torch.Tensor, targets: torch.Tensor, model: MorphableModel, steps: int, lr: float):
    """A zero-initialised linear head on ``features`` trained by Adam on the vertex distance (batch 8, cosine)."""
    generator = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(features.shape[1], targets.shape[1])
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, lr * 0.01)
    scale = torch.cat([torch.ones(model.num_shape), torch.full((model.num_expression,), 0.2)])  # output scales
    truth = coefficients_to_vertices(model, targets)
    for _ in range(steps):
        index = torch.randint(0, len(features), (8,), generator=generator)
        predicted = coefficients_to_vertices(model, head(features[index]) * scale)
        loss = torch.linalg.vector_norm(predicted - truth[index], dim=-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return lambda inputs: head(inputs) * scale


def coefficients_to_vertices(model: MorphableModel, coefficients: torch.Tensor) -> torch.Tensor:
    coefficients = coefficients.float()
    return model(coefficients[:, : model.num_shape], coefficients[:, model.num_shape :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=300, help="held-out faces")
    parser.add_argument("--adam-steps", type=int, default=1000)
    arguments = parser.parse_args()
    model = MorphableModel.ict()
    renderer = FaceRenderer.from_model(model, image_size=SIZE, backend="torch")
    graph = FaceReconstructionGraph(model, ProceduralTexture(model, 16), renderer, torch.nn.Identity(),
                                    GaussianHeatmaps(SIZE, 32))
    features, targets = synthetic_faces(graph, seed=1, count=arguments.faces)
    truth = coefficients_to_vertices(model, targets)

    def error(coefficients: torch.Tensor) -> str:
        with torch.no_grad():
            return f"{vertex_error_mm(coefficients_to_vertices(model, coefficients), truth, align=True).mean():.2f}"

    print("| estimate | vertex error, similarity (mm) |\n|---|---|")
    print(f"| mean face | {error(torch.zeros_like(targets))} |")
    for noise in (0.0, 0.002, 0.005, 0.01):
        mapping = fit_landmark_prior(graph, LandmarkPriorSettings(noise=noise))
        print(f"| landmark prior, 4096 prior faces, noise {noise} | {error(mapping(features.double()))} |")
    train_features, train_targets = synthetic_faces(graph, seed=0, count=800)
    for lr in (1e-3, 1e-2):
        head = adam_linear_map(train_features, train_targets, model, arguments.adam_steps, lr)
        print(f"| linear head from zero, Adam lr {lr:g}, {arguments.adam_steps} steps on 800 faces | "
              f"{error(head(features))} |")


if __name__ == "__main__":
    main()
