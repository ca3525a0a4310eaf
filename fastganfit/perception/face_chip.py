"""Differentiable face chips: similarity-aligned crops sampled with ``affine_grid``/``grid_sample``.

Two alignments are provided, both from iBUG-68 landmarks in pixels ``[B, 68, 2]`` (x, y; the centre of
pixel (row i, column j) is at (x=j, y=i)):

* :class:`DlibChipAligner` reproduces ``dlib.get_face_chip(img, shape5, size, padding)``: dlib's 5-point
  template, its least-squares chip-to-image similarity, its extraction rectangle and its Gaussian image
  pyramid for chips much smaller than the face.  The 5 points are the eye corners and the bottom of the
  nose, as marked by dlib's 5-point predictor, taken from the 68 landmarks (:data:`IBUG68_TO_DLIB5`).
* :class:`ArcFaceChipAligner` is the standard 112x112 ArcFace alignment: a least-squares similarity from
  (eye centres, nose tip, mouth corners) to the ArcFace template.

Gradients flow from the chips to the image pixels (and to the landmarks, except through dlib's discrete
choice of pyramid level).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastganfit.render.constants import constant
from fastganfit.render.precision import float32_region, to_float32

#: dlib's 5-point template on the unit square (x, y), in the order of the 5-point predictor's parts:
#: outer and inner corner of the eye on the image's right, outer and inner corner of the other eye,
#: bottom of the nose.
DLIB_TEMPLATE5: tuple[tuple[float, float], ...] = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)
#: iBUG-68 indices (0-based) of the 5 points of dlib's 5-point predictor, in its part order.
IBUG68_TO_DLIB5: tuple[int, ...] = (45, 42, 36, 39, 33)

#: ArcFace 112x112 template (x, y): eye centres, nose tip, mouth corners (image left first).
ARCFACE_TEMPLATE5: tuple[tuple[float, float], ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
#: dlib's ``pyramid_down<2>::point_down`` offset: one level down maps ``p`` to ``p / 2 - offset``.
PYRAMID_OFFSET = (1.25, 0.75)


def check_inputs(images: Tensor, landmarks: Tensor) -> None:
    """Raise ``ValueError`` unless ``images`` is ``[B, 3, H, W]`` float and ``landmarks`` ``[B, 68, 2]``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected [B, 3, H, W], got shape {list(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images: expected a float tensor in [0, 1], got dtype {images.dtype}")
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"landmarks: expected [B, 68, 2] (iBUG-68, pixels), got shape {list(landmarks.shape)}")
    if landmarks.shape[0] != images.shape[0]:
        raise ValueError(f"landmarks: batch size {landmarks.shape[0]} differs from images' {images.shape[0]}")
    message = "landmarks: contain NaN or infinite values"
    try:  # raises here on CPU; on CUDA asynchronously (no host synchronisation), at the next synchronisation
        torch._assert_async(torch.isfinite(landmarks).all(), message)
    except RuntimeError as error:
        raise ValueError(message) from error


def dlib_five_points(landmarks: Tensor) -> Tensor:
    """The 5 points of dlib's 5-point predictor from iBUG-68 landmarks: ``[B, 68, 2] -> [B, 5, 2]``."""
    return landmarks[:, constant(IBUG68_TO_DLIB5, landmarks, torch.long)]


def arcface_five_points(landmarks: Tensor) -> Tensor:
    """ArcFace's 5 points (eye centres, nose tip, mouth corners): ``[B, 68, 2] -> [B, 5, 2]``."""
    return torch.stack(
        [
            landmarks[:, 36:42].mean(dim=1),
            landmarks[:, 42:48].mean(dim=1),
            landmarks[:, 30],
            landmarks[:, 48],
            landmarks[:, 54],
        ],
        dim=1,
    )


def fit_similarity(source: Tensor, target: Tensor) -> Tensor:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``source`` to ``target``.

    ``source``, ``target``: ``[B, N, 2]`` with ``N >= 2``.  Returns ``[B, 2, 3]`` matrices ``[sR | t]``
    minimising ``sum |sR p + t - q|^2`` (no reflection).
    """
    source_mean = source.mean(dim=1, keepdim=True)
    target_mean = target.mean(dim=1, keepdim=True)
    p = source - source_mean
    q = target - target_mean
    norm = (p * p).sum(dim=(1, 2)).clamp_min(torch.finfo(p.dtype).tiny)
    a = (p * q).sum(dim=(1, 2)) / norm
    b = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(dim=1) / norm
    linear = torch.stack([torch.stack([a, -b], dim=-1), torch.stack([b, a], dim=-1)], dim=-2)
    shift = target_mean[:, 0] - (linear @ source_mean[:, 0, :, None])[..., 0]
    return torch.cat([linear, shift[..., None]], dim=-1)


def invert_affine(matrix: Tensor) -> Tensor:
    """Inverse of affine maps ``[B, 2, 3]`` (``x -> A x + t``), as ``[B, 2, 3]``."""
    linear_inv = torch.linalg.inv(matrix[..., :2])
    return torch.cat([linear_inv, -(linear_inv @ matrix[..., 2:])], dim=-1)


def pixel_to_normalised(width: int, height: int, like: Tensor) -> Tensor:
    """``[3, 3]`` map from pixel coordinates to ``grid_sample``'s (align_corners=False) coordinates."""
    return constant(
        [[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0], [0.0, 0.0, 1.0]], like
    )


def sample_chips(images: Tensor, chip_to_image: Tensor, size: int) -> Tensor:
    """Bilinear chips ``[B, 3, size, size]`` where chip pixel (u, v) shows image point ``chip_to_image @ (u, v, 1)``.

    ``images``: ``[B, 3, H, W]``; ``chip_to_image``: ``[B, 2, 3]`` in pixel coordinates.  Outside the
    image the chip is black.  Sampling positions are geometry: computed in float64, sampled in float32
    (at least) even under autocast.
    """
    height, width = images.shape[-2:]
    batch = images.shape[0]
    mapping = chip_to_image.double()
    full = torch.cat([mapping, constant([0.0, 0.0, 1.0], mapping).expand(batch, 1, 3)], dim=1)
    to_normalised = pixel_to_normalised(width, height, mapping)
    from_normalised = torch.linalg.inv(pixel_to_normalised(size, size, mapping))
    theta = (to_normalised @ full @ from_normalised)[:, :2]
    with float32_region(images.device):
        (images,) = to_float32(images)
        grid = F.affine_grid(theta.to(images.dtype), [batch, 3, size, size], align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def pyramid_down(images: Tensor) -> Tensor:
    """dlib's ``pyramid_down<2>``: 5x5 binomial blur then every other pixel (valid region only).

    ``[B, C, H, W] -> [B, C, (H - 3) // 2, (W - 3) // 2]``; output pixel (i, j) is centred on input
    pixel (2i + 2, 2j + 2).
    """
    channels = images.shape[1]
    taps = constant([1.0, 4.0, 6.0, 4.0, 1.0], images) / 16.0
    kernel = (taps[:, None] * taps[None, :]).expand(channels, 1, 5, 5)
    return F.conv2d(images, kernel, stride=2, groups=channels)


def dlib_chip_geometry(points5: Tensor, size: int, padding: float) -> tuple[Tensor, Tensor, Tensor]:
    """dlib's ``get_face_chip_details`` for 5 points ``[B, 5, 2]``.

    Returns the rotation angle ``[B]``, the centre ``[B, 2]`` and the side length ``[B]`` (dlib's
    ``rect.width()``, i.e. ``right - left + 1``) of the square extraction rectangle in the image.
    """
    template = constant(DLIB_TEMPLATE5, points5)
    chip_points = ((padding + template) / (2 * padding + 1) * size).expand_as(points5)
    chip_to_image = fit_similarity(chip_points, points5)
    a, b = chip_to_image[:, 0, 0], chip_to_image[:, 1, 0]
    angle = torch.atan2(b, a)
    side = size * torch.hypot(a, b)
    centre = chip_to_image[..., :2] @ constant([size / 2, size / 2], points5) + chip_to_image[..., 2]
    return angle, centre, side


def dlib_pyramid_level(side: float, size: int) -> int:
    """dlib's pyramid level for a rectangle of side ``side`` and a ``size`` x ``size`` chip (-1: none)."""
    level = -1
    while (side - 1) / 2 + 1 > size:
        side = (side - 1) / 2 + 1
        level += 1
    return level


def dlib_pyramid_levels(side: Tensor, size: int) -> Tensor:
    """:func:`dlib_pyramid_level` of each side ``[B]`` as a long tensor ``[B]``, without leaving the device.

    Level ``k`` halves ``side - 1`` ``k + 1`` times, so the level is the number of halvings after which
    ``side - 1`` still exceeds ``size - 1``, minus one: ``ceil(log2((side - 1) / (size - 1))) - 2`` clamped
    at -1, corrected by one where rounding put it off by one.
    """
    excess = (side.double() - 1) / (size - 1)
    level = (torch.ceil(torch.log2(excess.clamp_min(1.0))) - 2).clamp_min(-1).long()
    # the while-loop's test at the found level: one more halving must not still exceed the chip
    after = (side.double() - 1) / torch.pow(2.0, (level + 2).double()) + 1
    return torch.where(after > size, level + 1, level)


def usable_pyramid_levels(height: int, width: int) -> int:
    """The deepest pyramid level whose source :class:`DlibChipAligner` would still shrink for an image of
    ``height`` x ``width`` (dlib stops once a side is 8 pixels or less); -1 when none."""
    used, side = -1, min(height, width) - 1  # the phase alignment drops one row and column
    while side > 8:
        side, used = (side - 3) // 2, used + 1
    return used


def dlib_chip_to_level(angle: Tensor, centre: Tensor, side: Tensor, size: int, level: int) -> Tensor:
    """Map ``[B, 2, 3]`` from chip pixels to pixels of pyramid ``level`` (-1: the image itself)."""
    offset = constant(PYRAMID_OFFSET, centre)
    for _ in range(level + 1):
        centre = centre / 2 - offset
        side = (side - 1) / 2 + 1
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], dim=-1), torch.stack([sin, cos], dim=-1)], dim=-2)
    half = (side - 1) / 2
    top_left = centre - (rotation @ torch.stack([half, half], dim=-1)[..., None])[..., 0]
    step = (side - 1) / (size - 1)
    return torch.cat([rotation * step[:, None, None], top_left[..., None]], dim=-1)


def align_pyramid_phase(
    images: Tensor, angle: Tensor, centre: Tensor, side: Tensor, level: int
) -> tuple[Tensor, Tensor]:
    """Shift images ``[B, 3, H, W]`` so that the pyramid's pixel grid matches dlib's (which one is sampled).

    dlib builds its pyramid on the sub-image starting at the rounded top-left corner of the rotated
    extraction square grown by a margin (6 pixels for one level, 14 for two, ...).  Dropping the first
    row and/or column where that corner is odd gives the same pixel grid.  Returns the shifted images
    ``[B, 3, H - 1, W - 1]`` and the centres ``[B, 2]`` in their coordinates.  The per-image choice is a
    selection among the four shifts on the device (no host synchronisation).
    """
    margin = 2.0
    for _ in range(level + 1):
        margin = 2 * margin + 2
    extent = (side - 1) / 2 * (torch.cos(angle).abs() + torch.sin(angle).abs())
    corner = torch.floor(centre - extent[:, None] - margin + 0.5).clamp_min(0)
    parity = corner.detach().long() % 2  # [B, 2] (x, y)
    odd_x, odd_y = (parity[:, k].bool().view(-1, 1, 1, 1) for k in (0, 1))
    height, width = images.shape[-2:]
    rows = {y: images[:, :, y : y + height - 1] for y in (0, 1)}
    shifted = torch.where(
        odd_y,
        torch.where(odd_x, rows[1][..., 1:], rows[1][..., : width - 1]),
        torch.where(odd_x, rows[0][..., 1:], rows[0][..., : width - 1]),
    )
    return shifted, centre - parity.to(centre.dtype)


class DlibChipAligner(nn.Module):
    """``dlib.get_face_chip``-compatible chips: ``(images [B, 3, H, W], landmarks [B, 68, 2]) -> [B, 3, S, S]``.

    ``sync_free``: how images are grouped by pyramid level. ``True``: every level the image size allows is
    computed for the whole batch and each image keeps its own (no host synchronisation; 4-6 times the chip work
    of one level). ``False``: the levels are read to the host and each level's images are sampled once (cheapest
    on a CPU, where reading a value waits for nothing). ``None`` (default): ``True`` for images off the CPU.
    """

    def __init__(self, size: int = 150, padding: float = 0.25, sync_free: bool | None = None) -> None:
        super().__init__()
        if size < 2 or padding < 0:
            raise ValueError(f"size must be >= 2 and padding >= 0, got size={size}, padding={padding}")
        self.size = size
        self.padding = padding
        self.sync_free = sync_free

    def chip_to_image(self, landmarks: Tensor) -> Tensor:
        """``[B, 68, 2] -> [B, 2, 3]`` map from chip pixels to image pixels (without pyramid)."""
        angle, centre, side = dlib_chip_geometry(dlib_five_points(landmarks), self.size, self.padding)
        return dlib_chip_to_level(angle, centre, side, self.size, -1)

    def forward(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """Chips ``[B, 3, size, size]`` from images ``[B, 3, H, W]`` and iBUG-68 landmarks ``[B, 68, 2]``.

        Each image's pyramid level depends on its face size (grouped as ``sync_free`` says). A face needing
        more levels than the image has (over 30 times the chip on a 112 px image) is sampled from the deepest
        with that level's pixel-grid phase.
        """
        check_inputs(images, landmarks)
        landmarks = landmarks.to(images.dtype)
        angle, centre, side = dlib_chip_geometry(dlib_five_points(landmarks), self.size, self.padding)
        deepest = usable_pyramid_levels(*images.shape[-2:])
        levels = dlib_pyramid_levels(side.detach(), self.size).clamp_max(deepest)
        sync_free = images.device.type != "cpu" if self.sync_free is None else self.sync_free
        if not sync_free:
            chips = images.new_zeros(images.shape[0], 3, self.size, self.size)
            for level in levels.unique().tolist():
                index = (levels == level).nonzero().squeeze(1)
                group = self._chips_at_level(images[index], angle[index], centre[index], side[index], level)
                chips = chips.index_copy(0, index, group)
            return chips
        chips = None
        for level in range(-1, deepest + 1):
            candidate = self._chips_at_level(images, angle, centre, side, level)
            chips = candidate if chips is None else torch.where((levels == level).view(-1, 1, 1, 1), candidate, chips)
        return chips

    def _chips_at_level(self, images: Tensor, angle: Tensor, centre: Tensor, side: Tensor, level: int) -> Tensor:
        """Chips ``[B, 3, size, size]`` of all images sampled from pyramid ``level`` (-1: the image itself)."""
        source, origin = images, centre
        if level >= 0:
            source, origin = align_pyramid_phase(source, angle, origin, side, level)
        used = -1
        while used < level and min(source.shape[-2:]) > 8:
            source, used = pyramid_down(source), used + 1
        mapping = dlib_chip_to_level(angle, origin, side, self.size, used)
        return sample_chips(source, mapping, self.size)


class ArcFaceChipAligner(nn.Module):
    """Standard ArcFace alignment: ``(images [B, 3, H, W], landmarks [B, 68, 2]) -> [B, 3, 112, 112]``."""

    size = 112

    def chip_to_image(self, landmarks: Tensor) -> Tensor:
        """``[B, 68, 2] -> [B, 2, 3]`` map from chip pixels to image pixels."""
        points = arcface_five_points(landmarks)
        template = constant(ARCFACE_TEMPLATE5, points).expand_as(points)
        return invert_affine(fit_similarity(points, template))

    def forward(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """Chips ``[B, 3, 112, 112]`` from images ``[B, 3, H, W]`` and iBUG-68 landmarks ``[B, 68, 2]``."""
        check_inputs(images, landmarks)
        return sample_chips(images, self.chip_to_image(landmarks.to(images.dtype)), self.size)


__all__ = [
    "ARCFACE_TEMPLATE5",
    "DLIB_TEMPLATE5",
    "IBUG68_TO_DLIB5",
    "ArcFaceChipAligner",
    "DlibChipAligner",
    "arcface_five_points",
    "dlib_five_points",
    "fit_similarity",
    "pyramid_down",
    "sample_chips",
]
