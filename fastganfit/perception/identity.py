"""IdentityNet: a frozen face-recognition network behind its own differentiable face-chip alignment.

``IdentityNet(images [B, 3, H, W] in [0, 1], landmarks [B, 68, 2])`` aligns a face chip for the
backbone, runs it and returns the embedding ``[B, D]`` and the selected layers' activations
``[B, C, h, w]``.  The network is frozen and always in eval mode, but the output is differentiable with
respect to the image (and the landmarks), which the identity and content losses need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from fastganfit.perception.arcface import IResNet, load_arcface
from fastganfit.perception.dlib_resnet import DlibResNet, load_dlib_resnet
from fastganfit.perception.face_chip import ArcFaceChipAligner, DlibChipAligner


@dataclass(frozen=True)
class IdentityOutput:
    """Embedding ``[B, D]`` and activations (one ``[B, C, h, w]`` per selected layer, in order)."""

    embedding: Tensor
    activations: list[Tensor]


class IdentityNet(nn.Module):
    """Frozen identity network: ``(images [B, 3, H, W], landmarks [B, 68, 2]) -> IdentityOutput``.

    ``backbone`` has ``chip_size``, ``embedding_dim``, ``layer_names`` and ``forward_features(chips
    [B, 3, S, S] in [0, 1], layers) -> (embedding [B, D], activations)`` (:class:`DlibResNet`,
    :class:`IResNet`); ``aligner`` maps (images, landmarks) to chips ``[B, 3, S, S]`` with the same ``S``.
    ``layers`` selects the activations to return (names from ``backbone.layer_names``); ``None`` returns
    all of them, ``[]`` none.
    """

    def __init__(
        self,
        backbone: DlibResNet | IResNet,
        aligner: DlibChipAligner | ArcFaceChipAligner,
        layers: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        names: tuple[str, ...] = backbone.layer_names
        selected = list(names) if layers is None else list(layers)
        unknown = [name for name in selected if name not in names]
        if unknown:
            raise ValueError(f"layers: unknown layer names {unknown}; choose from {list(names)}")
        if aligner.size != backbone.chip_size:
            raise ValueError(f"aligner: chip size {aligner.size} differs from the backbone's {backbone.chip_size}")
        self.backbone = backbone
        self.aligner = aligner
        self.layers = selected
        self.requires_grad_(False)
        self.eval()

    @property
    def embedding_dim(self) -> int:
        """Size ``D`` of the embedding."""
        return self.backbone.embedding_dim

    def train(self, mode: bool = True) -> IdentityNet:
        """Stay in eval mode whatever ``mode`` is: the batch statistics are frozen."""
        return super().train(False)

    def chips(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """Aligned face chips ``[B, 3, S, S]`` from images ``[B, 3, H, W]`` and landmarks ``[B, 68, 2]``."""
        return self.aligner(images, landmarks)

    def forward(self, images: Tensor, landmarks: Tensor) -> IdentityOutput:
        """Embedding ``[B, D]`` and activations of images ``[B, 3, H, W]`` in [0, 1] with landmarks ``[B, 68, 2]``."""
        embedding, activations = self.backbone.forward_features(self.chips(images, landmarks), self.layers)
        return IdentityOutput(embedding, activations)


def dlib_identity(
    model_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    layers: Sequence[str] | None = None,
) -> IdentityNet:
    """dlib's ResNet (128-D, 150x150 chips, padding 0.25); weights from ``face-recognition-models`` by default."""
    return IdentityNet(load_dlib_resnet(model_path, cache_dir), DlibChipAligner(150, 0.25), layers)


def arcface_identity(
    arch: str = "iresnet50", weights: str | Path | None = None, layers: Sequence[str] | None = None
) -> IdentityNet:
    """ArcFace IResNet (512-D, 112x112 chips) with an ``arcface_torch`` ``backbone.pth`` weights file."""
    return IdentityNet(load_arcface(arch, weights), ArcFaceChipAligner(), layers)
