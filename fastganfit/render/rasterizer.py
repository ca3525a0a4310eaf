"""Visibility rasterisers: which triangle covers each pixel centre (hard z-buffer, no gradients).

Both backends take screen-space vertices ``[B, V, 3]`` (pixel x, pixel y, depth in mm, pixel centres
at integer coordinates, see ``facemodel/camera.py``) and return the index of the nearest triangle
covering each pixel centre, ``[B, H, W]`` with -1 where nothing is drawn. Depth for the z-test is
interpolated linearly in screen space in both. Gradients do not flow through visibility; they come
from the barycentric interpolation in ``interpolate.py``, shared by both backends.
"""

from __future__ import annotations

from typing import Protocol

import torch

MIN_DEPTH_MM = 1e-3


class Rasterizer(Protocol):
    """A visibility backend: ``(screen [B,V,3], faces [F,3], (H, W)) -> face index [B,H,W]``."""

    def __call__(self, screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor: ...


@torch.no_grad()
def rasterize_torch(screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Vectorised bounding-box z-buffer in plain PyTorch (fast on CPU).

    Every triangle is expanded into the pixel centres of its bounding box; an edge-function test
    keeps the covered ones and a scatter-min over depth resolves occlusion. Memory grows with the
    total bounding-box area, so images are processed one at a time.
    """
    return torch.stack([_rasterize_one(vertices, faces, image_size) for vertices in screen])


def _rasterize_one(vertices: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    height, width = image_size
    device = vertices.device
    tri = vertices[faces].float()
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    x_lo = x.min(1).values.ceil().clamp(min=0)
    x_hi = x.max(1).values.floor().clamp(max=width - 1)
    y_lo = y.min(1).values.ceil().clamp(min=0)
    y_hi = y.max(1).values.floor().clamp(max=height - 1)
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    drawable = (x_hi >= x_lo) & (y_hi >= y_lo) & (z.min(1).values > MIN_DEPTH_MM) & (area.abs() > 1e-12)
    box_w = (x_hi - x_lo + 1).long()
    count = torch.where(drawable, box_w * (y_hi - y_lo + 1).long(), torch.zeros_like(box_w))

    face_of = torch.repeat_interleave(torch.arange(faces.shape[0], device=device), count)
    first = torch.cumsum(count, 0) - count
    offset = torch.arange(face_of.numel(), device=device) - first[face_of]
    px = x_lo[face_of] + (offset % box_w[face_of]).float()
    py = y_lo[face_of] + torch.div(offset, box_w[face_of], rounding_mode="floor").float()

    xf, yf, zf = x[face_of], y[face_of], z[face_of]
    w0 = (xf[:, 1] - px) * (yf[:, 2] - py) - (xf[:, 2] - px) * (yf[:, 1] - py)
    w1 = (xf[:, 2] - px) * (yf[:, 0] - py) - (xf[:, 0] - px) * (yf[:, 2] - py)
    w2 = (xf[:, 0] - px) * (yf[:, 1] - py) - (xf[:, 1] - px) * (yf[:, 0] - py)
    signed_area = area[face_of]
    b0, b1, b2 = w0 / signed_area, w1 / signed_area, w2 / signed_area
    inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
    depth = b0 * zf[:, 0] + b1 * zf[:, 1] + b2 * zf[:, 2]

    pixel = (py * width + px).long()[inside]
    depth, face_of = depth[inside], face_of[inside]
    nearest = torch.full((height * width,), float("inf"), dtype=depth.dtype, device=device)
    nearest.scatter_reduce_(0, pixel, depth, reduce="amin")
    winner = depth <= nearest[pixel]
    face_index = torch.full((height * width,), -1, dtype=torch.long, device=device)
    face_index.scatter_reduce_(0, pixel[winner], face_of[winner], reduce="amax")
    return face_index.view(height, width)


@torch.no_grad()
def rasterize_pytorch3d(screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """pytorch3d's rasteriser (fast on CUDA; about 3 s per 224x224 image of 20k triangles on CPU)."""
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    height, width = image_size
    batch = screen.shape[0]
    short_side = min(height, width)
    x_ndc = (1.0 - (2.0 * screen[..., 0] + 1.0) / width) * (width / short_side)
    y_ndc = (1.0 - (2.0 * screen[..., 1] + 1.0) / height) * (height / short_side)
    verts = torch.stack([x_ndc, y_ndc, screen[..., 2]], dim=-1).float()
    meshes = Meshes(verts=verts, faces=faces.unsqueeze(0).expand(batch, -1, -1))
    pix_to_face, _, _, _ = rasterize_meshes(
        meshes,
        image_size=(height, width),
        blur_radius=0.0,
        faces_per_pixel=1,
        bin_size=0 if screen.device.type == "cpu" else None,
        perspective_correct=False,
        cull_backfaces=False,
    )
    pix_to_face = pix_to_face[..., 0]
    offsets = (torch.arange(batch, device=screen.device) * faces.shape[0]).view(-1, 1, 1)
    return torch.where(pix_to_face >= 0, pix_to_face - offsets, pix_to_face)


BACKENDS: dict[str, Rasterizer] = {"torch": rasterize_torch, "pytorch3d": rasterize_pytorch3d}


def select_backend(name: str, device: torch.device) -> Rasterizer:
    """The rasteriser for ``name`` in ``auto|torch|pytorch3d``; ``auto`` = pytorch3d on CUDA, torch on CPU."""
    if name == "auto":
        name = "pytorch3d" if device.type == "cuda" else "torch"
    if name not in BACKENDS:
        raise ValueError(f"renderer backend {name!r} is unknown; choose one of auto, {', '.join(BACKENDS)}")
    return BACKENDS[name]
