"""Pictures of fitted faces for the outputs: the face over its crop (the module's camera and light, at the crop
size), the same render over a wider field for pasting onto the photo, and a shaded view of the shape turned
sideways (grey material, a fixed light)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fastganfit.params import FaceParams
from fastganfit.reconstruction.graph import FaceReconstructionGraph, grey_where, greyscale_images
from fastganfit.render.camera import LOG_FOCAL, YAW
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.render.lighting import PhongLighting

#: Phong parameters of the shaded view: ambient 0.45, white light 0.65 from the upper right front, a faint highlight.
SHADED_LIGHT = (-0.55, -0.55, -0.55, 0.65, 0.65, 0.65, 0.45, 0.55, 0.0, 0.08)
SHADED_GREY = 0.8


@dataclass(frozen=True)
class FaceViews:
    """Pictures of B fitted faces: ``vertices [B, V, 3]`` (mm, model frame), UV ``texture [B, 3, Ht, Wt]``,
    ``render [B, 3, S, S]`` over the crop with its ``mask [B, 1, S, S]``, ``landmarks [B, 68, 2]`` and their
    ``visibility [B, 68]``; ``wide [B, 3, W, W]`` and ``wide_mask [B, 1, W, W]``, the render over a wider field
    (crop pixel p is wide pixel ``p + wide_offset``); ``side [B, 3, S, S]``, the shape shaded, turned, on white."""

    vertices: Tensor
    texture: Tensor
    render: Tensor
    mask: Tensor
    landmarks: Tensor
    visibility: Tensor
    wide: Tensor
    wide_mask: Tensor
    wide_offset: float
    side: Tensor


class ViewRenderer:
    """Renders :class:`FaceViews` of a module's faces for crops of ``size`` pixels. The wide render spans
    ``margin`` times the crop's side (same pixel size, same centre); the side view is turned by
    ``side_yaw_degrees`` (positive: the nose turns to the image's right)."""

    def __init__(
        self, graph: FaceReconstructionGraph, size: int, margin: float = 1.6, side_yaw_degrees: float = 60.0
    ) -> None:
        base = graph.renderer
        self.wide_size = round(size * margin)

        def renderer(lighting: torch.nn.Module, image_size: int) -> FaceRenderer:
            return FaceRenderer(
                base.faces, base.uvs, base.face_uvs, base.landmark_indices, camera=base.camera, lighting=lighting,
                image_size=image_size, backend=base.backend, visibility_tolerance_mm=base.visibility_tolerance_mm,
            ).to(base.faces.device)  # fmt: skip

        self.graph = graph
        self.over_crop = renderer(base.lighting, size)
        self.over_wide = renderer(base.lighting, self.wide_size)
        self.shaded = renderer(PhongLighting(), size)
        self.side_yaw = math.radians(side_yaw_degrees)
        self.size = size

    @torch.no_grad()
    def __call__(self, crops: Tensor, params: FaceParams) -> FaceViews:
        """Views of ``params`` (batch B) fitted to ``crops [B, 3, S, S]`` (S = the view size)."""
        if tuple(crops.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"crops: expected [B, 3, {self.size}, {self.size}], got {list(crops.shape)}")
        graph = self.graph
        vertices = graph.model(params.shape, params.expression)
        texture = graph.texture(params.texture).clamp(0, 1)
        over = self.over_crop(vertices, texture, params.camera, params.light, background=crops)
        greyscale = greyscale_images(crops)  # a greyscale photo's render is shown in grey (as it is fitted)
        # the same pixel size over a wider image: focal (in units of half the image side) scaled by S / W
        wide_camera = params.camera.clone()
        wide_camera[:, LOG_FOCAL] += math.log(self.size / self.wide_size)
        wide = self.over_wide(vertices, texture, wide_camera, params.light)
        batch = crops.shape[0]
        side_camera = params.camera.new_zeros(batch, params.camera.shape[1])
        side_camera[:, YAW] = self.side_yaw
        grey = texture.new_full((batch, 3, 8, 8), SHADED_GREY)
        light = params.light.new_tensor(SHADED_LIGHT).expand(batch, -1)
        side = self.shaded(vertices, grey, side_camera, light, background=torch.ones_like(crops))
        return FaceViews(
            vertices=vertices,
            texture=texture,
            render=grey_where(over.image, greyscale).clamp(0, 1),
            mask=over.mask,
            landmarks=over.landmarks,
            visibility=over.landmark_visibility,
            wide=grey_where(wide.image, greyscale).clamp(0, 1),
            wide_mask=wide.mask,
            wide_offset=(self.wide_size - self.size) / 2.0,
            side=side.image.clamp(0, 1),
        )
