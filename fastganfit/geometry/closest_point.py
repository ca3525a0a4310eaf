"""Exact closest points on a triangle mesh, accelerated by a k-d tree over points sampled on triangles."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.spatial import cKDTree

from fastganfit.geometry.alignment import check_points


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


@cache
def _subtriangle_centroids(level: int) -> np.ndarray:
    """Barycentric coordinates ``[level**2, 3]`` of the centroids of a triangle split into ``level**2``."""
    rows = []
    for i in range(level):
        for j in range(level - i):
            rows.append(((i + 1 / 3) / level, (j + 1 / 3) / level))
            if i + j <= level - 2:
                rows.append(((i + 2 / 3) / level, (j + 2 / 3) / level))
    vw = np.array(rows)
    return np.column_stack([1.0 - vw.sum(1), vw])


class TriangleMesh:
    """A triangle mesh with a spatial index for exact closest-point queries.

    Triangles are represented in a k-d tree by the centroids of a regular subdivision (large triangles
    get more samples), each within ``slack`` of every point of its sub-triangle. A query takes its ``k``
    nearest samples, computes exact point-triangle distances to their triangles, and is certified exact
    when the best distance is at most ``d_k - slack`` (``d_k``: distance to the ``k``-th sample), since no
    unvisited triangle can then be closer. Uncertified queries retry with a larger ``k`` and finally
    fall back to brute force, so results always equal brute force.

    Args:
        vertices: ``[V, 3]`` float vertex positions (mm).
        faces: ``[F, 3]`` int vertex indices.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        self.vertices = check_points(vertices, "vertices")
        self.faces = check_faces(faces, self.vertices.shape[0])
        corners = self.vertices[self.faces]
        centroids = corners.mean(1)
        radii = np.sqrt(((corners - centroids[:, None]) ** 2).sum(2)).max(1)
        target = max(1.5 * float(np.median(radii)), 1e-12)
        levels = np.clip(np.ceil(radii / target), 1, 64).astype(np.int64)
        sample_points, sample_faces = [], []
        for level in np.unique(levels):
            face_ids = np.nonzero(levels == level)[0]
            bary = _subtriangle_centroids(int(level))
            sample_points.append(np.einsum("sk,fkd->fsd", bary, corners[face_ids]).reshape(-1, 3))
            sample_faces.append(np.repeat(face_ids, bary.shape[0]))
        self._sample_faces = np.concatenate(sample_faces)
        self._tree = cKDTree(np.concatenate(sample_points))
        self.slack = float((radii / levels).max())

    @property
    def num_samples(self) -> int:
        """Number of points in the k-d tree."""
        return int(self._sample_faces.shape[0])

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

    def _ball_search(self, queries: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, ...]:
        """Exact closest points when the answer lies within ``radii [M]`` of each query ``[M, 3]``.

        Every triangle with a point within ``radius`` has a sample within ``radius + slack``: those
        triangles are the candidates, deduplicated per query.
        """
        lists = self._tree.query_ball_point(queries, radii + self.slack)
        counts = np.array([len(item) for item in lists], dtype=np.int64)
        if counts.min() == 0:
            raise RuntimeError("closest-point ball search found no candidate: the upper bound was wrong")
        owners = np.repeat(np.arange(queries.shape[0]), counts)
        faces = self._sample_faces[np.concatenate([np.asarray(item, dtype=np.int64) for item in lists])]
        keys = np.unique(owners * self.faces.shape[0] + faces)
        owners, faces = keys // self.faces.shape[0], keys % self.faces.shape[0]
        corners = self.vertices[self.faces[faces]]
        closest, bary = closest_points_on_triangles(queries[owners], corners[:, 0], corners[:, 1], corners[:, 2])
        d2 = ((queries[owners] - closest) ** 2).sum(1)
        order = np.lexsort((d2, owners))
        first = order[np.searchsorted(owners[order], np.arange(queries.shape[0]))]
        return closest[first], np.sqrt(d2[first]), faces[first], bary[first]

    def closest_points(self, points: np.ndarray, k_schedule: tuple[int, ...] = (8, 32, 128)) -> ClosestPoints:
        """Exact closest surface points of ``points [N, 3]``; see the class docstring.

        ``k_schedule`` lists the numbers of nearest samples tried before the exact ball search.
        """
        points = check_points(points, "points")
        n = points.shape[0]
        out_points, out_dist = np.zeros((n, 3)), np.zeros(n)
        out_faces, out_bary = np.zeros(n, dtype=np.int64), np.zeros((n, 3))
        remaining = np.arange(n)
        best = np.full(n, np.inf)
        for k_wanted in k_schedule:
            if not remaining.size:
                break
            k = min(k_wanted, self.num_samples)
            sample_dist, sample_ids = self._tree.query(points[remaining], k=k)
            sample_dist = sample_dist.reshape(remaining.size, k)
            found = self._exact(points[remaining], self._sample_faces[sample_ids.reshape(remaining.size, k)])
            best[remaining] = found[1]
            certified = (k >= self.num_samples) | (found[1] <= sample_dist[:, -1] - self.slack)
            done = remaining[certified]
            out_points[done], out_dist[done] = found[0][certified], found[1][certified]
            out_faces[done], out_bary[done] = found[2][certified], found[3][certified]
            remaining = remaining[~certified]
        for start in range(0, remaining.size, 256):
            block = remaining[start : start + 256]
            found = self._ball_search(points[block], best[block] * (1 + 1e-9) + 1e-9)
            out_points[block], out_dist[block], out_faces[block], out_bary[block] = found
        return ClosestPoints(out_points, out_dist, out_faces, out_bary)

    def distances(self, points: np.ndarray) -> np.ndarray:
        """Unsigned point-to-surface distances ``[N]`` of ``points [N, 3]``."""
        return self.closest_points(points).distances


def brute_force_closest_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> ClosestPoints:
    """Closest points ``[N]`` by testing every triangle: the reference for :class:`TriangleMesh`."""
    return ClosestPoints(*TriangleMesh(vertices, faces).brute_force(check_points(points, "points")))
