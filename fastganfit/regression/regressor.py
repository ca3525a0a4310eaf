"""The Fast-GANFit regressor: identity-network activations + landmark heatmaps (+ landmark features) -> FaceParams.

Two branches and an optional landmark feature vector, fused by an MLP, and one linear head per parameter group::

    activations[j] [B, C_j, h_j, w_j] -> IdentityAdapter_j (1x1 conv, GroupNorm, ReLU, adaptive avg pool
                                         to p x p, flatten)                       -> [B, A_j p^2]
    heatmaps [B, 68, 64, 64]           -> timm backbone (in_chans=68, num_classes=0) -> [B, N]
    landmark features [B, F] (optional, fed as they are)                              -> [B, F]
    concat -> Linear(hidden) -> ReLU -> Linear(feature_dim) -> ReLU -> head_g (Linear) * scale_g -> group g
    face colour [B, 6] (optional, colour_input: skin colour's mean and spread) -> colour_head_g (Linear) * scale_g,
                                                                   added to groups texture and light
    landmark features, standardised (optional, landmark_heads)      -> landmark_head_g (Linear) * scale_g,
                                                                   added to groups shape and expression
    identity embedding [B, D], standardised (optional, identity_head) -> identity_head (Linear) * scale,
                                                                   added to group shape

Heads start at exactly zero (weights and biases), so an untrained regressor outputs all-zero FaceParams: the
mean face (FastGANFitModule poses it with the landmark camera, the camera head predicting a residual).

Why a colour input: the identity adapters normalise each activation per sample (GroupNorm) and the heatmaps and
landmark features carry no colour at all, so without it the texture and light heads see hardly anything of the
skin's colour and predict nearly the same texture for everyone (docs/regressor_and_losses.md has the measurement).
The colour heads are linear (skin tone and light colour are close to linear in the face's mean colour) and start
at zero, like the others.

Why landmark heads: shape and expression are close to linear in the landmark features, and that linear map is
known before training (:mod:`fastganfit.regression.landmark_prior` fits it on the face model's prior;
:meth:`Regressor.set_landmark_map` loads it). Through the fusion MLP Adam would have to rediscover it from zero.

Why an identity head: the landmarks fix the face's outline as one photo shows it, and they move with pose and the
detector, so two photos of one person get shapes hardly closer than two people's. The identity network's embedding
is what stays the same from photo to photo of a person; a linear map from it to the shape coefficients, fitted
where the true shape is known (:mod:`fastganfit.regression.identity_prior`, as MICA does with scans;
:meth:`Regressor.set_identity_map` loads it), makes the shape follow the person (docs/accuracy.md, section 6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastganfit.params import GROUPS, FaceParams, ParamSizes

#: Skin sample points: pairs of iBUG-68 landmarks and the weight of the first; each point lies between the two
#: (cheeks between the jaw and the nose, the nose bridge and tip, the chin below the lower lip).
SKIN_POINTS: tuple[tuple[int, int, float], ...] = (
    (2, 31, 0.5), (3, 31, 0.5), (4, 48, 0.5), (14, 35, 0.5), (13, 35, 0.5), (12, 54, 0.5),
    (1, 39, 0.4), (15, 42, 0.4), (28, 29, 0.5), (29, 30, 0.5), (8, 57, 0.5), (7, 58, 0.5), (9, 56, 0.5),
)
#: Groups with a landmark head (``landmark_heads``).
LANDMARK_GROUPS = ("shape", "expression")
#: Width of :func:`face_colour_features`.
COLOUR_FEATURES = 6
#: Groups with a colour head (``colour_input``).
COLOUR_GROUPS = ("texture", "light")
#: The colour heads see ``(colour - COLOUR_REFERENCE) * COLOUR_GAIN``: Adam moves each weight by about the learning
#: rate per step whatever its input's size, so with six inputs of a few hundredths (the colour features' spread)
#: the heads would need thousands of steps at the demo's 1e-4 to move the texture latent by one unit; a gain of 20
#: gives inputs of order 1 (as the 256 fused features are), so they learn in a few hundred steps.
COLOUR_REFERENCE = (0.5, 0.5, 0.5, 0.05, 0.05, 0.05)
COLOUR_GAIN = 20.0


def face_colour_features(image: Tensor, landmarks: Tensor) -> Tensor:
    """``[B, 6]``: the mean and the standard deviation over :data:`SKIN_POINTS` of the colour of ``image [B, 3, H, W]``
    (bilinear samples at points between its ``landmarks [B, 68, 2]``, pixels): what the skin's colour looks like
    in the photo, light and albedo together."""
    if image.ndim != 4 or image.shape[1] != 3 or landmarks.shape != (image.shape[0], 68, 2):
        raise ValueError(f"face_colour_features: expected image [B, 3, H, W] and landmarks [B, 68, 2], got "
                         f"{list(image.shape)} and {list(landmarks.shape)}")
    first, second, weight = (landmarks.new_tensor(column) for column in zip(*SKIN_POINTS, strict=True))
    points = landmarks[:, first.long()] * weight[:, None] + landmarks[:, second.long()] * (1 - weight[:, None])
    size = landmarks.new_tensor([image.shape[-1], image.shape[-2]])
    grid = (2 * points + 1) / size - 1  # pixel centres at integers, align_corners=False
    samples = F.grid_sample(image, grid[:, None], mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
    return torch.cat([samples.mean(dim=2), samples.std(dim=2)], dim=1)


class IdentityAdapter(nn.Module):
    """One identity layer's activation ``[B, C, h, w]`` -> feature ``[B, out_channels * pool_size**2]``.

    1x1 convolution to ``out_channels``, GroupNorm with one group (per-sample normalisation: layers of very
    different activation scales contribute alike, at any batch size), ReLU, adaptive average pooling to
    ``pool_size x pool_size`` and flattening.
    """

    def __init__(self, in_channels: int, out_channels: int = 128, pool_size: int = 1) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1 or pool_size < 1:
            raise ValueError(
                f"IdentityAdapter: in_channels, out_channels and pool_size must be positive, got "
                f"{in_channels}, {out_channels}, {pool_size}"
            )
        self.in_channels = in_channels
        self.out_features = out_channels * pool_size**2
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1),
            nn.GroupNorm(1, out_channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(pool_size),
            nn.Flatten(1),
        )

    def forward(self, activation: Tensor) -> Tensor:
        """``[B, C, h, w] -> [B, out_features]``."""
        if activation.ndim != 4 or activation.shape[1] != self.in_channels:
            raise ValueError(f"IdentityAdapter: expected [B, {self.in_channels}, h, w], got {list(activation.shape)}")
        return self.layers(activation)


def create_heatmap_backbone(
    name: str, in_channels: int = 68, weights: str | Path | None = None, **kwargs: object
) -> nn.Module:
    """A timm model ``[B, in_channels, H, W] -> [B, num_features]`` (``num_classes=0``: global-pooled features).

    Never downloads: without ``weights`` it is randomly initialised (``pretrained=False``); with a local
    timm weights file (``.pth`` / ``.safetensors`` of the 3-channel model) those are loaded and timm adapts
    the first convolution to ``in_channels`` and drops the classifier. ``kwargs`` go to ``timm.create_model``.
    """
    if weights is None:
        return timm.create_model(name, pretrained=False, in_chans=in_channels, num_classes=0, **kwargs)
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"heatmap backbone weights {path} do not exist: give a local timm weights file for {name!r} "
            f"(e.g. saved with torch.save(timm.create_model({name!r}, pretrained=True).state_dict(), path) on a "
            f"machine with internet access), or weights=None to start from random weights"
        )
    overlay = {"file": str(path), "source": "", "hf_hub_id": None, "url": ""}
    return timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay=overlay, in_chans=in_channels, num_classes=0, **kwargs
    )


def _per_layer(name: str, value: int | Sequence[int], count: int) -> list[int]:
    values = [int(value)] * count if isinstance(value, int) else [int(item) for item in value]
    if len(values) != count:
        raise ValueError(f"Regressor: {name} has {len(values)} entries for {count} identity layers")
    return values


def group_scales(
    sizes: ParamSizes, output_scales: Mapping[str, float | Sequence[float]] | None
) -> dict[str, Tensor]:
    """Each group's output multiplier ``[K]`` from ``output_scales`` (group -> one positive number, or one per
    coordinate; missing groups: 1). Unknown groups, wrong lengths and non-positive values are errors."""
    output_scales = dict(output_scales or {})
    unknown = sorted(set(output_scales) - set(GROUPS))
    if unknown:
        raise ValueError(f"Regressor: output_scales for unknown groups {unknown}; groups are {list(GROUPS)}")
    scales = {}
    for name, size in sizes.items():
        value = output_scales.get(name, 1.0)
        scale = torch.tensor(value, dtype=torch.float32).flatten()
        if scale.numel() == 1:
            scale = scale.expand(size).clone()
        if scale.numel() != size or not bool((scale > 0).all()):
            raise ValueError(
                f"Regressor: output_scales[{name!r}] must be one positive number or {size} of them, got {value}"
            )
        scales[name] = scale
    return scales


class Regressor(nn.Module):
    """``(activations, heatmaps, landmark features) -> FaceParams``; see the module docstring.

    ``sizes``: the parameter groups' sizes (:meth:`ParamSizes.from_models`). ``identity_channels``: the
    channel count of each identity activation, in the order the identity network returns them (``[]``: no
    identity branch). ``adapter_channels`` / ``adapter_pool``: each adapter's width and pooled grid size (one
    value for all layers, or one per layer). ``heatmap_backbone``: a timm model name, or ``None`` for no
    heatmap branch; ``heatmap_weights``: an optional local timm weights file (see
    :func:`create_heatmap_backbone`); ``heatmap_norm``: the backbone's normalisation layer, a timm name such as
    ``"groupnorm1"`` (per sample: the same in training and evaluation at any batch size), or ``None`` for the
    model's own (batch norm for ResNets). ``landmark_features``: width of an optional landmark feature vector
    fed to the fusion MLP next to the branches (0: none; see
    :func:`fastganfit.reconstruction.landmark_camera.landmark_residual_features`). ``landmark_heads``: also linear
    shape and expression heads on the standardised landmark features (zero until :meth:`set_landmark_map`).
    ``colour_input``: add linear colour heads from the face's colour (:func:`face_colour_features`, ``[B, 6]``) to
    the texture and light heads. At least one of the first three inputs is needed. ``hidden`` and
    ``feature_dim``: widths of the fusion MLP's two layers. ``identity_head``: the identity network's embedding
    width ``D`` for a linear shape head on the standardised embedding (zero until :meth:`set_identity_map`; 0:
    none). ``output_scales``: an optional multiplier per group,
    one number for the whole group or one per coordinate (e.g. ``{"expression": 0.2, "camera": [0.05, 0.05, 0.05,
    0.5, 0.5, 0.5, 0.05]}``), default 1; see :func:`group_scales`.
    """

    def __init__(
        self,
        sizes: ParamSizes,
        identity_channels: Sequence[int],
        heatmap_channels: int = 68,
        adapter_channels: int | Sequence[int] = 128,
        adapter_pool: int | Sequence[int] = 1,
        heatmap_backbone: str | None = "resnet18",
        heatmap_weights: str | Path | None = None,
        heatmap_norm: str | None = None,
        landmark_features: int = 0,
        feature_dim: int = 512,
        hidden: int = 512,
        output_scales: Mapping[str, float | Sequence[float]] | None = None,
        colour_input: bool = False,
        landmark_heads: bool = False,
        identity_head: int = 0,
    ) -> None:
        super().__init__()
        if not identity_channels and heatmap_backbone is None and not landmark_features:
            raise ValueError("Regressor: needs identity_channels, a heatmap_backbone or landmark_features")
        self.sizes = sizes
        self.heatmap_channels = heatmap_channels
        count = len(identity_channels)
        self.adapters = nn.ModuleList(
            IdentityAdapter(int(channels), width, pool)
            for channels, width, pool in zip(
                identity_channels,
                _per_layer("adapter_channels", adapter_channels, count),
                _per_layer("adapter_pool", adapter_pool, count),
                strict=True,
            )
        )
        self.backbone = None
        fused = sum(adapter.out_features for adapter in self.adapters)
        if heatmap_backbone is not None:
            norm = {} if heatmap_norm is None else {"norm_layer": heatmap_norm}
            self.backbone = create_heatmap_backbone(heatmap_backbone, heatmap_channels, heatmap_weights, **norm)
            fused += self.backbone.num_features
        if landmark_features < 0:
            raise ValueError(f"Regressor: landmark_features must be non-negative, got {landmark_features}")
        self.landmark_features = int(landmark_features)
        fused += self.landmark_features
        self.colour_input = bool(colour_input)
        if landmark_heads and not self.landmark_features:
            raise ValueError("Regressor: landmark_heads needs landmark features (landmark_input: true)")
        self.fusion = nn.Sequential(
            nn.Linear(fused, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, feature_dim), nn.ReLU(inplace=True)
        )
        self.heads = nn.ModuleDict({name: nn.Linear(feature_dim, size) for name, size in sizes.items()})
        colour_groups = COLOUR_GROUPS if self.colour_input else ()
        self.colour_heads = nn.ModuleDict(
            {name: nn.Linear(COLOUR_FEATURES, getattr(sizes, name)) for name in colour_groups}
        )
        landmark_groups = LANDMARK_GROUPS if landmark_heads else ()
        self.landmark_heads = nn.ModuleDict(
            {name: nn.Linear(self.landmark_features, getattr(sizes, name)) for name in landmark_groups}
        )
        if landmark_heads:  # the landmark heads' input standardisation (set_landmark_map; identity until then)
            self.register_buffer("landmark_mean", torch.zeros(self.landmark_features))
            self.register_buffer("landmark_std", torch.ones(self.landmark_features))
        if identity_head < 0:
            raise ValueError(f"Regressor: identity_head must be an embedding width or 0, got {identity_head}")
        self.identity_head = nn.Linear(identity_head, sizes.shape) if identity_head else None
        if identity_head:  # the identity head's input standardisation (set_identity_map; identity until then)
            self.register_buffer("embedding_mean", torch.zeros(identity_head))
            self.register_buffer("embedding_std", torch.ones(identity_head))
        extra_heads = () if self.identity_head is None else (self.identity_head,)
        for head in (*self.heads.values(), *self.colour_heads.values(), *self.landmark_heads.values(), *extra_heads):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        for name, scale in group_scales(sizes, output_scales).items():
            self.register_buffer(f"{name}_scale", scale, persistent=False)

    @torch.no_grad()
    def set_landmark_map(self, mean: Tensor, std: Tensor, weight: Tensor, bias: Tensor) -> None:
        """Make the landmark heads compute ``(features - mean) / std @ weight + bias`` (``mean, std [F]``,
        ``weight [F, Ks + Ke]``, ``bias [Ks + Ke]``: shape coefficients, then expression), before the other heads'
        contributions; see :func:`fastganfit.regression.landmark_prior.fit_landmark_prior`."""
        if not self.landmark_heads:
            raise ValueError("Regressor.set_landmark_map: this regressor has no landmark heads (landmark_heads=False)")
        width = sum(getattr(self.sizes, name) for name in LANDMARK_GROUPS)
        if mean.shape != (self.landmark_features,) or std.shape != mean.shape or weight.shape != (
            self.landmark_features, width) or bias.shape != (width,):
            raise ValueError(
                f"Regressor.set_landmark_map: expected mean, std [{self.landmark_features}], weight "
                f"[{self.landmark_features}, {width}] and bias [{width}], got {list(mean.shape)}, {list(std.shape)}, "
                f"{list(weight.shape)}, {list(bias.shape)}"
            )
        self.landmark_mean.copy_(mean)
        self.landmark_std.copy_(std)
        start = 0
        for name in LANDMARK_GROUPS:
            size, scale = getattr(self.sizes, name), self.output_scale(name)
            head = self.landmark_heads[name]
            head.weight.copy_(weight[:, start : start + size].T.to(scale) / scale[:, None])
            head.bias.copy_(bias[start : start + size].to(scale) / scale)
            start += size

    @torch.no_grad()
    def set_identity_map(self, mean: Tensor, std: Tensor, weight: Tensor, bias: Tensor) -> None:
        """Make the identity head compute ``(embedding - mean) / std @ weight + bias`` (``mean, std [D]``, ``weight
        [D, Ks]``, ``bias [Ks]``: shape coefficients), added to the other heads' shape; see
        :func:`fastganfit.regression.identity_prior.fit_identity_prior`."""
        if self.identity_head is None:
            raise ValueError("Regressor.set_identity_map: this regressor has no identity head (identity_head=0)")
        width, size = self.identity_head.in_features, self.sizes.shape
        if mean.shape != (width,) or std.shape != mean.shape or weight.shape != (width, size) or bias.shape != (size,):
            raise ValueError(
                f"Regressor.set_identity_map: expected mean, std [{width}], weight [{width}, {size}] and bias "
                f"[{size}], got {list(mean.shape)}, {list(std.shape)}, {list(weight.shape)}, {list(bias.shape)}"
            )
        scale = self.output_scale("shape")
        self.embedding_mean.copy_(mean)
        self.embedding_std.copy_(std)
        self.identity_head.weight.copy_(weight.T.to(scale) / scale[:, None])
        self.identity_head.bias.copy_(bias.to(scale) / scale)

    def output_scale(self, name: str) -> Tensor:
        """The multiplier ``[K]`` of group ``name``'s head output."""
        return getattr(self, f"{name}_scale")

    def features(
        self, activations: Sequence[Tensor], heatmaps: Tensor | None, landmarks: Tensor | None = None
    ) -> Tensor:
        """The fused feature ``[B, feature_dim]`` (the heads' input)."""
        if len(activations) != len(self.adapters):
            raise ValueError(f"Regressor: expected {len(self.adapters)} identity activations, got {len(activations)}")
        parts = [adapter(activation) for adapter, activation in zip(self.adapters, activations, strict=True)]
        if self.backbone is not None:
            if heatmaps is None or heatmaps.ndim != 4 or heatmaps.shape[1] != self.heatmap_channels:
                shape = None if heatmaps is None else list(heatmaps.shape)
                raise ValueError(f"Regressor: expected heatmaps [B, {self.heatmap_channels}, H, W], got {shape}")
            parts.append(self.backbone(heatmaps))
        if self.landmark_features:
            if landmarks is None or landmarks.ndim != 2 or landmarks.shape[1] != self.landmark_features:
                shape = None if landmarks is None else list(landmarks.shape)
                raise ValueError(f"Regressor: expected landmark features [B, {self.landmark_features}], got {shape}")
            parts.append(landmarks)
        return self.fusion(torch.cat(parts, dim=1))

    def forward(
        self,
        activations: Sequence[Tensor],
        heatmaps: Tensor | None = None,
        landmarks: Tensor | None = None,
        colour: Tensor | None = None,
        embedding: Tensor | None = None,
    ) -> FaceParams:
        """FaceParams (each group ``[B, K]``) from identity ``activations`` (one ``[B, C_j, h_j, w_j]`` per
        adapter), ``heatmaps [B, 68, H, W]`` (ignored without a heatmap branch), landmark features
        ``landmarks [B, landmark_features]`` (ignored when ``landmark_features`` is 0) and the face's colour
        ``colour [B, 6]`` (:func:`face_colour_features`; ignored without ``colour_input``) and the identity network's
        ``embedding [B, D]`` (ignored without an identity head)."""
        feature = self.features(activations, heatmaps, landmarks)
        outputs = {name: self.heads[name](feature) for name in GROUPS}
        if self.landmark_heads:
            standardised = (landmarks - self.landmark_mean) / self.landmark_std
            for name, head in self.landmark_heads.items():
                outputs[name] = outputs[name] + head(standardised)
        if self.identity_head is not None:
            width = self.identity_head.in_features
            if embedding is None or embedding.shape != (feature.shape[0], width):
                shape = None if embedding is None else list(embedding.shape)
                raise ValueError(
                    f"Regressor: expected an identity embedding [{feature.shape[0]}, {width}], got {shape}"
                )
            standardised_embedding = (embedding - self.embedding_mean) / self.embedding_std
            outputs["shape"] = outputs["shape"] + self.identity_head(standardised_embedding)
        if self.colour_input:
            if colour is None or colour.shape != (feature.shape[0], COLOUR_FEATURES):
                shape = None if colour is None else list(colour.shape)
                raise ValueError(f"Regressor: expected face colour features [{feature.shape[0]}, {COLOUR_FEATURES}], "
                                 f"got {shape}")
            scaled = (colour - colour.new_tensor(COLOUR_REFERENCE)) * COLOUR_GAIN
            for name, head in self.colour_heads.items():
                outputs[name] = outputs[name] + head(scaled)
        return FaceParams(**{name: output * self.output_scale(name) for name, output in outputs.items()})
