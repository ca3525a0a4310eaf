"""Exact closest points on a triangle mesh, accelerated by a bounding-volume hierarchy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastganfit.geometry.alignment import check_points
from fastganfit.geometry.bvh import build_bvh, query_bvh


@dataclass(frozen=True)
class ClosestPoints:
    """Closest surface points of ``N`` query points.

    Attributes:
        points: ``[N, 3]`` closest points on the surface.
        distances: ``[N]`` Euclidean distances from the queries to ``points``.
        face_ids: ``[N]`` int64 index of the triangle holding each closest point.
        barycentric: ``[N, 3]`` barycentric coordinates of ``points`` in their triangle.
    """

    points: np.ndarray
    distances: np.ndarray
    face_ids: np.ndarray
    barycentric: np.ndarray


def check_faces(faces: np.ndarray, num_vertices: int, name: str = "faces") -> np.ndarray:
    """Return ``faces`` as int64 ``[F, 3]`` indices into ``num_vertices`` vertices, or raise ``ValueError``."""
    array = np.asarray(faces)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{name} must have shape [F, 3], got {list(array.shape)}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: the mesh has no triangles")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer vertex indices, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= num_vertices:
        raise ValueError(f"{name} index vertices outside [0, {num_vertices}): min {array.min()}, max {array.max()}")
    return array.astype(np.int64)


def _closest_on_segments(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points on segments ``x -> y`` to ``p`` (all ``[N, 3]``); returns points and parameters ``[N]``."""
    direction = y - x
    length2 = (direction**2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(length2 > 0, ((p - x) * direction).sum(1) / length2, 0.0)
    t = np.clip(t, 0.0, 1.0)
    return x + t[:, None] * direction, t


def closest_points_on_triangles(
    points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact closest point of each query on its own triangle (vectorised).

    Args:
        points: ``[N, 3]`` query points.
        a, b, c: ``[N, 3]`` triangle corners, one triangle per query (degenerate triangles allowed).

    Returns:
        ``closest [N, 3]`` and ``barycentric [N, 3]`` (weights of ``a, b, c``).
    """
    ab, ac = b - a, c - a
    normal = np.cross(ab, ac)
    norm2 = (normal**2).sum(1)
    ap = points - a
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (np.cross(ap, ac) * normal).sum(1) / norm2
        w = (np.cross(ab, ap) * normal).sum(1) / norm2
    u = 1.0 - v - w
    inside = (norm2 > 0) & (u >= 0) & (v >= 0) & (w >= 0)

    edge_points, edge_t = zip(*(_closest_on_segments(points, x, y) for x, y in ((a, b), (b, c), (c, a))), strict=True)
    edge_d2 = np.stack([((points - q) ** 2).sum(1) for q in edge_points], 1)
    best_edge = edge_d2.argmin(1)
    rows = np.arange(points.shape[0])
    t = np.stack(edge_t, 1)[rows, best_edge]
    edge_bary = np.zeros((points.shape[0], 3))
    first, second = best_edge, (best_edge + 1) % 3
    edge_bary[rows, first] = 1.0 - t
    edge_bary[rows, second] = t

    bary = np.where(inside[:, None], np.stack([u, v, w], 1), edge_bary)
    bary = np.nan_to_num(bary)
    closest = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
    return closest, bary


class TriangleMesh:
    """A triangle mesh with a bounding-volume hierarchy for exact closest-point queries.

    A query descends the hierarchy nearest box first and skips every box farther than the best
    triangle found so far (:mod:`fastganfit.geometry.bvh`), so its cost does not depend on how
    unequal the triangles are. Results equal :meth:`brute_force` (same arithmetic, ties to the
    lowest triangle index).

    Args:
        vertices: ``[V, 3]`` float vertex positions (mm).
        faces: ``[F, 3]`` int vertex indices.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        self.vertices = np.ascontiguousarray(check_points(vertices, "vertices"))
        self.faces = np.ascontiguousarray(check_faces(faces, self.vertices.shape[0]))
        self._order, self._lower, self._upper, self._links = build_bvh(self.vertices[self.faces])

    def _exact(self, queries: np.ndarray, face_ids: np.ndarray) -> tuple[np.ndarray, ...]:
        """Best of the candidate triangles ``face_ids [M, K]`` for each query ``[M, 3]``."""
        m, k = face_ids.shape
        corners = self.vertices[self.faces[face_ids.reshape(-1)]]
        repeated = np.repeat(queries, k, axis=0)
        closest, bary = closest_points_on_triangles(repeated, corners[:, 0], corners[:, 1], corners[:, 2])
        d2 = ((repeated - closest) ** 2).sum(1).reshape(m, k)
        best = d2.argmin(1)
        flat = np.arange(m) * k + best
        return closest[flat], np.sqrt(d2[np.arange(m), best]), face_ids[np.arange(m), best], bary[flat]

    def brute_force(self, queries: np.ndarray) -> tuple[np.ndarray, ...]:
        """Exact closest points of ``queries [N, 3]`` by testing every triangle (the reference; chunked).

        Returns ``(points [N, 3], distances [N], face_ids [N], barycentric [N, 3])``.
        """
        num_faces = self.faces.shape[0]
        chunk = max(1, 2_000_000 // num_faces)
        parts = []
        for start in range(0, queries.shape[0], chunk):
            block = queries[start : start + chunk]
            parts.append(self._exact(block, np.broadcast_to(np.arange(num_faces), (block.shape[0], num_faces))))
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))

    def closest_points(self, points: np.ndarray) -> ClosestPoints:
        """Exact closest surface points of ``points [N, 3]``; see the class docstring."""
        points = np.ascontiguousarray(check_points(points, "points"))
        return ClosestPoints(
            *query_bvh(points, self.vertices, self.faces, self._order, self._lower, self._upper, self._links)
        )

    def distances(self, points: np.ndarray) -> np.ndarray:
        """Unsigned point-to-surface distances ``[N]`` of ``points [N, 3]``."""
        return self.closest_points(points).distances


def brute_force_closest_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> ClosestPoints:
    """Closest points ``[N]`` by testing every triangle: the reference for :class:`TriangleMesh`."""
    return ClosestPoints(*TriangleMesh(vertices, faces).brute_force(check_points(points, "points")))
