"""Random face parameters: identity, expression, pose and light, for demos and synthetic data."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.render.camera import PITCH, ROLL, YAW, PerspectiveCamera
from fastganfit.render.lighting import PhongLighting, SphericalHarmonicsLighting


@dataclass
class RandomFaces:
    """A batch of sampled faces: ``shape [B,Ks]``, ``expression [B,Ke]``, ``camera [B,7]``, ``light [B,10]`` (Phong)."""

    shape: torch.Tensor
    expression: torch.Tensor
    camera: torch.Tensor
    light: torch.Tensor


def sample_random_faces(
    model: MorphableModel,
    batch_size: int,
    generator: torch.Generator,
    shape_std: float = 1.0,
    expression_max: float = 0.5,
    expression_fraction: float = 0.15,
    max_yaw_degrees: float = 45.0,
    max_pitch_degrees: float = 20.0,
    max_roll_degrees: float = 10.0,
) -> RandomFaces:
    """Sample faces with N(0, shape_std^2) identity, a few active expressions, uniform pose and light.

    Each expression blendshape is active with probability ``expression_fraction`` with a weight
    uniform in ``[0, expression_max]`` (blendshape weights are one-sided). Pose angles are uniform in
    the given ranges; the light has a random direction, colour temperature and strength.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")

    def uniform(*size: int) -> torch.Tensor:
        return torch.rand(*size, generator=generator)

    shape = torch.randn(batch_size, model.num_shape, generator=generator) * shape_std
    active = uniform(batch_size, model.num_expression) < expression_fraction
    expression = active * uniform(batch_size, model.num_expression) * expression_max
    camera = torch.zeros(batch_size, PerspectiveCamera.num_params)
    for index, limit in ((YAW, max_yaw_degrees), (PITCH, max_pitch_degrees), (ROLL, max_roll_degrees)):
        camera[:, index] = (uniform(batch_size) * 2 - 1) * math.radians(limit)
    light = torch.zeros(batch_size, PhongLighting.num_params)
    strength = 0.3 + 0.5 * uniform(batch_size, 1)
    warmth = torch.cat([torch.ones(batch_size, 1), 0.9 + 0.1 * uniform(batch_size, 2)], dim=1)
    light[:, 0:3] = -strength * warmth
    light[:, 3:6] = strength * warmth
    light[:, 6:9] = (uniform(batch_size, 3) * 2 - 1) * torch.tensor([1.5, 1.0, 0.3])
    light[:, 9] = 0.15 * uniform(batch_size)
    return RandomFaces(shape, expression, camera, light)


def sample_sh_light(batch_size: int, generator: torch.Generator, strength: float = 0.25) -> torch.Tensor:
    """Random spherical-harmonics light ``[B, 27]``: ambient near 1 (DC offsets in [-0.3, 0.1]) plus a
    grey first-order term (a main light direction) and weak second-order terms, all shared by R, G, B."""
    coefficients = torch.zeros(batch_size, 9, 1)
    coefficients[:, 0] = (torch.rand(batch_size, 1, generator=generator) * 0.4 - 0.3) * 3.5449
    coefficients[:, 1:4] = torch.randn(batch_size, 3, 1, generator=generator) * strength * 2.0
    coefficients[:, 4:] = torch.randn(batch_size, 5, 1, generator=generator) * strength * 0.5
    return coefficients.expand(-1, -1, 3).reshape(batch_size, SphericalHarmonicsLighting.num_params)
