"""Cropping a triangle mesh to a vertex mask or to a sphere."""

from __future__ import annotations

import numpy as np

from fastganfit.geometry.alignment import check_points
from fastganfit.geometry.closest_point import check_faces


def submesh(vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of a mesh on the vertices selected by the boolean mask ``keep [V]``.

    Keeps the faces whose three vertices are selected and re-indexes them; returns
    ``vertices [V', 3]`` (every selected vertex, in order) and ``faces [F', 3]``.
    """
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (vertices.shape[0],):
        raise ValueError(f"keep must be a boolean mask of shape [{vertices.shape[0]}], got {list(keep.shape)}")
    new_index = np.cumsum(keep) - 1
    kept_faces = faces[keep[faces].all(1)]
    return vertices[keep], new_index[kept_faces].astype(np.int64)


def sphere_crop_mask(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Vertices ``[V]`` (bool) kept by cropping a mesh to the open ball ``|v - centre| < radius``.

    A triangle survives when its three vertices lie strictly inside; a vertex inside the ball that
    belongs to no surviving triangle is dropped as well (menpo's ``TriMesh.from_mask``, used by GANFit's
    MICC script), so ``submesh(vertices, faces, mask)`` has no isolated vertices.

    Args:
        vertices: ``[V, 3]`` mesh vertices.
        faces: ``[F, 3]`` triangles.
        centre: ``[3]`` centre of the ball, in the vertices' frame.
        radius: radius, in the vertices' units.
    """
    vertices = check_points(vertices, "vertices")
    faces = check_faces(faces, vertices.shape[0])
    if not radius > 0:
        raise ValueError(f"crop radius must be positive, got {radius}")
    inside = np.linalg.norm(vertices - np.asarray(centre, dtype=np.float64), axis=1) < radius
    mask = np.zeros(vertices.shape[0], dtype=bool)
    mask[faces[inside[faces].all(1)].ravel()] = True
    return mask
