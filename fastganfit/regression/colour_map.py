"""The portrait colour map: the texture latent and the light from the face's colour, fitted on real photos.

The regressor's texture and light heads learn on synthetic faces; on real portraits their render stayed about 8.6
CIEDE2000 from the photo's skin (BENCHMARKS.md, section portrait_colour): synthetic lights and exposure are not a
studio's. The colour map is a linear map from the face's colour (:func:`~fastganfit.regression.regressor.
face_colour_features`, ``[B, 6]``: the mean and spread of the skin's colour at points between the landmarks) to the
texture latent and the light, fitted by ridge regression on real photos: for each public-domain portrait, the
texture and light that GANFit++'s colour stage fits to its pixels, started from the regression
(``scripts/build_portrait_colour_map.py``; provenance: ``fastganfit/assets/colour_map_portraits.md``). It is a
learnt linear layer like the colour heads, one matrix product at inference, no optimisation; with it
:meth:`FastGANFitModule.predict` takes the texture and light from the map instead of the heads (everything else from
the heads).

A map only fits the texture model and lighting it was fitted for: it stores their sizes, the lighting's class name
and a fingerprint of the texture model (the mean colour of its mean texture and of each component), and
:func:`resolve_colour_map` applies the shipped map (``"auto"``) only to a graph whose components match.
"""

from __future__ import annotations

import itertools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fastganfit.io.atomic import atomic_write
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.regression.regressor import COLOUR_FEATURES, COLOUR_GAIN, COLOUR_REFERENCE

#: The npz layout of a colour map file.
NPZ_KEYS = ("weight", "bias", "texture_size", "light_size", "lighting", "texture_fingerprint")
#: Two texture models are the same when their fingerprints differ by less than this ([0, 1] colour units; resizing
#: the texture changes a fingerprint by about 1e-4).
FINGERPRINT_TOLERANCE = 0.01
#: ``model.colour_map``: the shipped map where it fits the graph (else none).
AUTO = "auto"


def portrait_colour_map_path() -> Path:
    """Where the portrait colour map ships: ``fastganfit/assets/colour_map_portraits.npz``."""
    return Path(__file__).resolve().parent.parent / "assets" / "colour_map_portraits.npz"


def texture_fingerprint(texture: torch.nn.Module, latent_size: int) -> Tensor:
    """``[K + 1, 3]``: the mean colour over the texels of ``texture``'s output at the zero latent, then the change of
    that mean per unit of each of its ``latent_size`` latent coordinates (a texture model's identity card)."""
    device = next(itertools.chain(texture.buffers(), texture.parameters()), torch.zeros(0)).device
    latents = torch.cat([torch.zeros(1, latent_size), torch.eye(latent_size)]).to(device)
    with torch.no_grad():
        means = texture(latents).mean(dim=(2, 3)).float().cpu()
    return torch.cat([means[:1], means[1:] - means[:1]])


@dataclass(frozen=True)
class ColourMap:
    """``(texture [B, Kt], light [B, Kl]) = features [B, 6] @ weight + bias``, split at ``texture_size``.

    ``weight [6, Kt + Kl]`` and ``bias [Kt + Kl]`` act on the raw :func:`face_colour_features`; ``lighting``: the
    class name of the lighting the light is for; ``texture_fingerprint [Kt + 1, 3]``: :func:`texture_fingerprint` of
    the texture model the latent is for.
    """

    weight: Tensor
    bias: Tensor
    texture_size: int
    light_size: int
    lighting: str
    texture_fingerprint: Tensor

    def __post_init__(self) -> None:
        width = self.texture_size + self.light_size
        if self.weight.shape != (COLOUR_FEATURES, width) or self.bias.shape != (width,):
            raise ValueError(f"ColourMap: expected weight [{COLOUR_FEATURES}, {width}] and bias [{width}], got "
                             f"{list(self.weight.shape)} and {list(self.bias.shape)}")  # fmt: skip
        if self.texture_fingerprint.shape != (self.texture_size + 1, 3):
            raise ValueError(f"ColourMap: expected a texture fingerprint [{self.texture_size + 1}, 3], got "
                             f"{list(self.texture_fingerprint.shape)}")  # fmt: skip

    def __call__(self, colour: Tensor) -> tuple[Tensor, Tensor]:
        """``(texture [B, Kt], light [B, Kl])`` of the face colour features ``colour [B, 6]``."""
        if colour.ndim != 2 or colour.shape[1] != COLOUR_FEATURES:
            raise ValueError(f"ColourMap: expected face colour features [B, {COLOUR_FEATURES}], got "
                             f"{list(colour.shape)}")  # fmt: skip
        output = colour @ self.weight.to(colour) + self.bias.to(colour)
        return output[:, : self.texture_size], output[:, self.texture_size :]

    def mismatch(self, graph: FaceReconstructionGraph) -> str | None:
        """Why this map does not fit ``graph``'s texture model and lighting, or ``None`` when it does."""
        lighting = graph.renderer.lighting
        if type(lighting).__name__ != self.lighting or lighting.num_params != self.light_size:
            return (f"it is for {self.lighting} ({self.light_size} parameters), the graph's lighting is "
                    f"{type(lighting).__name__} ({lighting.num_params})")  # fmt: skip
        latent_size = graph.sizes.texture
        if latent_size != self.texture_size:
            return f"it is for a texture latent of {self.texture_size}, the graph's texture model has {latent_size}"
        difference = (texture_fingerprint(graph.texture, latent_size) - self.texture_fingerprint).abs().max()
        if difference > FINGERPRINT_TOLERANCE:
            return (f"it is for another texture model of the same latent size (fingerprints differ by "
                    f"{float(difference):.3f})")  # fmt: skip
        return None

    def save(self, path: str | Path) -> None:
        """Write the map as an npz file (:data:`NPZ_KEYS`), atomically."""
        with atomic_write(path) as file:
            np.savez(file, weight=self.weight.numpy().astype(np.float32), bias=self.bias.numpy().astype(np.float32),
                     texture_size=self.texture_size, light_size=self.light_size, lighting=self.lighting,
                     texture_fingerprint=self.texture_fingerprint.numpy().astype(np.float32))  # fmt: skip


def fit_colour_map(
    colour: Tensor,
    texture: Tensor,
    light: Tensor,
    lighting: str,
    fingerprint: Tensor,
    ridge: float = 0.01,
    sample_weight: Tensor | None = None,
) -> ColourMap:
    """The ridge-regression map from face colour features ``colour [N, 6]`` to ``texture [N, Kt]`` and ``light [N,
    Kl]`` (targets for a ``lighting`` class and a texture model of ``fingerprint``; see :class:`ColourMap`).

    ``ridge``: the penalty per unit of sample weight on the features as the colour heads see them (``(colour -
    COLOUR_REFERENCE) * COLOUR_GAIN``, order 1), folded into a map of the raw features. ``sample_weight [N]``: each
    sample's weight in the squared error (default 1)."""
    count = colour.shape[0]
    if colour.ndim != 2 or colour.shape[1] != COLOUR_FEATURES or texture.shape[0] != count or light.shape[0] != count:
        raise ValueError(f"fit_colour_map: expected colour [N, {COLOUR_FEATURES}], texture [N, Kt] and light [N, Kl], "
                         f"got {list(colour.shape)}, {list(texture.shape)} and {list(light.shape)}")  # fmt: skip
    if count <= COLOUR_FEATURES:
        raise ValueError(f"fit_colour_map: needs more than {COLOUR_FEATURES} samples, got {count}")
    if ridge < 0:
        raise ValueError(f"fit_colour_map: ridge must be non-negative, got {ridge}")
    weights = torch.ones(count, dtype=torch.float64) if sample_weight is None else sample_weight.double()
    if weights.shape != (count,) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"fit_colour_map: sample_weight must be [{count}] non-negative numbers with a positive sum")
    scaled = (colour.double() - colour.new_tensor(COLOUR_REFERENCE).double()) * COLOUR_GAIN
    targets = torch.cat([texture, light], dim=1).double()
    total = weights.sum()
    scaled_mean = (weights[:, None] * scaled).sum(0) / total
    target_mean = (weights[:, None] * targets).sum(0) / total
    centred = scaled - scaled_mean
    gram = centred.T @ (weights[:, None] * centred) + ridge * total * torch.eye(COLOUR_FEATURES, dtype=torch.float64)
    scaled_weight = torch.linalg.solve(gram, centred.T @ (weights[:, None] * (targets - target_mean)))
    weight = scaled_weight * COLOUR_GAIN
    bias = target_mean - (scaled_mean / COLOUR_GAIN + scaled.new_tensor(COLOUR_REFERENCE)) @ weight
    return ColourMap(weight.float(), bias.float(), texture.shape[1], light.shape[1], lighting, fingerprint.float())


def load_colour_map(path: str | Path) -> ColourMap:
    """A colour map from an npz file written by :meth:`ColourMap.save`; ``ValueError`` naming the file and what is
    wrong for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"colour map {path}: no such file (build one with scripts/build_portrait_colour_map"
                                f".py, docs/textures.md, or set model.colour_map=null)")  # fmt: skip
    if not zipfile.is_zipfile(path):
        raise ValueError(f"colour map {path}: not an npz file")
    with np.load(path, allow_pickle=False) as arrays:
        missing = [key for key in NPZ_KEYS if key not in arrays.files]
        if missing:
            raise ValueError(f"colour map {path}: missing {missing}; expected the keys {list(NPZ_KEYS)}")
        values = {key: arrays[key] for key in NPZ_KEYS}
    try:
        return ColourMap(torch.from_numpy(values["weight"]).float(), torch.from_numpy(values["bias"]).float(),
                         int(values["texture_size"]), int(values["light_size"]), str(values["lighting"]),
                         torch.from_numpy(values["texture_fingerprint"]).float())  # fmt: skip
    except (ValueError, TypeError) as error:
        raise ValueError(f"colour map {path}: {error}") from error


def resolve_colour_map(value: str | Path | None, graph: FaceReconstructionGraph) -> ColourMap | None:
    """``model.colour_map``: ``None`` -> none; ``"auto"`` -> the shipped portrait map when it fits ``graph`` (its
    texture model and lighting), else none; a path -> that map, which must fit (``ValueError`` saying why not)."""
    if value is None:
        return None
    if str(value) == AUTO:
        path = portrait_colour_map_path()
        if not path.is_file():
            return None
        colour_map = load_colour_map(path)
        return None if colour_map.mismatch(graph) else colour_map
    colour_map = load_colour_map(value)
    reason = colour_map.mismatch(graph)
    if reason is not None:
        raise ValueError(f"model.colour_map={value}: does not fit this model: {reason} (set model.colour_map=null "
                         f"or {AUTO})")  # fmt: skip
    return colour_map

