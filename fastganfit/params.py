"""FaceParams: the named, zero-centred parameter groups of a face, and their flat-tensor form.

A face is described by five groups, batch-first: ``shape [B, Ks]`` and ``expression [B, Ke]``
(morphable-model coefficients), ``texture [B, Kt]`` (the texture model's latent), ``camera [B, 7]``
and ``light [B, L]``. All zeros is the mean face with a neutral expression, the mean texture, the
default camera (frontal, face filling the crop) and white ambient light, because every model in
fastganfit is zero-centred.

The regressor predicts FaceParams; GANFit-style fitting optimises them directly (as leaf tensors, or
as one flat leaf through :meth:`FaceParams.unflatten`). :class:`ParamSizes` holds the sizes of the
groups, read from the models so that nothing is hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

import torch

GROUPS: tuple[str, ...] = ("shape", "expression", "texture", "camera", "light")


class _ShapeModel(Protocol):
    num_shape: int
    num_expression: int


class _TextureModel(Protocol):
    latent_dim: int


class _ParamCount(Protocol):
    num_params: int


@dataclass(frozen=True)
class ParamSizes:
    """Sizes of the parameter groups: ``shape`` (Ks), ``expression`` (Ke), ``texture`` (Kt), ``camera``
    (7) and ``light`` (L); :meth:`items` lists them in :data:`GROUPS` order."""

    shape: int
    expression: int
    texture: int
    camera: int
    light: int

    def __post_init__(self) -> None:
        for name, size in self.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ValueError(f"ParamSizes: {name} must be a non-negative integer, got {size!r}")

    @classmethod
    def from_models(
        cls, model: _ShapeModel, texture_model: _TextureModel, camera: _ParamCount, lighting: _ParamCount
    ) -> ParamSizes:
        """Sizes from a :class:`~fastganfit.facemodel.morphable.MorphableModel` (``num_shape``,
        ``num_expression``), a texture model (``latent_dim``), a camera and a lighting model (``num_params``)."""
        return cls(
            shape=int(model.num_shape),
            expression=int(model.num_expression),
            texture=int(texture_model.latent_dim),
            camera=int(camera.num_params),
            light=int(lighting.num_params),
        )

    def items(self) -> list[tuple[str, int]]:
        """``[(name, size), ...]`` in :data:`GROUPS` order."""
        return [(name, getattr(self, name)) for name in GROUPS]

    @property
    def total(self) -> int:
        """Total number of parameters per face (the width of :meth:`FaceParams.flatten`)."""
        return sum(size for _, size in self.items())


@dataclass(eq=False)
class FaceParams:
    """Parameter groups of a batch of faces: ``shape [B, Ks]``, ``expression [B, Ke]``, ``texture [B, Kt]``,
    ``camera [B, 7]``, ``light [B, L]``; all zeros is the mean face (see the module docstring)."""

    shape: torch.Tensor
    expression: torch.Tensor
    texture: torch.Tensor
    camera: torch.Tensor
    light: torch.Tensor

    def __post_init__(self) -> None:
        batch = self.shape.shape[0] if self.shape.ndim == 2 else None
        for name, tensor in self.items():
            if tensor.ndim != 2:
                raise ValueError(f"FaceParams.{name}: expected a [B, K] tensor, got shape {list(tensor.shape)}")
            if tensor.shape[0] != batch:
                raise ValueError(f"FaceParams.{name}: batch size {tensor.shape[0]} differs from shape's {batch}")

    @classmethod
    def zeros(
        cls,
        sizes: ParamSizes,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> FaceParams:
        """All-zero parameters (the mean face, neutral, mean texture, default camera, ambient white light)."""
        return cls(**{name: torch.zeros(batch_size, size, device=device, dtype=dtype) for name, size in sizes.items()})

    @classmethod
    def from_dict(cls, groups: dict[str, torch.Tensor]) -> FaceParams:
        """From a mapping of group name to ``[B, K]`` (e.g. a synthetic batch's ``params``); extra keys are errors."""
        missing = [name for name in GROUPS if name not in groups]
        extra = sorted(set(groups) - set(GROUPS))
        if missing or extra:
            raise KeyError(f"FaceParams.from_dict: missing groups {missing}, unknown groups {extra}; need {GROUPS}")
        return cls(**{name: groups[name] for name in GROUPS})

    @classmethod
    def unflatten(cls, flat: torch.Tensor, sizes: ParamSizes) -> FaceParams:
        """Split ``flat [B, sizes.total]`` into groups (views of ``flat``, so gradients reach it)."""
        if flat.ndim != 2 or flat.shape[1] != sizes.total:
            raise ValueError(f"FaceParams.unflatten: expected [B, {sizes.total}], got {list(flat.shape)}")
        parts = flat.split([size for _, size in sizes.items()], dim=1)
        return cls(*parts)

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """``[(name, tensor), ...]`` in :data:`GROUPS` order."""
        return [(field.name, getattr(self, field.name)) for field in fields(self)]

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` in :data:`GROUPS` order."""
        return dict(self.items())

    @property
    def batch_size(self) -> int:
        """Number of faces B."""
        return self.shape.shape[0]

    @property
    def sizes(self) -> ParamSizes:
        """The groups' sizes."""
        return ParamSizes(**{name: tensor.shape[1] for name, tensor in self.items()})

    def flatten(self) -> torch.Tensor:
        """All groups side by side, ``[B, total]`` in :data:`GROUPS` order (inverse of :meth:`unflatten`)."""
        return torch.cat([tensor for _, tensor in self.items()], dim=1)

    def detach(self) -> FaceParams:
        """The same values, cut from the autograd graph."""
        return FaceParams(**{name: tensor.detach() for name, tensor in self.items()})

    def to(self, *args: object, **kwargs: object) -> FaceParams:
        """Every group moved or cast like :meth:`torch.Tensor.to` (``device``, ``dtype``, ...)."""
        return FaceParams(**{name: tensor.to(*args, **kwargs) for name, tensor in self.items()})
