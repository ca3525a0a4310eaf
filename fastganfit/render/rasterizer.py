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

    Every triangle of every image is expanded into the pixel centres of its bounding box; an edge-function
    test and a scatter-min over depth resolve coverage and occlusion for the whole batch at once. Memory
    grows with the total bounding-box area. One host synchronisation per call remains (the length of the
    candidate list, which ``repeat_interleave`` needs); the pytorch3d backend, the default on CUDA, has none.
    """
    batch = screen.shape[0]
    height, width = image_size
    device = screen.device
    tri = screen[:, faces].float().flatten(0, 1)  # [B*F, 3, 3]
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    x_lo = x.min(1).values.ceil().clamp(min=0)
    x_hi = x.max(1).values.floor().clamp(max=width - 1)
    y_lo = y.min(1).values.ceil().clamp(min=0)
    y_hi = y.max(1).values.floor().clamp(max=height - 1)
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    drawable = (x_hi >= x_lo) & (y_hi >= y_lo) & (z.min(1).values > MIN_DEPTH_MM) & (area.abs() > 1e-12)
    box_w = (x_hi - x_lo + 1).long()
    count = torch.where(drawable, box_w * (y_hi - y_lo + 1).long(), torch.zeros_like(box_w))

    face_of = torch.repeat_interleave(torch.arange(tri.shape[0], device=device), count)  # the one sync
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
    # candidates outside their triangle get infinite depth and so never win (no boolean-mask compaction)
    depth = torch.where(inside, b0 * zf[:, 0] + b1 * zf[:, 1] + b2 * zf[:, 2], float("inf"))
    image_of = torch.div(face_of, faces.shape[0], rounding_mode="floor")
    pixel = image_of * (height * width) + (py * width + px).long()
    nearest = torch.full((batch * height * width,), float("inf"), dtype=depth.dtype, device=device)
    nearest.scatter_reduce_(0, pixel, depth, reduce="amin")
    winner = inside & (depth <= nearest[pixel])
    face_in_image = torch.where(winner, face_of - image_of * faces.shape[0], -1)
    face_index = torch.full((batch * height * width,), -1, dtype=torch.long, device=device)
    face_index.scatter_reduce_(0, pixel, face_in_image, reduce="amax")
    return face_index.view(batch, height, width)


@torch.no_grad()
def rasterize_pytorch3d(screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """pytorch3d's rasteriser (fast on CUDA; about 3 s per 224x224 image of 20k triangles on CPU).

    Calls pytorch3d's compiled kernel with the packed per-face vertices built here: going through
    ``Meshes`` and ``rasterize_meshes`` costs four host synchronisations per call (measured with
    ``tests/host_sync.py``), the kernel none.
    """
    from pytorch3d import _C

    height, width = image_size
    batch, num_faces = screen.shape[0], faces.shape[0]
    short_side = min(height, width)
    x_ndc = (1.0 - (2.0 * screen[..., 0] + 1.0) / width) * (width / short_side)
    y_ndc = (1.0 - (2.0 * screen[..., 1] + 1.0) / height) * (height / short_side)
    verts = torch.stack([x_ndc, y_ndc, screen[..., 2]], dim=-1).float()
    face_verts = verts[:, faces].flatten(0, 1).contiguous()  # [B*F, 3, 3]
    device = screen.device
    first_face = torch.arange(batch, device=device) * num_faces
    faces_per_mesh = torch.full((batch,), num_faces, device=device, dtype=torch.long)
    no_neighbour = torch.full((batch * num_faces,), -1, device=device, dtype=torch.long)
    pix_to_face, _, _, _ = _C.rasterize_meshes(
        face_verts,
        first_face,
        faces_per_mesh,
        no_neighbour,
        (height, width),
        0.0,  # blur radius
        1,  # faces per pixel
        _bin_size(max(height, width), device),
        max(10000, num_faces // 5),  # faces per bin and mesh in the coarse pass
        False,  # perspective-correct barycentrics (not used: ours come from interpolate.py)
        False,  # clip barycentrics
        False,  # cull back faces
    )
    pix_to_face = pix_to_face[..., 0]
    return torch.where(pix_to_face >= 0, pix_to_face - first_face.view(-1, 1, 1), pix_to_face)


def _bin_size(image_side: int, device: torch.device) -> int:
    """Coarse-to-fine bin side for pytorch3d on CUDA (0: the naive kernel, the only one on CPU): about 16 bins
    per side, at least 8 pixels."""
    if device.type != "cuda":
        return 0
    return max(8, 1 << max(image_side - 1, 1).bit_length() >> 4)


BACKENDS: dict[str, Rasterizer] = {"torch": rasterize_torch, "pytorch3d": rasterize_pytorch3d}


def select_backend(name: str, device: torch.device) -> Rasterizer:
    """The rasteriser for ``name`` in ``auto|torch|pytorch3d``; ``auto`` = pytorch3d on CUDA, torch on CPU."""
    if name == "auto":
        name = "pytorch3d" if device.type == "cuda" else "torch"
    if name not in BACKENDS:
        raise ValueError(f"renderer backend {name!r} is unknown; choose one of auto, {', '.join(BACKENDS)}")
    return BACKENDS[name]
