"""Iterative closest point (similarity or rigid) between points and a triangle mesh surface."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastganfit.evaluation.alignment import SimilarityTransform, check_points, umeyama
from fastganfit.evaluation.closest_point import TriangleMesh


@dataclass(frozen=True)
class IcpResult:
    """Outcome of an ICP run.

    Attributes:
        transform: the final transform of the moving side.
        mean_distance: mean point-to-surface distance (mm) under ``transform``.
        iterations: number of accepted alignment updates.
        history: mean distance before the first update and after each accepted update.
    """

    transform: SimilarityTransform
    mean_distance: float
    iterations: int
    history: tuple[float, ...]


def _check_options(tolerance: float, max_iterations: int) -> None:
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 mm, got {tolerance}")
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")


def icp_points_to_surface(
    points: np.ndarray,
    surface: TriangleMesh,
    scale: bool = True,
    init: SimilarityTransform | None = None,
    tolerance: float = 1e-3,
    max_iterations: int = 100,
) -> IcpResult:
    """Move ``points`` onto a fixed ``surface``: align, take closest surface points, repeat.

    Minimises ``mean_i |T(points_i) - closest(T(points_i))|`` over similarity (``scale=True``) or rigid
    transforms ``T``, stopping when the mean distance improves by less than ``tolerance`` (mm).

    Args:
        points: ``[N, 3]`` moving points (N >= 3).
        surface: the fixed triangle mesh.
        scale: similarity ICP when true, rigid ICP otherwise.
        init: initial transform of the points (identity when ``None``).
        tolerance: minimum improvement of the mean distance (mm) to continue.
        max_iterations: maximum number of alignment updates.
    """
    points = check_points(points, "points")
    _check_options(tolerance, max_iterations)
    transform = init or SimilarityTransform.identity()
    found = surface.closest_points(transform.apply(points))
    history = [float(found.distances.mean())]
    iterations = 0
    for _ in range(max_iterations):
        candidate = umeyama(points, found.points, scale=scale)
        candidate_found = surface.closest_points(candidate.apply(points))
        candidate_mean = float(candidate_found.distances.mean())
        if candidate_mean >= history[-1]:
            break
        transform, found = candidate, candidate_found
        history.append(candidate_mean)
        iterations += 1
        if history[-2] - history[-1] < tolerance:
            break
    return IcpResult(transform, history[-1], iterations, tuple(history))


def icp_surface_to_points(
    surface: TriangleMesh,
    points: np.ndarray,
    scale: bool = True,
    init: SimilarityTransform | None = None,
    tolerance: float = 1e-3,
    max_iterations: int = 100,
) -> IcpResult:
    """Move a ``surface`` onto fixed ``points``: for each point take the closest point of the moved surface.

    Minimises ``mean_i |points_i - closest_on_T(surface)(points_i)|`` (distances in the points' frame,
    mm) over similarity or rigid ``T``; the closest point on ``T(surface)`` is ``T`` of the closest
    point on ``surface`` to ``T^-1(points_i)``, so the surface's index is built once.

    Args:
        surface: the moving triangle mesh.
        points: ``[N, 3]`` fixed points (N >= 3), e.g. scan vertices.
        scale, init, tolerance, max_iterations: as in :func:`icp_points_to_surface`.
    """
    points = check_points(points, "points")
    _check_options(tolerance, max_iterations)
    transform = init or SimilarityTransform.identity()

    def correspond(current: SimilarityTransform) -> tuple[np.ndarray, float]:
        found = surface.closest_points(current.inverse().apply(points))
        return found.points, float(current.scale * found.distances.mean())

    source, mean = correspond(transform)
    history = [mean]
    iterations = 0
    for _ in range(max_iterations):
        candidate = umeyama(source, points, scale=scale)
        candidate_source, candidate_mean = correspond(candidate)
        if candidate_mean >= history[-1]:
            break
        transform, source = candidate, candidate_source
        history.append(candidate_mean)
        iterations += 1
        if history[-2] - history[-1] < tolerance:
            break
    return IcpResult(transform, history[-1], iterations, tuple(history))
