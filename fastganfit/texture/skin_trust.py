"""Which photo-texture texels show the face's own skin: a per-face robust colour model of the skin, learnt from the
front of the face, against which every skin texel is tested, so that hair (on the forehead, the temples, the scalp),
background (where the fitted silhouette overhangs the face), glasses frames and specular highlights are not taken
from the photo.

Per face, from the confidently seen skin texels of the front of the face (forehead, cheeks, nose, chin)::

    features  f = (log lightness, log r/g, log b/g)          lightness: the channels' mean
    centre    m = median of f over the cheeks                spread s = max(1.4826 MAD, floor) per feature
    distance  d = || (f - m) / s ||                          trust = 1 - smoothstep(d, low, high)

Only skin texels are tested (the procedural skin region's weight): lips, brows and eyes keep their confidence, as
their colours differ from the skin's by nature. The medians ignore up to half of that skin being something else
(hair over the forehead, glasses).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Smallest spreads (per feature: log lightness, log r/g, log b/g): skin that is evenly lit and coloured still
#: varies this much across a face (shading the light model misses, blush, stubble).
SPREAD_FLOOR = (0.12, 0.1, 0.1)
#: Normalised distances between which a skin texel's trust falls from 1 to 0.
TRUST_LOW, TRUST_HIGH = 3.0, 4.5
#: Texels the skin colour is learnt from: front skin whose weight is above this, seen with confidence above
#: :data:`CORE_CONFIDENCE`.
CORE_WEIGHT, CORE_CONFIDENCE = 0.5, 0.5
MIN_CORE_TEXELS = 16
#: Texels whose procedural skin weight is above this are tested (the soft edges of lips, brows and eyes are not).
SKIN_WEIGHT = 0.5
EPSILON = 1e-3


def smooth_ramp(values: Tensor, low: float, high: float) -> Tensor:
    """0 below ``low``, 1 above ``high``, a smoothstep between (same shape as ``values``)."""
    t = ((values - low) / (high - low)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def colour_features(texture: Tensor) -> Tensor:
    """``[B, 3, R, R]`` features (log lightness, log r/g, log b/g) of a texture ``[B, 3, R, R]`` in [0, 1]."""
    rgb = texture.clamp(min=0.0) + EPSILON
    lightness = rgb.mean(1, keepdim=True)
    red, green, blue = rgb.unbind(1)
    return torch.cat([lightness.log(), (red / green).log()[:, None], (blue / green).log()[:, None]], dim=1)


class SkinTrust(nn.Module):
    """Trust ``[B, 1, R, R]`` in [0, 1] of photo-texture texels (1: the face's skin colour, or not a skin texel;
    0: another colour on a skin texel). ``skin [1, 1, R, R]``: the procedural skin weight (texels above
    :data:`SKIN_WEIGHT` are tested); ``core [1, 1, R, R]`` bool: the texels the skin colour is learnt from (the
    front skin)."""

    def __init__(self, skin: Tensor, core: Tensor, low: float = TRUST_LOW, high: float = TRUST_HIGH) -> None:
        super().__init__()
        if not 0.0 < low < high:
            raise ValueError(f"skin trust: need 0 < low < high, got {low}, {high}")
        if skin.shape != core.shape or skin.ndim != 4 or skin.shape[:2] != (1, 1):
            raise ValueError(f"skin trust: skin and core must be [1, 1, R, R], got {list(skin.shape)}, "
                             f"{list(core.shape)}")  # fmt: skip
        self.low, self.high = float(low), float(high)
        self.register_buffer("skin", (skin > SKIN_WEIGHT).float(), persistent=False)
        self.register_buffer("core", core.bool(), persistent=False)
        self.register_buffer("floor", torch.tensor(SPREAD_FLOOR).view(1, 3, 1), persistent=False)

    @classmethod
    def from_regions(cls, masks: Tensor, front: Tensor) -> SkinTrust:
        """From procedural region masks ``[5, 1, R, R]`` (skin, lips, brows, eyes, cheeks) and the front of the face
        ``front [1, 1, R, R]`` (:func:`~fastganfit.texture.procedural.front_texels`)."""
        skin = masks[0:1]
        return cls(skin, (skin > CORE_WEIGHT) & (front > 0.5))

    def distance(self, albedo: Tensor, confidence: Tensor) -> Tensor:
        """Normalised colour distance ``[B, 1, R, R]`` of every texel from the face's skin colour; a face whose
        cheeks are hardly seen (fewer than :data:`MIN_CORE_TEXELS` confident texels) gets distance 0 everywhere."""
        features = colour_features(albedo).flatten(2)
        used = (self.core.flatten(2) & (confidence.flatten(2) > CORE_CONFIDENCE)).expand(-1, 3, -1)
        masked = features.masked_fill(~used, float("nan"))
        centre = masked.nanmedian(-1, keepdim=True).values
        spread = (1.4826 * (masked - centre).abs().nanmedian(-1, keepdim=True).values).nan_to_num(0.0)
        spread = torch.maximum(spread, self.floor)
        distance = ((features - centre.nan_to_num(0.0)) / spread).norm(dim=1, keepdim=True)
        enough = used[:, :1].sum(-1, keepdim=True) >= MIN_CORE_TEXELS
        return (distance * enough).view_as(confidence)

    def forward(self, albedo: Tensor, confidence: Tensor) -> Tensor:
        """Trust ``[B, 1, R, R]`` of ``albedo [B, 3, R, R]`` given its ``confidence [B, 1, R, R]`` (no gradient)."""
        with torch.no_grad():
            return 1.0 - self.skin * smooth_ramp(self.distance(albedo, confidence), self.low, self.high)
