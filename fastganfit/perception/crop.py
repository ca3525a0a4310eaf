"""Face-crop alignment: a least-squares similarity from detected landmarks onto the crop template.

Coordinates are pixels with the centre of pixel (row i, column j) at (x=j, y=i). A transform is a
2x3 affine ``[sR | t]`` mapping source pixels to crop pixels (the schema's ``crop_transform``):
``crop = transform[:, :2] @ source + transform[:, 2]``. The crop template is
:func:`fastganfit.perception.crop_template.crop_template`, passed in as an ``[68, 2]`` array so this module needs
neither torch nor the face model (prepare's worker processes stay light).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage.transform import SimilarityTransform

#: Side of an aligned face crop in pixels, unless a config says otherwise.
DEFAULT_CROP_SIZE = 224
#: Downscaling by more than this factor first box-filters the image by an integer factor (antialiasing).
ANTIALIAS_FACTOR = 2.0


@dataclass(frozen=True)
class AlignedFace:
    """An aligned crop: ``image`` uint8 ``[S, S, 3]``, ``landmarks`` ``[68, 2]`` float32 in crop pixels,
    ``transform`` ``[2, 3]`` float64 from source pixels to crop pixels."""

    image: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray


def _check_points(points: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name}: expected points [N, 2], got shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``[2, 3]`` = ``[sR | t]`` minimising ``sum |sR p + t - q|^2`` (Umeyama 1991,
    skimage's ``SimilarityTransform.from_estimate``).

    ``source``, ``target``: ``[N, 2]`` with ``N >= 2`` corresponding points; no reflection. Raises
    ``ValueError`` when the source points all coincide or the points give no transform.
    """
    p = _check_points(source, "source")
    q = _check_points(target, "target")
    if p.shape != q.shape or len(p) < 2:
        raise ValueError(f"source {list(p.shape)} and target {list(q.shape)} must be [N, 2] with N >= 2")
    if p.var(axis=0).sum() <= 1e-12:
        raise ValueError("source points all coincide: no similarity transform is defined")
    estimate = SimilarityTransform.from_estimate(p, q)
    if not estimate:
        raise ValueError(f"no similarity transform maps the source points onto the target points ({estimate})")
    return estimate.params[:2].copy()


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[..., 2]`` points mapped by a ``[2, 3]`` affine transform."""
    matrix = np.asarray(transform, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a ``[2, 3]`` affine transform."""
    matrix = np.asarray(transform, dtype=np.float64)
    linear = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear, -(linear @ matrix[:, 2:])], axis=1)


def crop_transform(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """``[2, 3]`` similarity from detected landmarks ``[68, 2]`` (source pixels) onto ``template`` ``[68, 2]``."""
    return similarity_transform(landmarks, template)


def _prefilter(image: Image.Image, crop_to_source: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """Box-downscale ``image`` by an integer factor when the crop samples it much more sparsely than one
    sample per pixel; returns the image and ``crop_to_source`` re-expressed in its pixels."""
    step = float(np.sqrt(abs(np.linalg.det(crop_to_source[:, :2]))))
    factor = int(step) if step >= ANTIALIAS_FACTOR else 1
    factor = min(factor, image.width, image.height)
    if factor <= 1:
        return image, crop_to_source
    # reduced pixel q covers source pixels factor*q .. factor*q + factor - 1: q = (source - (factor-1)/2) / factor
    reduced = crop_to_source.copy()
    reduced[:, 2] -= (factor - 1) / 2
    return image.reduce(factor), reduced / factor


def warp_image(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop of a uint8 ``[H, W, 3]`` image under ``transform`` (source -> crop).

    Bilinear; when the crop shrinks the face by more than :data:`ANTIALIAS_FACTOR`, the image is first
    box-filtered by an integer factor. Outside the image the crop is black.
    """
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"image: expected a uint8 RGB array [H, W, 3], got {array.dtype} {list(array.shape)}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    source, crop_to_source = _prefilter(Image.fromarray(array), invert_transform(transform))
    # PIL puts pixel centres at +0.5 on both sides: source_pil = A (crop_pil - 0.5) + b + 0.5
    linear, shift = crop_to_source[:, :2], crop_to_source[:, 2]
    pil_shift = shift + 0.5 - linear @ np.array([0.5, 0.5])
    coefficients = (linear[0, 0], linear[0, 1], pil_shift[0], linear[1, 0], linear[1, 1], pil_shift[1])
    warped = source.transform(
        (size, size), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0)
    )
    return np.asarray(warped, dtype=np.uint8)


def align_face(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, crop_size: int) -> AlignedFace:
    """Crop ``image`` (uint8 ``[H, W, 3]``) so that ``landmarks`` ``[68, 2]`` best match ``template``.

    ``template``: ``[68, 2]`` crop pixels, ``crop_template(crop_size)``; the crop is ``crop_size`` square.
    """
    transform = crop_transform(landmarks, template)
    crop = warp_image(image, transform, crop_size)
    return AlignedFace(crop, apply_transform(transform, landmarks).astype(np.float32), transform)


__all__ = [
    "AlignedFace",
    "align_face",
    "apply_transform",
    "crop_transform",
    "invert_transform",
    "similarity_transform",
    "warp_image",
]
