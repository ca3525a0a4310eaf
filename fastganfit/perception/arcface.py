"""ArcFace IResNet-50/100 backbones with the module layout of insightface's ``arcface_torch``.

The parameter names match ``arcface_torch``'s ``iresnet50``/``iresnet100`` state dicts, so their
released ``backbone.pth`` files load directly (:func:`load_arcface`).  Input: 112x112 RGB chips aligned
to the ArcFace 5-point template (:class:`fastganfit.perception.face_chip.ArcFaceChipAligner`), in [0, 1];
output: 512-D features (not normalised).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

#: Residual blocks per stage of each architecture.
ARCHITECTURES: dict[str, tuple[int, int, int, int]] = {
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
}
STAGE_CHANNELS = (64, 128, 256, 512)
EMBEDDING_DIM = 512
BN_EPS = 1e-5


class IBasicBlock(nn.Module):
    """Improved residual block: BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride) -> BN, plus shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels, eps=BN_EPS),
            )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W] -> [B, C, H / stride, W / stride]``."""
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """IResNet backbone: 112x112 chip in [0, 1] -> 512-D feature.

    ``layer_names`` are the activations :meth:`forward_features` can return: ``stem`` ``[B, 64, 112, 112]``,
    ``layer1`` ``[B, 64, 56, 56]``, ``layer2`` ``[B, 128, 28, 28]``, ``layer3`` ``[B, 256, 14, 14]``,
    ``layer4`` ``[B, 512, 7, 7]``.
    """

    chip_size = 112
    embedding_dim = EMBEDDING_DIM
    layer_names: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, blocks: Sequence[int]) -> None:
        super().__init__()
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks: expected 4 positive block counts, got {list(blocks)}")
        self.conv1 = nn.Conv2d(3, STAGE_CHANNELS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_CHANNELS[0], eps=BN_EPS)
        self.prelu = nn.PReLU(STAGE_CHANNELS[0])
        in_channels = STAGE_CHANNELS[0]
        for index, (count, channels) in enumerate(zip(blocks, STAGE_CHANNELS, strict=True)):
            stage = [IBasicBlock(in_channels, channels, stride=2)]
            stage += [IBasicBlock(channels, channels, stride=1) for _ in range(count - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
            in_channels = channels
        self.bn2 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(in_channels * 7 * 7, EMBEDDING_DIM)
        self.features = nn.BatchNorm1d(EMBEDDING_DIM, eps=BN_EPS)

    def forward_features(self, chips: Tensor, layers: Sequence[str] = ()) -> tuple[Tensor, list[Tensor]]:
        """Feature ``[B, 512]`` and the activations named in ``layers`` (in that order).

        ``chips``: ``[B, 3, 112, 112]`` RGB in [0, 1], ArcFace-aligned.
        """
        unknown = [name for name in layers if name not in self.layer_names]
        if unknown:
            raise ValueError(f"layers: unknown layer names {unknown}; choose from {list(self.layer_names)}")
        if chips.ndim != 4 or chips.shape[1:] != (3, self.chip_size, self.chip_size):
            raise ValueError(f"chips: expected [B, 3, 112, 112], got shape {list(chips.shape)}")
        x = self.prelu(self.bn1(self.conv1(chips * 2.0 - 1.0)))
        named = {"stem": x}
        for name in self.layer_names[1:]:
            x = getattr(self, name)(x)
            named[name] = x
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        embedding = self.features(self.fc(x))
        return embedding, [named[name] for name in layers]

    def forward(self, chips: Tensor) -> Tensor:
        """``[B, 3, 112, 112]`` in [0, 1] -> feature ``[B, 512]``."""
        return self.forward_features(chips)[0]

    def load_arcface_state_dict(self, state: Mapping[str, Tensor], source: str = "<state dict>") -> None:
        """Load an ``arcface_torch`` state dict (optionally ``module.``-prefixed); strict, with clear errors."""
        renamed = {key.removeprefix("module."): value for key, value in state.items()}
        own = self.state_dict()
        missing = sorted(set(own) - set(renamed))
        unexpected = sorted(set(renamed) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"{source}: not an arcface_torch {type(self).__name__} state dict: "
                f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}), "
                f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''} ({len(unexpected)})"
            )
        wrong = [
            f"{k}: {list(v.shape)} != {list(own[k].shape)}"
            for k, v in renamed.items()
            if tuple(v.shape) != tuple(own[k].shape)
        ]
        if wrong:
            raise ValueError(f"{source}: tensor shapes differ from the architecture: {wrong[:5]}")
        self.load_state_dict(renamed)


def build_iresnet(arch: str) -> IResNet:
    """An untrained IResNet of architecture ``arch`` (``iresnet50`` or ``iresnet100``), in eval mode."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: unknown IResNet architecture '{arch}'; choose from {sorted(ARCHITECTURES)}")
    return IResNet(ARCHITECTURES[arch]).eval()


def load_arcface(arch: str, weights: str | Path | None) -> IResNet:
    """IResNet ``arch`` with the ``arcface_torch`` weights file ``weights`` (a ``state_dict`` ``.pth``)."""
    model = build_iresnet(arch)
    if weights is None:
        raise FileNotFoundError(
            f"ArcFace {arch} needs a weights file, but none was given: download an arcface_torch "
            f"{arch} 'backbone.pth' (insightface model zoo, e.g. ms1mv3_arcface_r{arch[7:]}) and set "
            f"identity.weights=/path/to/backbone.pth (see docs/identity.md)"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"ArcFace {arch} weights file not found: {path} (download an arcface_torch {arch} "
            "'backbone.pth' from the insightface model zoo; see docs/identity.md)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: cannot be read as a PyTorch state dict ({error})") from error
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict (mapping of tensors), got {type(state).__name__}")
    model.load_arcface_state_dict(state, str(path))
    return model.eval()


__all__ = ["ARCHITECTURES", "IBasicBlock", "IResNet", "build_iresnet", "load_arcface"]
