"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The network maps a 150x150 RGB face chip (see :mod:`fastganfit.perception.face_chip`) to dlib's
128-D face descriptor.  Weights are read straight from dlib's file (no dlib needed) and the converted
state dict is cached, keyed by the file's SHA-256, so later loads skip the parsing.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastganfit.io.atomic import atomic_write
from fastganfit.perception.dlib_format import (
    INPUT_WRAPPER,
    LAYER_WRAPPER,
    TAG_OR_SKIP_WRAPPER,
    DlibLayer,
    DlibNetwork,
    read_dlib_network,
)

MODEL_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Stage:
    """A stage of the network: an optional down block then ``residuals`` residual blocks."""

    channels: int
    down: bool
    residuals: int


STAGES: tuple[Stage, ...] = (
    Stage(32, down=False, residuals=3),
    Stage(64, down=True, residuals=3),
    Stage(128, down=True, residuals=2),
    Stage(256, down=True, residuals=2),
    Stage(256, down=True, residuals=0),
)
STEM_CHANNELS = 32
EMBEDDING_DIM = 128


class Affine(nn.Module):
    """dlib's frozen batch norm: ``y = x * gamma + beta`` per channel, on ``[B, C, H, W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C, H, W]``."""
        return torch.addcmul(self.beta[:, None, None], x, self.gamma[:, None, None])


def add_zero_filled(a: Tensor, b: Tensor) -> Tensor:
    """dlib's ``add_prev``: sum of ``[B, C1, H1, W1]`` and ``[B, C2, H2, W2]`` into the larger size.

    Each input is zero-padded at the end of the channel, row and column axes to the element-wise
    maximum shape before adding.
    """
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grow(x: Tensor) -> Tensor:
        channels, rows, cols = x.shape[1:]
        pad = (0, size[2] - cols, 0, size[1] - rows, 0, size[0] - channels)
        return F.pad(x, pad) if any(pad) else x

    return grow(a) + grow(b)


class ResidualBlock(nn.Module):
    """conv3x3 -> affine -> relu -> conv3x3 -> affine, plus the skip path, then relu.

    A down block's first conv has stride 2 and no padding and its skip path is a 2x2 average pool.
    """

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=padding)
        self.affine1 = Affine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        self.affine2 = Affine(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W] -> [B, C_out, H', W']`` (``H' = H`` or about ``H / 2`` for a down block)."""
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_filled(y, skip))


class DlibResNet(nn.Module):
    """dlib's metric-learning ResNet: 150x150 chip in [0, 1] -> 128-D descriptor (not normalised).

    ``layer_names`` are the activations :meth:`forward_features` can return: ``stem`` ``[B, 32, 35, 35]``,
    ``stage1`` ``[B, 32, 35, 35]``, ``stage2`` ``[B, 64, 17, 17]``, ``stage3`` ``[B, 128, 8, 8]``,
    ``stage4`` ``[B, 256, 4, 4]``, ``stage5`` ``[B, 256, 2, 2]``.
    """

    chip_size = 150
    embedding_dim = EMBEDDING_DIM
    layer_names: tuple[str, ...] = ("stem", *(f"stage{i + 1}" for i in range(len(STAGES))))

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=0)
        self.affine = Affine(STEM_CHANNELS)
        stages = []
        channels = STEM_CHANNELS
        for stage in STAGES:
            blocks = [ResidualBlock(channels, stage.channels, down=True)] if stage.down else []
            blocks += [ResidualBlock(stage.channels, stage.channels, down=False) for _ in range(stage.residuals)]
            stages.append(nn.Sequential(*blocks))
            channels = stage.channels
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(channels, EMBEDDING_DIM, bias=False)

    def forward_features(self, chips: Tensor, layers: Sequence[str] = ()) -> tuple[Tensor, list[Tensor]]:
        """Descriptor ``[B, 128]`` and the activations named in ``layers`` (in that order).

        ``chips``: ``[B, 3, 150, 150]`` RGB in [0, 1], aligned like ``dlib.get_face_chip(size=150,
        padding=0.25)``.
        """
        unknown = [name for name in layers if name not in self.layer_names]
        if unknown:
            raise ValueError(f"layers: unknown layer names {unknown}; choose from {list(self.layer_names)}")
        if chips.ndim != 4 or chips.shape[1:] != (3, self.chip_size, self.chip_size):
            raise ValueError(f"chips: expected [B, 3, 150, 150], got shape {list(chips.shape)}")
        x = (chips * 255.0 - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)
        named = {"stem": x}
        for index, stage in enumerate(self.stages):
            x = stage(x)
            named[f"stage{index + 1}"] = x
        embedding = self.fc(x.mean(dim=(2, 3)))
        return embedding, [named[name] for name in layers]

    def forward(self, chips: Tensor) -> Tensor:
        """``[B, 3, 150, 150]`` in [0, 1] -> descriptor ``[B, 128]``."""
        return self.forward_features(chips)[0]


def _expected_structure() -> tuple[list[str], list[int]]:
    """Layer kinds (input to output) and wrapper versions (output to input) of the dlib network."""
    kinds = ["con", "affine", "relu", "max_pool"]
    wrappers = [INPUT_WRAPPER, LAYER_WRAPPER, LAYER_WRAPPER, LAYER_WRAPPER]
    block = ["con", "affine", "relu", "con", "affine"]
    for stage in STAGES:
        if stage.down:
            kinds += [*block, "avg_pool", "add_prev", "relu"]
            wrappers += [TAG_OR_SKIP_WRAPPER, *[LAYER_WRAPPER] * 5, TAG_OR_SKIP_WRAPPER, TAG_OR_SKIP_WRAPPER]
            wrappers += [LAYER_WRAPPER] * 3
        for _ in range(stage.residuals):
            kinds += [*block, "add_prev", "relu"]
            wrappers += [TAG_OR_SKIP_WRAPPER, *[LAYER_WRAPPER] * 7]
    kinds += ["avg_pool", "fc"]
    wrappers += [LAYER_WRAPPER, LAYER_WRAPPER]
    return kinds, wrappers[::-1]


def _check_conv(layer: DlibLayer, conv: nn.Conv2d, source: str) -> None:
    found = (
        layer.config["num_filters"],
        layer.config["in_channels"],
        layer.config["nr"],
        layer.config["nc"],
        layer.config["stride_y"],
        layer.config["stride_x"],
        layer.config["padding_y"],
        layer.config["padding_x"],
    )
    wanted = (conv.out_channels, conv.in_channels, *conv.kernel_size, *conv.stride, *conv.padding)
    if found != wanted:
        raise ValueError(
            f"{source}: convolution record at byte {layer.offset} has (filters, inputs, rows, cols, strides, "
            f"paddings) {found}, expected {wanted} for dlib's face-recognition ResNet"
        )


def network_state_dict(network: DlibNetwork, source: str = "<network>") -> dict[str, Tensor]:
    """State dict of :class:`DlibResNet` from a parsed dlib network; checks the architecture matches."""
    kinds, wrappers = _expected_structure()
    found = [layer.kind for layer in network.layers]
    if found != kinds or list(network.wrappers) != wrappers:
        mismatch = next((i for i, (a, b) in enumerate(zip(found, kinds, strict=False)) if a != b), None)
        where = f"first differing layer #{mismatch}" if mismatch is not None else "layer nesting differs"
        raise ValueError(
            f"{source}: dlib network is not dlib's face-recognition ResNet ({len(found)} layers, "
            f"expected {len(kinds)}; {where})"
        )
    if network.input_size != (150, 150):
        raise ValueError(f"{source}: input size {network.input_size}, expected (150, 150)")
    template = DlibResNet()
    convs = [(name, m) for name, m in template.named_modules() if isinstance(m, nn.Conv2d)]
    affines = [(name, m) for name, m in template.named_modules() if isinstance(m, Affine)]
    con_layers = [layer for layer in network.layers if layer.kind == "con"]
    affine_layers = [layer for layer in network.layers if layer.kind == "affine"]
    state: dict[str, Tensor] = {"mean": torch.tensor(network.input_mean, dtype=torch.float32).view(1, 3, 1, 1)}
    for (name, conv), layer in zip(convs, con_layers, strict=True):
        _check_conv(layer, conv, source)
        state[f"{name}.weight"] = torch.from_numpy(layer.arrays["weight"].copy())
        state[f"{name}.bias"] = torch.from_numpy(layer.arrays["bias"].copy())
    for (name, affine), layer in zip(affines, affine_layers, strict=True):
        channels = affine.gamma.numel()
        if layer.arrays["gamma"].size != channels:
            raise ValueError(
                f"{source}: affine record at byte {layer.offset} has {layer.arrays['gamma'].size} channels, "
                f"expected {channels}"
            )
        state[f"{name}.gamma"] = torch.from_numpy(layer.arrays["gamma"].copy())
        state[f"{name}.beta"] = torch.from_numpy(layer.arrays["beta"].copy())
    fc = network.layers[-1]
    if (fc.config["num_inputs"], fc.config["num_outputs"]) != (template.fc.in_features, EMBEDDING_DIM):
        raise ValueError(f"{source}: fully connected record at byte {fc.offset} has shape {fc.config}")
    state["fc.weight"] = torch.from_numpy(fc.arrays["weight"].T.copy())
    return state


def default_model_path() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` from the ``face-recognition-models`` package."""
    try:
        root = resources.files("face_recognition_models")
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            f"{MODEL_FILENAME} not found: install it with `pip install face-recognition-models==0.3.0` "
            "or pass model_path explicitly"
        ) from error
    return Path(str(root / "models" / MODEL_FILENAME))


def default_cache_dir() -> Path:
    """``$FASTGANFIT_CACHE_DIR`` if set, else ``~/.cache/fastganfit``."""
    return Path(os.environ.get("FASTGANFIT_CACHE_DIR", "~/.cache/fastganfit")).expanduser()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's contents."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(model_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Where the converted weights of ``model_path`` are cached (keyed by the file's SHA-256)."""
    root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    return root / "dlib_resnet" / f"{file_sha256(Path(model_path))}-v{CACHE_FORMAT}.pt"


def load_dlib_resnet(
    model_path: str | Path | None = None, cache_dir: str | Path | None = None, use_cache: bool = True
) -> DlibResNet:
    """Build :class:`DlibResNet` with the weights of dlib's ``.dat`` file (in eval mode, on CPU).

    ``model_path`` defaults to the ``face-recognition-models`` package resource.  Converted weights are
    cached under ``cache_dir`` (default :func:`default_cache_dir`); an unreadable cache entry is rebuilt.
    """
    path = default_model_path() if model_path is None else Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dlib face-recognition model not found: {path} (`pip install face-recognition-models==0.3.0` "
            f"provides {MODEL_FILENAME})"
        )
    model = DlibResNet()
    cached = cache_path(path, cache_dir) if use_cache else None
    if cached is not None and cached.is_file():
        try:
            model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception as error:  # any unreadable or stale cache entry is rebuilt below
            warnings.warn(f"ignoring unreadable weight cache {cached} ({error}); rebuilding it", stacklevel=2)
    state = network_state_dict(read_dlib_network(path), str(path))
    model.load_state_dict(state)
    if cached is not None:
        with atomic_write(cached, "wb") as handle:
            torch.save(state, handle)
    return model.eval()
