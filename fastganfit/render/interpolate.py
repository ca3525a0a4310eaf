"""Differentiable barycentric interpolation over a rasterised face-index buffer.

Visibility (which triangle covers a pixel) comes from a rasteriser without gradients; the barycentric
coordinates of each covered pixel centre are recomputed here from the screen-space vertices, so
gradients reach vertex positions (and so shape, expression and camera) through every interpolated
attribute, whichever backend drew the face-index buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Fragments:
    """Per-pixel rasterisation result for a batch.

    ``face_index [B, H, W]`` (-1 = background), ``mask [B, 1, H, W]`` (float 0/1, no gradient),
    ``bary [B, H, W, 3]`` perspective-correct barycentric coordinates (zero on background) and
    ``depth [B, 1, H, W]`` in mm (zero on background); both are differentiable.
    """

    face_index: torch.Tensor
    mask: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor


def compute_fragments(screen: torch.Tensor, faces: torch.Tensor, face_index: torch.Tensor) -> Fragments:
    """Barycentrics and depth for each covered pixel centre.

    ``screen [B, V, 3]`` pixel x, pixel y, depth (mm); ``faces [F, 3]``; ``face_index [B, H, W]``.
    """
    batch, height, width = face_index.shape
    covered = face_index >= 0
    safe_index = face_index.clamp(min=0)
    corners = faces[safe_index]
    batch_ids = torch.arange(batch, device=screen.device).view(-1, 1, 1, 1)
    tri = screen[batch_ids, corners]
    ys, xs = torch.meshgrid(
        torch.arange(height, device=screen.device, dtype=screen.dtype),
        torch.arange(width, device=screen.device, dtype=screen.dtype),
        indexing="ij",
    )
    x0, x1, x2 = tri[..., 0, 0], tri[..., 1, 0], tri[..., 2, 0]
    y0, y1, y2 = tri[..., 0, 1], tri[..., 1, 1], tri[..., 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    area = torch.where(covered, area, torch.ones_like(area))
    w0 = ((x1 - xs) * (y2 - ys) - (x2 - xs) * (y1 - ys)) / area
    w1 = ((x2 - xs) * (y0 - ys) - (x0 - xs) * (y2 - ys)) / area
    screen_bary = torch.stack([w0, w1, 1.0 - w0 - w1], dim=-1)
    screen_bary = torch.where(covered.unsqueeze(-1), screen_bary, torch.full_like(screen_bary, 1.0 / 3.0))

    depth = torch.where(covered.unsqueeze(-1), tri[..., 2], torch.ones_like(tri[..., 2]))
    weighted = screen_bary / depth
    inverse_depth = weighted.sum(-1, keepdim=True)
    bary = weighted / inverse_depth
    pixel_depth = 1.0 / inverse_depth

    mask = covered.unsqueeze(-1).to(screen.dtype)
    return Fragments(
        face_index=face_index,
        mask=mask.permute(0, 3, 1, 2),
        bary=bary * mask,
        depth=(pixel_depth * mask).permute(0, 3, 1, 2),
    )


def interpolate_vertex_attributes(
    fragments: Fragments, attributes: torch.Tensor, faces: torch.Tensor
) -> torch.Tensor:
    """Interpolate per-vertex ``attributes [B, V, C]`` to pixels ``[B, C, H, W]`` (zero on background)."""
    corners = faces[fragments.face_index.clamp(min=0)]
    batch_ids = torch.arange(attributes.shape[0], device=attributes.device).view(-1, 1, 1, 1)
    values = attributes[batch_ids, corners]
    return (fragments.bary.unsqueeze(-1) * values).sum(-2).permute(0, 3, 1, 2)


def interpolate_corner_attributes(
    fragments: Fragments, attributes: torch.Tensor, corner_indices: torch.Tensor
) -> torch.Tensor:
    """Interpolate attributes stored per triangle corner (e.g. UVs with seams) to ``[B, C, H, W]``.

    ``attributes [T, C]`` (shared by the batch), ``corner_indices [F, 3]`` indexing into them.
    """
    values = attributes[corner_indices[fragments.face_index.clamp(min=0)]]
    return (fragments.bary.unsqueeze(-1) * values).sum(-2).permute(0, 3, 1, 2)
