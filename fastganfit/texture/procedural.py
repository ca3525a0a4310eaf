"""ProceduralTexture: a small differentiable parametric UV texture painted from the model's UV layout.

Skin tone, lip, brow and eye-region colours, cheek redness and smooth low-frequency variation are
painted into UV space using region masks derived from the 68 landmarks on the mean face. It is the
source of synthetic UV data (to train the default texture GAN) and of plausible synthetic faces.
Like every texture model in fastganfit it maps a zero-centred, unit-variance latent to a texture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.texture.uv_layout import UVLayout, rasterize_uv_layout

# iBUG-68 landmark groups.
OUTER_LIPS = list(range(48, 60))
RIGHT_BROW, LEFT_BROW = list(range(17, 22)), list(range(22, 27))
RIGHT_EYE, LEFT_EYE = list(range(36, 42)), list(range(42, 48))
REGION_NAMES = ("skin", "lips", "brows", "eyes", "cheeks")

# Latent layout: name -> number of entries. Colours are linear in the latent (mean + std * latent).
VARIATION_GRID = 4
LATENT_GROUPS = {"skin": 3, "lips": 3, "brows": 3, "eyes": 1, "cheeks": 1, "variation": 2 * VARIATION_GRID**2}
SKIN_MEAN = (0.70, 0.52, 0.42)
SKIN_AXES = ((0.11, 0.10, 0.085), (0.025, 0.0, -0.02), (0.0, 0.012, -0.012))  # tone, warmth, hue
LIP_RATIO_MEAN, LIP_RATIO_STD = (0.86, 0.58, 0.60), 0.03
BROW_MEAN = (0.26, 0.19, 0.15)
BROW_AXES = ((0.08, 0.07, 0.06), (0.03, 0.01, -0.02), (0.0, 0.01, -0.01))  # lightness, warmth, hue
EYE_SHADE_MEAN, EYE_SHADE_STD = 0.86, 0.03
CHEEK_MEAN, CHEEK_STD = 0.05, 0.025
# Smooth variation: a luminance grid and a redness grid, upsampled bicubically.
LUMINANCE_STD, REDNESS_STD = 0.035, 0.015


def _segment_distance(points: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Distance ``[N]`` from ``points [N, 2]`` to the nearest of the segments ``starts/ends [S, 2]``."""
    direction = ends - starts
    t = ((points[:, None] - starts[None]) * direction[None]).sum(-1) / direction.square().sum(-1).clamp(min=1e-9)
    nearest = starts[None] + t.clamp(0, 1)[..., None] * direction[None]
    return (points[:, None] - nearest).norm(dim=-1).min(dim=1).values


def _inside_polygon(points: torch.Tensor, polygon: torch.Tensor) -> torch.Tensor:
    """Even-odd test: ``[N]`` bool, whether ``points [N, 2]`` lie inside the closed ``polygon [P, 2]``."""
    a, b = polygon, polygon.roll(-1, dims=0)
    x, y = points[:, 0:1], points[:, 1:2]
    crosses = (a[None, :, 1] > y) != (b[None, :, 1] > y)
    x_cross = a[None, :, 0] + (y - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / (
        b[None, :, 1] - a[None, :, 1] + 1e-12
    )
    return ((crosses & (x < x_cross)).sum(1) % 2) == 1


FRONT_DEPTH_MM = 35.0  # the front of the face: texels less than this behind the landmarks' mean depth


def front_texels(layout: UVLayout, landmarks: torch.Tensor) -> torch.Tensor:
    """``[R * R]`` float: 1 where a covered texel lies on the front of the face (less than ``FRONT_DEPTH_MM``
    behind the mean depth of the mean-face ``landmarks [68, 3]``), else 0."""
    depth = layout.positions.reshape(3, -1)[2]
    return (depth > landmarks[:, 2].mean() - FRONT_DEPTH_MM).float() * layout.coverage.reshape(-1)


def region_masks(layout: UVLayout, landmarks: torch.Tensor) -> torch.Tensor:
    """Soft UV masks ``[5, 1, R, R]`` for skin, lips, brows, eyes, cheeks from mean-face ``landmarks [68, 3]``.

    Regions are defined on the front of the face (frontal x/y distances to landmark curves, in mm);
    skin is every covered texel outside the other regions.
    """
    resolution = layout.resolution
    xyz = layout.positions.reshape(3, -1).T
    xy = xyz[:, :2]
    front = front_texels(layout, landmarks)
    lm = landmarks[:, :2]

    def soft(distance: torch.Tensor, width: float) -> torch.Tensor:
        return torch.sigmoid(-distance / width)

    lip_polygon = lm[OUTER_LIPS]
    lip_edge = _segment_distance(xy, lip_polygon, lip_polygon.roll(-1, dims=0))
    lip_sdf = torch.where(_inside_polygon(xy, lip_polygon), -lip_edge, lip_edge)
    lips = soft(lip_sdf, 0.8)

    brows = torch.zeros_like(lips)
    eyes = torch.zeros_like(lips)
    cheeks = torch.zeros_like(lips)
    for brow, eye, jaw, nose in ((RIGHT_BROW, RIGHT_EYE, 3, 31), (LEFT_BROW, LEFT_EYE, 13, 35)):
        curve = lm[brow] + lm.new_tensor([0.0, 3.0])
        brows = torch.maximum(brows, soft(_segment_distance(xy, curve[:-1], curve[1:]) - 3.5, 0.8))
        ring = lm[eye]
        eye_edge = _segment_distance(xy, ring, ring.roll(-1, dims=0))
        eyes = torch.maximum(eyes, soft(eye_edge - 7.0, 2.0))
        cheek_centre = 0.55 * lm[jaw] + 0.45 * lm[nose] + lm.new_tensor([0.0, 12.0])
        cheeks = torch.maximum(cheeks, torch.exp(-(xy - cheek_centre).square().sum(-1) / (2 * 16.0**2)))

    stacked = torch.stack([lips, brows, eyes, cheeks]) * front
    skin = (1.0 - stacked[:3].amax(0)).clamp(min=0)
    masks = torch.cat([skin[None], stacked]) * layout.coverage.reshape(1, -1)
    return masks.reshape(len(REGION_NAMES), 1, resolution, resolution)


class ProceduralTexture(nn.Module):
    """Parametric UV texture ``[B, 3, R, R]`` in [0, 1] from a latent ``[B, 43]`` ~ N(0, 1).

    Latent groups (in order): skin colour (3, along tone / warmth / hue axes), lip colour as a ratio of
    skin (3), brow colour (3, lightness / warmth / hue), eye-region shading (1), cheek redness (1), and
    4x4 grids of smooth low-frequency luminance and redness variation (32). Zero latent: an average
    skin tone with average features.
    """

    def __init__(self, model: MorphableModel, resolution: int = 128) -> None:
        super().__init__()
        layout = rasterize_uv_layout(model, resolution)
        landmarks = model.mean[model.landmark_indices]
        self.resolution = resolution
        self.latent_dim = sum(LATENT_GROUPS.values())
        self.register_buffer("masks", region_masks(layout, landmarks))
        front = front_texels(layout, landmarks).reshape(1, 1, resolution, resolution)
        self.register_buffer("front", front, persistent=False)
        self.register_buffer("skin_mean", torch.tensor(SKIN_MEAN).view(1, 3))
        self.register_buffer("skin_axes", torch.tensor(SKIN_AXES))
        self.register_buffer("brow_axes", torch.tensor(BROW_AXES))
        self.register_buffer("variation_axes", torch.tensor([[LUMINANCE_STD] * 3, [REDNESS_STD, 0.0, -REDNESS_STD]]))

    @classmethod
    def for_ict(cls, resolution: int = 128) -> ProceduralTexture:
        """A procedural texture over the embedded ICT model's UV layout."""
        return cls(MorphableModel.ict(), resolution)

    def split_latent(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        """The latent ``[B, 43]`` as its named groups."""
        if latent.ndim != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"procedural texture latent: expected [B, {self.latent_dim}], got {list(latent.shape)}")
        return dict(zip(LATENT_GROUPS, latent.split(list(LATENT_GROUPS.values()), dim=1), strict=True))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """UV texture ``[B, 3, R, R]`` in [0, 1] for ``latent [B, 43]``."""
        groups = self.split_latent(latent)
        skin = self.skin_mean + groups["skin"] @ self.skin_axes
        lips = skin * (latent.new_tensor(LIP_RATIO_MEAN) + LIP_RATIO_STD * groups["lips"])
        brows = latent.new_tensor(BROW_MEAN) + groups["brows"] @ self.brow_axes
        eye_shade = EYE_SHADE_MEAN + EYE_SHADE_STD * groups["eyes"]
        redness = CHEEK_MEAN + CHEEK_STD * groups["cheeks"]
        grid = groups["variation"].view(-1, 2, VARIATION_GRID, VARIATION_GRID)
        grid = torch.einsum("bkhw,kc->bchw", grid, self.variation_axes)
        variation = F.interpolate(grid, size=self.resolution, mode="bicubic", align_corners=True)

        _, lip_mask, brow_mask, eye_mask, cheek_mask = self.masks.unsqueeze(1).unbind(0)
        texture = skin[:, :, None, None] + variation
        flush = latent.new_tensor([1.0, -0.4, -0.4]).view(1, 3, 1, 1)
        texture = texture + cheek_mask * redness[:, :, None, None] * flush
        texture = texture * (1.0 - eye_mask * (1.0 - eye_shade[:, :, None, None]))
        texture = texture * (1.0 - lip_mask) + lip_mask * (lips[:, :, None, None] + variation)
        texture = texture * (1.0 - 0.85 * brow_mask) + 0.85 * brow_mask * brows[:, :, None, None]
        return texture.clamp(0.0, 1.0)

    def zero_latent(self, batch_size: int) -> torch.Tensor:
        """The average texture's latent ``[B, 43]`` (zeros)."""
        return self.masks.new_zeros(batch_size, self.latent_dim)

    def latent_regulariser(self, latent: torch.Tensor) -> torch.Tensor:
        """Negative log N(0, 1) prior up to a constant, ``[B]``: ``0.5 * ||latent||^2``."""
        return 0.5 * latent.square().sum(1)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random textures ``[B, 3, R, R]`` (latent ~ N(0, 1))."""
        latent = torch.randn(batch_size, self.latent_dim, generator=generator).to(self.masks.device)
        return self(latent)
