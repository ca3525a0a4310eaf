"""Similarity and rigid alignment of corresponding 3D point sets (Umeyama's closed form)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimilarityTransform:
    """``x -> scale * rotation @ x + translation`` (rigid when ``scale == 1``).

    Attributes:
        scale: positive isotropic scale factor.
        rotation: ``[3, 3]`` proper rotation matrix (determinant +1).
        translation: ``[3]`` translation, in the target's units (mm).
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    @staticmethod
    def identity() -> SimilarityTransform:
        """The identity transform."""
        return SimilarityTransform(1.0, np.eye(3), np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform points ``[N, 3]`` -> ``[N, 3]``."""
        points = np.asarray(points, dtype=np.float64)
        return self.scale * points @ self.rotation.T + self.translation

    def inverse(self) -> SimilarityTransform:
        """The inverse transform."""
        rotation = self.rotation.T
        return SimilarityTransform(1.0 / self.scale, rotation, -(rotation @ self.translation) / self.scale)


def check_points(points: np.ndarray, name: str, count: int | None = None) -> np.ndarray:
    """Return ``points`` as a finite float64 ``[N, 3]`` array, or raise ``ValueError`` naming ``name``."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{name} must have shape [N, 3], got {list(array.shape)}")
    if count is not None and array.shape[0] != count:
        raise ValueError(f"{name} must have {count} points, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return array


def _corresponding(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``source [N, 3]`` and ``target [N, 3]`` with ``N >= 3``."""
    source = check_points(source, "source")
    target = check_points(target, "target", source.shape[0])
    if source.shape[0] < 3:
        raise ValueError(f"alignment needs at least 3 corresponding points, got {source.shape[0]}")
    return source, target


def umeyama(source: np.ndarray, target: np.ndarray, scale: bool = True) -> SimilarityTransform:
    """Least-squares transform mapping ``source`` onto ``target`` (Umeyama 1991), no reflection.

    Args:
        source: ``[N, 3]`` points, ``N >= 3``.
        target: ``[N, 3]`` corresponding points.
        scale: estimate an isotropic scale (similarity) or keep scale 1 (rigid).

    Returns:
        The transform ``T`` minimising ``sum_i |T(source_i) - target_i|^2``.
    """
    source, target = _corresponding(source, target)
    mean_s, mean_t = source.mean(0), target.mean(0)
    centred_s, centred_t = source - mean_s, target - mean_t
    variance_s = float((centred_s**2).sum(1).mean())
    if variance_s <= 1e-20:
        raise ValueError("source points are all identical: alignment is undefined")
    covariance = centred_t.T @ centred_s / source.shape[0]
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[2] = -1.0
    rotation = (u * signs) @ vt
    factor = float((singular * signs).sum() / variance_s) if scale else 1.0
    if factor <= 0:
        raise ValueError("degenerate correspondences: estimated scale is not positive")
    return SimilarityTransform(factor, rotation, mean_t - factor * rotation @ mean_s)


def similarity_alignment(source: np.ndarray, target: np.ndarray) -> SimilarityTransform:
    """Similarity (rotation, translation, isotropic scale) from ``source [N,3]`` onto ``target [N,3]``."""
    return umeyama(source, target, scale=True)


def rigid_alignment(source: np.ndarray, target: np.ndarray) -> SimilarityTransform:
    """Rigid (rotation, translation) transform from ``source [N,3]`` onto ``target [N,3]``."""
    return umeyama(source, target, scale=False)


def norm_ratio_similarity(source: np.ndarray, target: np.ndarray) -> SimilarityTransform:
    """Similarity from ``source [N,3]`` onto ``target [N,3]`` whose scale is the ratio of the centred norms.

    The scale is ``|target - mean(target)| / |source - mean(source)|`` (Frobenius norms), the rotation the
    reflection-free orthogonal Procrustes solution between the centred sets, so the transform maps the
    source's centroid onto the target's. This is menpo's ``AlignmentSimilarity``, which GANFit's MICC
    script uses; unlike :func:`similarity_alignment` (least squares) the scale ignores how well the
    rotated shapes agree, so it stays > 0 and does not shrink a noisy source.
    """
    source, target = _corresponding(source, target)
    mean_s, mean_t = source.mean(0), target.mean(0)
    centred_s, centred_t = source - mean_s, target - mean_t
    norm_s, norm_t = float(np.linalg.norm(centred_s)), float(np.linalg.norm(centred_t))
    if norm_s <= 1e-12 or norm_t <= 1e-12:
        raise ValueError("source or target points are all identical: alignment is undefined")
    rotation = umeyama(source, target, scale=False).rotation
    scale = norm_t / norm_s
    return SimilarityTransform(scale, rotation, mean_t - scale * rotation @ mean_s)
