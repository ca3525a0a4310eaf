"""Camera parameters that project a face's 3D landmarks onto detected 2D landmarks, in closed form.

The regressor's camera head predicts a residual on top of this estimate (see ``docs/regressor_and_losses.md``):
left to learn the pose from scratch, the landmark loss's early gradient is dominated by pose errors, and
the shape coefficients (whose modes include scale, rotation and translation of the face) absorb them.

Method: scaled orthographic projection fitted by least squares and made orthonormal (SVD), then a few
POSIT-style iterations that rescale each landmark by its perspective depth. The result is returned in
:class:`~fastganfit.render.camera.PerspectiveCamera` parameters: pitch, yaw, roll, tx, ty, ``tz = 0`` (a face
farther away and a longer focal length look alike: the scale goes into ``log_focal``) and log_focal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fastganfit.render.camera import PerspectiveCamera
from fastganfit.render.constants import constant

JAW_CONTOUR_COUNT = 17  # iBUG-68 indices 0..16 follow the silhouette, not fixed points of the face
POSIT_ITERATIONS = 3


def _euler_from_matrix(rotation: Tensor) -> Tensor:
    """``[B, 3, 3]`` -> ``[B, 3]`` pitch, yaw, roll with ``R = Rz(roll) Ry(yaw) Rx(pitch)`` (inverse of
    :func:`fastganfit.render.camera.euler_to_matrix` for ``|yaw| < 90`` degrees)."""
    pitch = torch.atan2(rotation[:, 2, 1], rotation[:, 2, 2])
    yaw = torch.atan2(-rotation[:, 2, 0], torch.linalg.vector_norm(rotation[:, 2, 1:], dim=1))
    roll = torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0])
    return torch.stack([pitch, yaw, roll], dim=1)


def _scaled_orthographic(points: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Least-squares ``targets ≈ s R[:2] points + t`` with orthonormal rows: ``points [B, N, 3]``,
    ``targets [B, N, 2]`` -> rotation ``[B, 3, 3]`` (det +1), scale ``[B]``, translation ``[B, 2]``."""
    point_mean, target_mean = points.mean(1, keepdim=True), targets.mean(1, keepdim=True)
    centred, centred_targets = points - point_mean, targets - target_mean
    # affine [2, 3] by least squares, then the nearest scaled pair of orthonormal rows
    affine = torch.linalg.lstsq(centred, centred_targets).solution.transpose(1, 2)
    left, singular, right = torch.linalg.svd(affine, full_matrices=False)
    rows = left @ right
    rotation = torch.cat([rows, torch.linalg.cross(rows[:, 0], rows[:, 1]).unsqueeze(1)], dim=1)
    scale = singular.mean(1)
    translation = target_mean[:, 0] - scale[:, None] * (point_mean @ rows.transpose(1, 2))[:, 0]
    return rotation, scale, translation


@torch.no_grad()
def camera_from_landmarks(
    landmarks: Tensor, points: Tensor, camera: PerspectiveCamera, image_size: tuple[int, int]
) -> Tensor:
    """Camera parameters ``[B, 7]`` under which ``points`` project onto ``landmarks``.

    ``landmarks [B, 68, 2]``: detected landmarks in pixels of an image of ``image_size`` ``(H, W)``;
    ``points [B, 68, 3]`` or ``[68, 3]``: the face's 3D landmarks in mm, model frame (e.g. the mean face's).
    The jaw contour (indices 0..16) is left out: its points slide with the pose. Not differentiable (the
    result is a starting point, not a function to train through).
    """
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"camera_from_landmarks: landmarks must be [B, K, 2], got {list(landmarks.shape)}")
    points = points.to(landmarks).expand(landmarks.shape[0], -1, -1) if points.ndim == 2 else points.to(landmarks)
    if points.shape[:2] != landmarks.shape[:2] or points.shape[-1] != 3:
        raise ValueError(
            f"camera_from_landmarks: points must be [B, {landmarks.shape[1]}, 3] or [{landmarks.shape[1]}, 3], "
            f"got {list(points.shape)}"
        )
    height, width = image_size
    half_side = min(height, width) / 2.0
    centre = constant([(width - 1) / 2.0, (height - 1) / 2.0], landmarks)
    # normalised image coordinates: x_view / depth times the camera's default focal length, y up
    normalised = (landmarks[:, JAW_CONTOUR_COUNT:].double() - centre) / (camera.focal * half_side)
    normalised[..., 1] = -normalised[..., 1]
    model_points = points[:, JAW_CONTOUR_COUNT:].double()
    corrected = normalised
    for _ in range(POSIT_ITERATIONS + 1):
        rotation, scale, translation = _scaled_orthographic(model_points, corrected)
        # view frame at tz = 0: x_view = R X + (t / s, -d); depth_i = d - (R X_i)_z. Under perspective
        # q_i = focal_factor (R X_i + T)_xy / depth_i, so q_i depth_i / d is the scaled orthographic image.
        depth = camera.distance - model_points @ rotation[:, 2, :, None]
        corrected = normalised * depth / camera.distance
    focal_factor = scale * camera.distance
    params = torch.zeros(landmarks.shape[0], PerspectiveCamera.num_params, dtype=torch.float64, device=landmarks.device)
    params[:, 0:3] = _euler_from_matrix(rotation)
    params[:, 3:5] = translation / scale[:, None] / camera.translation_scale
    params[:, 6] = torch.log(focal_factor.clamp(min=math.ulp(1.0)))
    return params.to(landmarks.dtype)


def landmark_feature_count(num_landmarks: int, num_camera_params: int = PerspectiveCamera.num_params) -> int:
    """Width of :func:`landmark_residual_features`: two offsets per landmark plus the camera parameters."""
    return 2 * num_landmarks + num_camera_params


def landmark_residual_features(
    landmarks: Tensor, points: Tensor, camera_params: Tensor, camera: PerspectiveCamera, image_size: tuple[int, int]
) -> Tensor:
    """The regressor's landmark input ``[B, 2K + 7]``: the offsets of ``landmarks [B, K, 2]`` (pixels) from
    ``points`` (``[K, 3]`` or ``[B, K, 3]``, mm, e.g. the mean face's landmarks) projected by ``camera_params
    [B, 7]`` (e.g. :func:`camera_from_landmarks`), in percent of the face size (the landmarks' bounding-box
    diagonal; one standard deviation of a large shape mode moves landmarks by about 1 %), flattened, followed
    by ``camera_params``. What the shape, the expression and the camera's residual have to explain."""
    points = points.to(landmarks).expand(landmarks.shape[0], -1, -1) if points.ndim == 2 else points.to(landmarks)
    projected = camera.project(points, camera_params, image_size)[..., :2]
    extent = landmarks.amax(dim=1) - landmarks.amin(dim=1)
    face_size = torch.linalg.vector_norm(extent, dim=1).clamp(min=1e-6)
    offsets = 100.0 * (landmarks - projected) / face_size[:, None, None]
    return torch.cat([offsets.flatten(1), camera_params], dim=1)
