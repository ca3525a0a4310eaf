"""Perspective camera with zero-centred parameters.

Convention (used everywhere in fastganfit):

* World (model) frame: millimetres, right-handed, +Y up, +Z out of the face towards the camera.
* View frame: OpenGL style. The camera sits at the origin looking down -Z, +X right, +Y up; the
  depth of a point is ``-z_view`` (positive in front of the camera).
* Image frame: pixels, x to the right, y down; the centre of pixel (row i, column j) is at
  ``(x=j, y=i)`` (the dlib / OpenCV convention), so the image spans ``[-0.5, W-0.5]``.

Parameters ``[B, 7]``: ``pitch, yaw, roll`` (radians, rotations about X, Y, Z applied in that
order), ``tx, ty, tz`` (view-frame translation in units of ``translation_scale`` mm; +tz moves the
face towards the camera) and ``log_focal`` (focal length = ``focal * exp(log_focal)``).
All zeros: a frontal face at ``distance`` mm whose landmarks fill about three quarters of the crop.
"""

from __future__ import annotations

import torch
from torch import nn

PITCH, YAW, ROLL, TX, TY, TZ, LOG_FOCAL = range(7)


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[B, 3, 3]`` from ``[B, 3]`` (pitch about X, yaw about Y, roll about Z).

    ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``: pitch is applied first. Positive yaw turns the face's
    nose towards +X (the image's right).
    """
    pitch, yaw, roll = angles.unbind(-1)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    cx, sx, cy, sy, cz, sz = pitch.cos(), pitch.sin(), yaw.cos(), yaw.sin(), roll.cos(), roll.sin()
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


class PerspectiveCamera(nn.Module):
    """Pinhole camera looking at the model's origin from ``distance`` mm along +Z.

    ``focal`` is the focal length in units of half the image's shorter side (so it does not depend
    on resolution): a point at view-frame ``(x, y, -d)`` lands ``focal * x / d`` half-sides right of
    the image centre. The default ``focal=6.0`` is a field of view of about 19 degrees.
    """

    num_params = 7

    def __init__(self, distance: float = 700.0, focal: float = 6.0, translation_scale: float = 10.0) -> None:
        super().__init__()
        if distance <= 0 or focal <= 0 or translation_scale <= 0:
            raise ValueError(
                f"camera: distance, focal and translation_scale must be positive, got "
                f"{distance}, {focal}, {translation_scale}"
            )
        self.distance = float(distance)
        self.focal = float(focal)
        self.translation_scale = float(translation_scale)

    def _check(self, params: torch.Tensor) -> None:
        if params.ndim != 2 or params.shape[1] != self.num_params:
            raise ValueError(f"camera params: expected [B, {self.num_params}], got {list(params.shape)}")

    def rotation(self, params: torch.Tensor) -> torch.Tensor:
        """Model-to-view rotation ``[B, 3, 3]`` of camera ``params [B, 7]``."""
        self._check(params)
        return euler_to_matrix(params[:, PITCH : ROLL + 1])

    def to_view(self, points: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Model-frame ``points [B, N, 3]`` (mm) in the view frame ``[B, N, 3]`` (camera looks down -Z)."""
        rotation = self.rotation(params)
        translation = params[:, TX : TZ + 1] * self.translation_scale
        translation = torch.cat([translation[:, :2], translation[:, 2:] - self.distance], dim=1)
        return points @ rotation.transpose(1, 2) + translation.unsqueeze(1)

    def focal_length(self, params: torch.Tensor) -> torch.Tensor:
        """Focal length ``[B]`` in units of half the shorter image side."""
        self._check(params)
        return self.focal * params[:, LOG_FOCAL].exp()

    def view_to_pixels(
        self, view_points: torch.Tensor, params: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """Project view-frame points ``[B, N, 3]`` to ``[B, N, 3]``: pixel x, pixel y and depth (mm)."""
        height, width = image_size
        half_side = min(height, width) / 2.0
        depth = -view_points[..., 2]
        scale = (self.focal_length(params) * half_side).view(-1, 1)
        safe_depth = depth.clamp(min=1e-6)
        x = (width - 1) / 2.0 + scale * view_points[..., 0] / safe_depth
        y = (height - 1) / 2.0 - scale * view_points[..., 1] / safe_depth
        return torch.stack([x, y, depth], dim=-1)

    def project(self, points: torch.Tensor, params: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Model-frame ``points [B, N, 3]`` to pixel coordinates and depth ``[B, N, 3]``."""
        return self.view_to_pixels(self.to_view(points, params), params, image_size)
