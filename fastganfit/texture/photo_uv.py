"""UV textures taken from a fitted photo: for every texel, the photo's colour where its surface point projects,
with the fitted light divided out (albedo), a confidence (visible, facing the camera), completion of hidden
texels from their mirror image across the face's symmetry plane, and the rest filled from the fitted texture
model with a seamless blend.

Per texel (the UV layout gives each texel's triangle and barycentric coordinates, so a fitted mesh ``[B, V, 3]``
is read at every texel)::

    surface point, normal  <- fitted vertices (view frame)
    photo colour           <- bilinear sample of the photo at the point's projection      (differentiable)
    visible                <- the rasterised depth at that pixel is the point's own depth  (no gradient)
    confidence             <- visible * ramp(cos(normal, view ray))                        (grazing texels fade out)
                              * skin trust (skin texels of another colour than the face's skin: hair, background,
                              glasses frames, highlights; texture/skin_trust.py)
    albedo                 <- (colour - shade(0)) / (shade(1) - shade(0))

Both lighting models are affine in the albedo (Phong: ``albedo * (ambient + diffuse) + highlight``; spherical
harmonics: ``albedo * irradiance``), so the two shadings with albedo 0 and 1 give the offset and gain to undo
exactly (docs/textures.md says how far this holds for real photos). The blend keeps the model texture's detail
where the photo says nothing and moves its colour towards the photo's: the offset ``photo - model`` on confident
texels is spread over the rest of the map by pull-push interpolation (Gortler et al., 1996), a smooth
membrane-like fill in the spirit of Poisson blending, written in torch so that it stays differentiable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.render.camera import PerspectiveCamera
from fastganfit.render.face_renderer import vertex_normals
from fastganfit.render.interpolate import compute_fragments
from fastganfit.render.rasterizer import select_backend
from fastganfit.texture.procedural import front_texels, region_masks
from fastganfit.texture.skin_trust import SkinTrust, smooth_ramp
from fastganfit.texture.uv_layout import UVLayout, rasterize_uv_layout

__all__ = ["PhotoTexture", "PhotoTextureExtractor", "mirror_sampling_grid", "pull_push_fill", "smooth_ramp"]

#: A texel's mirror image is trusted only when its mean-face position is within this distance (mm) of the mirrored
#: position (UV seams make the interpolated mirror UV jump elsewhere).
MIRROR_TOLERANCE_MM = 2.0
MIN_GAIN = 0.05  # texels whose light gain is below this (in shadow) are not divided out


@dataclass(frozen=True)
class PhotoTexture:
    """What :class:`PhotoTextureExtractor` returns for B photos, all UV maps of side R (row 0 = top, v = 1):

    ``albedo [B, 3, R, R]`` the photo's albedo (after mirror completion; meaningless where ``confidence`` is 0),
    ``confidence [B, 1, R, R]`` in [0, 1] (seen directly, or through the mirror), ``seen [B, 1, R, R]`` the
    direct part of it (before mirroring; times the skin trust when cleaning), ``model [B, 3, R, R]`` the fitted
    model texture and ``blended [B, 3, R, R]`` the final texture: the photo where it is confident, the
    colour-matched model elsewhere."""

    albedo: Tensor
    confidence: Tensor
    seen: Tensor
    model: Tensor
    blended: Tensor


def pull_push_fill(values: Tensor, weight: Tensor, min_size: int = 2) -> Tensor:
    """Fill ``values [B, C, R, R]`` where ``weight [B, 1, R, R]`` (in [0, 1]) is low by pull-push interpolation.

    Pull: weighted 2x2 averages down to ``min_size`` (weights summed, capped at 1). Push: from the coarsest level up,
    each level's values are blended with the upsampled coarser fill by its own weight. Texels of weight 1 keep their
    value; the rest get a smooth, weight-normalised interpolation of their surroundings. Differentiable.
    """
    if values.shape[-1] <= min_size or values.shape[-1] % 2:
        total = (values * weight).sum((-2, -1), keepdim=True) / weight.sum((-2, -1), keepdim=True).clamp(min=1e-8)
        return values * weight + total * (1.0 - weight)
    pooled_weight = F.avg_pool2d(weight, 2)
    pooled = F.avg_pool2d(values * weight, 2) / pooled_weight.clamp(min=1e-8)
    coarse = pull_push_fill(pooled, (pooled_weight * 4.0).clamp(max=1.0), min_size)
    up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
    return values * weight + up * (1.0 - weight)


def mirror_sampling_grid(model: MorphableModel, layout: UVLayout) -> tuple[Tensor, Tensor]:
    """Where each texel's mirror image lies in the UV map: ``grid [R, R, 2]`` (grid_sample coordinates) and
    ``valid [1, R, R]`` (the mirror texel is covered and its mean-face position mirrors this texel's).

    Uses the model's vertex ``symmetry [V]``: the mirror point has the same barycentric coordinates in the triangle
    of the mirrored vertices, read in UV through one UV per vertex."""
    if model.symmetry is None:
        raise ValueError("photo texture mirror completion: the morphable model has no symmetry map (symmetry [V])")
    vertex_uv = torch.zeros(model.num_vertices, 2, dtype=model.uvs.dtype, device=model.uvs.device)
    vertex_uv[model.faces.flatten()] = model.uvs[model.face_uvs.flatten()]
    covered = layout.face_index >= 0
    corners = model.symmetry[model.faces[layout.face_index.clamp(min=0)]]
    uv = (layout.bary.unsqueeze(-1) * vertex_uv[corners]).sum(-2)
    grid = torch.stack([uv[..., 0] * 2.0 - 1.0, 1.0 - uv[..., 1] * 2.0], dim=-1)
    mirrored = layout.positions * layout.positions.new_tensor([-1.0, 1.0, 1.0]).view(3, 1, 1)
    found = F.grid_sample(layout.positions[None], grid[None], mode="nearest", align_corners=False)[0]
    found_covered = F.grid_sample(layout.coverage[None], grid[None], mode="nearest", align_corners=False)[0]
    close = (found - mirrored).norm(dim=0, keepdim=True) < MIRROR_TOLERANCE_MM
    valid = covered[None] & close & (found_covered > 0.5)
    return grid, valid.to(layout.positions.dtype)


class PhotoTextureExtractor(nn.Module):
    """Extract :class:`PhotoTexture` UV maps of side ``resolution`` from photos of fitted faces.

    ``model`` gives the topology, UV layout and symmetry; ``camera`` and ``lighting`` are the ones the fit used.
    Confidence ramps from 0 at ``cos(normal, view ray) = min_cosine`` to 1 at ``full_cosine``; a texel is visible
    when the rasterised surface at its pixel is within ``depth_tolerance_mm`` (or two pixels' footprint, whichever
    is larger) of it. ``mirror``: complete hidden texels from their mirror image. ``light_colour``: divide out the
    fitted light with its colour (exact when the fit is); ``False`` divides out only its brightness (the mean gain
    over the channels), keeping the photo's colour balance, which is safer when a fit confuses a coloured light
    with the skin's colour. ``clean``: trust skin texels only where their colour is the face's skin colour
    (:class:`~fastganfit.texture.skin_trust.SkinTrust`), so hair, background, glasses frames and highlights come
    from the mirror image or the model texture instead of the photo.
    """

    def __init__(
        self,
        model: MorphableModel,
        camera: PerspectiveCamera,
        lighting: nn.Module,
        resolution: int = 128,
        min_cosine: float = 0.15,
        full_cosine: float = 0.45,
        depth_tolerance_mm: float = 3.0,
        mirror: bool = True,
        light_colour: bool = True,
        clean: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if not 0.0 <= min_cosine < full_cosine <= 1.0:
            raise ValueError(f"need 0 <= min_cosine < full_cosine <= 1, got {min_cosine}, {full_cosine}")
        if depth_tolerance_mm <= 0:
            raise ValueError(f"depth_tolerance_mm must be positive, got {depth_tolerance_mm}")
        layout = rasterize_uv_layout(model, resolution)
        self.camera, self.lighting, self.backend = camera, lighting, backend
        self.min_cosine, self.full_cosine = float(min_cosine), float(full_cosine)
        self.depth_tolerance_mm, self.mirror = float(depth_tolerance_mm), bool(mirror)
        self.light_colour = bool(light_colour)
        landmarks = model.mean[model.landmark_indices]
        front = front_texels(layout, landmarks).view(1, 1, resolution, resolution)
        self.trust = SkinTrust.from_regions(region_masks(layout, landmarks), front) if clean else None
        self.register_buffer("faces", model.faces.long(), persistent=False)
        self.register_buffer("texel_face", layout.face_index, persistent=False)
        self.register_buffer("texel_bary", layout.bary, persistent=False)
        self.register_buffer("coverage", layout.coverage, persistent=False)
        grid, valid = mirror_sampling_grid(model, layout)
        self.register_buffer("mirror_grid", grid, persistent=False)
        self.register_buffer("mirror_valid", valid, persistent=False)

    @property
    def resolution(self) -> int:
        """Side R of the UV maps."""
        return self.coverage.shape[-1]

    def texel_attributes(self, attributes: Tensor) -> Tensor:
        """Per-vertex ``attributes [B, V, C]`` read at every texel: ``[B, C, R, R]`` (zero where unused)."""
        corners = self.faces[self.texel_face.clamp(min=0)]
        values = attributes[:, corners]
        return (self.texel_bary.unsqueeze(-1) * values).sum(-2).permute(0, 3, 1, 2) * self.coverage

    def observe(
        self, image: Tensor, vertices: Tensor, camera_params: Tensor, light_params: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Albedo ``[B, 3, R, R]`` and confidence ``[B, 1, R, R]`` of the texels seen in ``image [B, 3, H, W]``
        (in [0, 1]) of the mesh ``vertices [B, V, 3]`` (mm) under ``camera_params [B, 7]`` and ``light_params``."""
        size = tuple(image.shape[-2:])
        view = self.camera.to_view(vertices, camera_params)
        point = self.texel_attributes(view)
        normal = F.normalize(self.texel_attributes(vertex_normals(view, self.faces)), dim=1)
        to_camera = F.normalize(-point, dim=1)
        cosine = (normal * to_camera).sum(1, keepdim=True)
        flat = point.flatten(2).transpose(1, 2)
        pixels = self.camera.view_to_pixels(flat, camera_params, size)
        height, width = size
        grid = torch.stack([(pixels[..., 0] + 0.5) / width * 2 - 1, (pixels[..., 1] + 0.5) / height * 2 - 1], -1)
        grid = grid.view(-1, self.resolution, self.resolution, 2)
        colour = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
        visible = self._visible(view, camera_params, size, pixels.detach())
        inside = (grid.detach().abs() <= 1.0).all(-1, keepdim=True).permute(0, 3, 1, 2)
        confidence = smooth_ramp(cosine, self.min_cosine, self.full_cosine) * visible * inside * self.coverage
        offset = self.lighting.shade(torch.zeros_like(colour), normal, to_camera, light_params)
        gain = self.lighting.shade(torch.ones_like(colour), normal, to_camera, light_params) - offset
        if not self.light_colour:
            gain = gain.mean(1, keepdim=True).expand_as(gain)
            offset = offset.mean(1, keepdim=True).expand_as(offset)
        lit = (gain > MIN_GAIN).all(1, keepdim=True)
        albedo = (colour - offset) / gain.clamp(min=MIN_GAIN)
        return albedo * self.coverage, confidence * lit

    @torch.no_grad()
    def _visible(self, view: Tensor, camera_params: Tensor, size: tuple[int, int], pixels: Tensor) -> Tensor:
        """``[B, 1, R, R]`` float 0/1: the rasterised surface at each texel's pixel ``pixels [B, R*R, 3]`` (x, y,
        depth) is the texel's own."""
        screen = self.camera.view_to_pixels(view, camera_params, size)
        face_index = select_backend(self.backend, view.device)(screen, self.faces, size)
        depth = compute_fragments(screen, self.faces, face_index).depth[:, 0]
        height, width = size
        col = pixels[..., 0].round().long().clamp(0, width - 1)
        row = pixels[..., 1].round().long().clamp(0, height - 1)
        drawn = depth.flatten(1).gather(1, row * width + col)
        focal = self.camera.focal_length(camera_params).view(-1, 1) * min(size) / 2.0
        tolerance = (2.0 * pixels[..., 2] / focal).clamp(min=self.depth_tolerance_mm)
        visible = (drawn > 0) & ((drawn - pixels[..., 2]).abs() < tolerance)
        return visible.view(-1, 1, self.resolution, self.resolution).to(view.dtype)

    def complete_by_symmetry(self, albedo: Tensor, confidence: Tensor) -> tuple[Tensor, Tensor]:
        """``albedo [B, 3, R, R]`` and ``confidence [B, 1, R, R]`` with texels seen poorly taken from their mirror
        image where that is seen better: weight ``c_m (1 - c)`` for the mirror, ``c`` for the texel itself."""
        grid = self.mirror_grid.expand(albedo.shape[0], -1, -1, -1)
        mirror_albedo = F.grid_sample(albedo, grid, mode="bilinear", align_corners=False)
        mirror_confidence = F.grid_sample(confidence, grid, mode="bilinear", align_corners=False) * self.mirror_valid
        borrowed = mirror_confidence * (1.0 - confidence)
        total = confidence + borrowed
        completed = (albedo * confidence + mirror_albedo * borrowed) / total.clamp(min=1e-6)
        return torch.where(total > 0, completed, albedo), total

    def blend(self, albedo: Tensor, confidence: Tensor, model_texture: Tensor) -> Tensor:
        """The photo ``albedo [B, 3, R, R]`` where ``confidence [B, 1, R, R]`` is 1, elsewhere ``model_texture``
        shifted by the pull-push fill of the offset ``albedo - model`` (so colours meet without a seam)."""
        offset = pull_push_fill(albedo - model_texture, confidence)
        return (confidence * albedo + (1.0 - confidence) * (model_texture + offset)).clamp(0.0, 1.0)

    def forward(
        self, image: Tensor, vertices: Tensor, camera_params: Tensor, light_params: Tensor, model_texture: Tensor
    ) -> PhotoTexture:
        """The :class:`PhotoTexture` of fitted faces in ``image [B, 3, H, W]``; ``model_texture [B, 3, Rt, Rt]``
        (the fitted texture model's output, resized to R when it differs)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"photo texture: image must be [B, 3, H, W], got {list(image.shape)}")
        if model_texture.ndim != 4 or model_texture.shape[1] != 3:
            raise ValueError(f"photo texture: model_texture must be [B, 3, R, R], got {list(model_texture.shape)}")
        if model_texture.shape[-1] != self.resolution:
            model_texture = F.interpolate(
                model_texture, size=(self.resolution,) * 2, mode="bilinear", align_corners=False, antialias=True
            )
        albedo, seen = self.observe(image, vertices, camera_params, light_params)
        if self.trust is not None:
            seen = seen * self.trust(albedo, seen)
        confidence = seen
        if self.mirror:
            albedo, confidence = self.complete_by_symmetry(albedo, seen)
        blended = self.blend(albedo, confidence, model_texture)
        return PhotoTexture(albedo=albedo, confidence=confidence, seen=seen, model=model_texture, blended=blended)
