"""UV layout of a morphable model rasterised into texture space: which texels are used, and where each
texel lies on the mean face (used to paint procedural textures and to define UV regions)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.render.interpolate import compute_fragments, interpolate_vertex_attributes
from fastganfit.render.rasterizer import rasterize_torch


@dataclass
class UVLayout:
    """``positions [3, R, R]``: mean-face position (mm) of each texel (zero where unused);
    ``coverage [1, R, R]``: 1 where a UV triangle covers the texel; ``face_index [R, R]``: the triangle covering
    each texel (-1 where unused) and ``bary [R, R, 3]`` the texel centre's barycentric coordinates in it (so any
    per-vertex quantity, e.g. a fitted mesh, can be read at every texel). Row 0 is the top of the map (v = 1)."""

    positions: torch.Tensor
    coverage: torch.Tensor
    face_index: torch.Tensor
    bary: torch.Tensor

    @property
    def resolution(self) -> int:
        """Texture resolution R."""
        return self.positions.shape[-1]


@torch.no_grad()
def rasterize_uv_layout(model: MorphableModel, resolution: int) -> UVLayout:
    """Rasterise ``model``'s UV triangles at ``resolution`` x ``resolution`` texels."""
    if model.uvs is None:
        raise ValueError("rasterize_uv_layout: the morphable model has no UV layout (uvs, face_uvs)")
    if resolution < 4:
        raise ValueError(f"rasterize_uv_layout: resolution must be at least 4, got {resolution}")
    uvs = model.uvs
    screen = torch.stack(
        [uvs[:, 0] * resolution - 0.5, (1.0 - uvs[:, 1]) * resolution - 0.5, torch.ones_like(uvs[:, 0])], dim=-1
    ).unsqueeze(0)
    face_index = rasterize_torch(screen, model.face_uvs, (resolution, resolution))
    fragments = compute_fragments(screen, model.face_uvs, face_index)
    positions = interpolate_vertex_attributes(fragments, model.mean.unsqueeze(0), model.faces)[0]
    return UVLayout(positions=positions, coverage=fragments.mask[0], face_index=face_index[0], bary=fragments.bary[0])
