"""Iterative closest point (similarity or rigid) between points and a triangle mesh surface."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastganfit.geometry.alignment import SimilarityTransform, check_points, norm_ratio_similarity, umeyama
from fastganfit.geometry.closest_point import TriangleMesh


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
    rmse: bool = False,
) -> IcpResult:
    """Move a ``surface`` onto fixed ``points``: for each point take the closest point of the moved surface.

    Minimises ``mean_i |points_i - closest_on_T(surface)(points_i)|`` (distances in the points' frame,
    mm) over similarity or rigid ``T``; the closest point on ``T(surface)`` is ``T`` of the closest
    point on ``surface`` to ``T^-1(points_i)``, so the surface's index is built once.

    Args:
        surface: the moving triangle mesh.
        points: ``[N, 3]`` fixed points (N >= 3), e.g. scan vertices.
        scale, init, tolerance, max_iterations: as in :func:`icp_points_to_surface`.
        rmse: track (and stop on) the root mean square distance instead of the mean, the quantity the
            least-squares steps minimise (a step can lower the RMSE while raising the mean).
    """
    points = check_points(points, "points")
    _check_options(tolerance, max_iterations)
    transform = init or SimilarityTransform.identity()

    def correspond(current: SimilarityTransform) -> tuple[np.ndarray, float]:
        found = surface.closest_points(current.inverse().apply(points))
        summary = np.sqrt((found.distances**2).mean()) if rmse else found.distances.mean()
        return found.points, float(current.scale * summary)

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


def icp_from_correspondences(
    points: np.ndarray, targets: np.ndarray, surface: TriangleMesh, tolerance: float = 1e-3, unit: float = 1.0
) -> IcpResult:
    """Norm-ratio similarity ICP started from given correspondences (GANFit's MICC loop).

    Each step aligns the moving ``points`` onto their current partners with
    :func:`~fastganfit.geometry.alignment.norm_ratio_similarity` (composed with the previous steps),
    then takes the partners as the closest points of ``surface``. The first partners are ``targets``
    (dense correspondences of a shared topology). The loop continues while the mean distance (times
    ``unit``) drops by more than ``tolerance`` and keeps the last step, even one that made it worse;
    there is no iteration cap (each continuing step gains more than ``tolerance``, so it ends).

    Args:
        points: ``[N, 3]`` moving points (N >= 3).
        targets: ``[N, 3]`` their first partners.
        surface: the fixed triangle mesh.
        tolerance: minimum gain of the mean distance (in ``unit`` units, e.g. mm) to continue.
        unit: factor from the surface's units to the reported ones (e.g. 100 for decimetre meshes in mm).

    Returns:
        :class:`IcpResult` with ``mean_distance`` and ``history`` in ``unit`` units; ``history[0]`` is
        the mean distance to the first partners.
    """
    points = check_points(points, "points")
    partners = check_points(targets, "targets", points.shape[0])
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    transform = SimilarityTransform.identity()
    moved = points
    history = [unit * float(np.linalg.norm(partners - moved, axis=1).mean())]
    previous = np.inf
    while previous - history[-1] > tolerance:
        step = norm_ratio_similarity(moved, partners)
        transform = SimilarityTransform(
            step.scale * transform.scale,
            step.rotation @ transform.rotation,
            step.scale * step.rotation @ transform.translation + step.translation,
        )
        moved = transform.apply(points)
        found = surface.closest_points(moved)
        partners = found.points
        previous = history[-1]
        history.append(unit * float(found.distances.mean()))
    return IcpResult(transform, history[-1], len(history) - 1, tuple(history))
