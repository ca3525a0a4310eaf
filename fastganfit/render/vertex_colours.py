"""Render meshes coloured per vertex with a head-light: shape previews and per-vertex error maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastganfit.render.camera import PerspectiveCamera
from fastganfit.render.face_renderer import vertex_normals
from fastganfit.render.interpolate import compute_fragments, interpolate_vertex_attributes
from fastganfit.render.rasterizer import select_backend


def render_vertex_colours(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    colours: torch.Tensor,
    camera_params: torch.Tensor,
    image_size: int = 256,
    camera: PerspectiveCamera | None = None,
    ambient: float = 0.35,
    background: float = 1.0,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``vertices [B, V, 3]`` (mm, model frame) with per-vertex ``colours [B, V, 3]`` in [0, 1].

    Shading: ``colour * (ambient + (1 - ambient) * max(0, n . v))`` with a light at the camera, so the
    surface reads in 3D while the colours stay legible. ``faces [F, 3]``; ``camera_params [B, 7]`` for
    ``camera`` (default :class:`PerspectiveCamera`: zeros frame a frontal face). Returns ``image [B, 3, S, S]``
    over a uniform ``background`` grey level and ``mask [B, 1, S, S]``.
    """
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices: expected [B, V, 3], got {list(vertices.shape)}")
    if colours.shape != vertices.shape:
        raise ValueError(f"colours: expected {list(vertices.shape)} like vertices, got {list(colours.shape)}")
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"ambient must be in [0, 1], got {ambient}")
    camera = camera or PerspectiveCamera()
    size = (image_size, image_size)
    faces = faces.to(vertices.device).long()
    view = camera.to_view(vertices, camera_params)
    screen = camera.view_to_pixels(view, camera_params, size)
    fragments = compute_fragments(screen, faces, select_backend(backend, vertices.device)(screen, faces, size))
    normals = F.normalize(interpolate_vertex_attributes(fragments, vertex_normals(view, faces), faces), dim=1)
    position = interpolate_vertex_attributes(fragments, view, faces)
    facing = (normals * F.normalize(-position, dim=1)).sum(1, keepdim=True).clamp(min=0.0)
    albedo = interpolate_vertex_attributes(fragments, colours, faces)
    shaded = albedo * (ambient + (1.0 - ambient) * facing)
    mask = fragments.mask
    return shaded * mask + background * (1.0 - mask), mask
