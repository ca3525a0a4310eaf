"""Procedural face-like meshes with 68 landmarks, for tests and benchmarks of the evaluation protocols.

The "head" is the front cap of a sphere (centre at the origin, nose tip at ``+Z``); landmarks are
vertices nearest to 68 fixed directions spread over the front (index 30, the nose tip, on the axis).
Radial deformations ``delta(x)`` along the normals give reconstructions with analytically known errors.
"""

from __future__ import annotations

import numpy as np

from fastganfit.geometry.alignment import SimilarityTransform
from fastganfit.geometry.mesh_crop import submesh

NOSE_TIP = 30


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: vertices ``[V, 3]`` and outward faces ``[20 * 4**subdivisions, 3]``."""
    if subdivisions < 0:
        raise ValueError(f"subdivisions must be >= 0, got {subdivisions}")
    t = (1.0 + 5.0**0.5) / 2.0
    vertices = np.array(
        [
            [-1, t, 0],
            [1, t, 0],
            [-1, -t, 0],
            [1, -t, 0],
            [0, -1, t],
            [0, 1, t],
            [0, -1, -t],
            [0, 1, -t],
            [t, 0, -1],
            [t, 0, 1],
            [-t, 0, -1],
            [-t, 0, 1],
        ],
        dtype=np.float64,
    )
    faces = np.array(
        [
            [0, 11, 5],
            [0, 5, 1],
            [0, 1, 7],
            [0, 7, 10],
            [0, 10, 11],
            [1, 5, 9],
            [5, 11, 4],
            [11, 10, 2],
            [10, 7, 6],
            [7, 1, 8],
            [3, 9, 4],
            [3, 4, 2],
            [3, 2, 6],
            [3, 6, 8],
            [3, 8, 9],
            [4, 9, 5],
            [2, 4, 11],
            [6, 2, 10],
            [8, 6, 7],
            [9, 8, 1],
        ],
        dtype=np.int64,
    )
    for _ in range(subdivisions):
        edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        midpoints = len(vertices) + inverse.reshape(-1, 3)
        vertices = np.vstack([vertices, vertices[unique].mean(1)])
        a, b, c = faces.T
        ab, bc, ca = midpoints.T
        faces = np.concatenate([np.stack(x, 1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return vertices / np.linalg.norm(vertices, axis=1, keepdims=True), faces


def landmark_directions(count: int = 68, max_angle_deg: float = 50.0) -> np.ndarray:
    """``[count, 3]`` unit directions over the front (+Z) cap; direction 30 is ``+Z`` (the nose tip)."""
    golden = np.pi * (3.0 - 5.0**0.5)
    k = np.arange(count - 1)
    theta = np.radians(max_angle_deg) * np.sqrt((k + 1) / (count - 1))
    phi = golden * k
    spiral = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)
    return np.insert(spiral, NOSE_TIP, [0.0, 0.0, 1.0], axis=0)


def sphere_head(
    radius: float = 80.0, subdivisions: int = 4, min_z: float = 0.0, rotation_z_deg: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front cap of a sphere with landmarks.

    Args:
        radius: sphere radius (mm).
        subdivisions: icosphere subdivision level (the full sphere has ``20 * 4**subdivisions`` faces).
        min_z: keep vertices with ``z >= min_z * radius``.
        rotation_z_deg: rotate the tessellation about ``Z`` first (a different tessellation of the same cap).

    Returns:
        ``vertices [V, 3]`` (mm), ``faces [F, 3]``, landmark vertex indices ``[68]`` (nose tip at 30).
    """
    unit, faces = icosphere(subdivisions)
    angle = np.radians(rotation_z_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    unit = unit @ rotation.T
    vertices, faces = submesh(unit * radius, faces, unit[:, 2] >= min_z)
    directions = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    landmarks = np.argmax(directions @ landmark_directions().T, axis=0).astype(np.int64)
    return vertices, faces, landmarks


def quadrupole_offset(vertices: np.ndarray, amplitude: float) -> np.ndarray:
    """Radial offsets ``[V]`` (mm) ``amplitude * (x^2 - y^2) / |v|^2`` of sphere vertices ``[V, 3]``.

    The pattern exerts no net force or torque and no scale change on the front cap, so similarity ICP
    leaves it in place and the expected point-to-surface error is the mean ``|offset|``.
    """
    return amplitude * (vertices[:, 0] ** 2 - vertices[:, 1] ** 2) / (vertices**2).sum(1)


def offset_radially(vertices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sphere vertices ``[V, 3]`` moved by ``offsets [V]`` mm along their normals (radially)."""
    lengths = np.linalg.norm(vertices, axis=1, keepdims=True)
    return vertices * (lengths + offsets[:, None]) / lengths


def random_similarity(seed: int, scale: float = 1.0, max_angle_deg: float = 30.0) -> SimilarityTransform:
    """A random rotation (up to ``max_angle_deg``), translation (up to 100) and the given scale."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(-max_angle_deg, max_angle_deg))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    return SimilarityTransform(scale, rotation, rng.uniform(-100, 100, 3))
