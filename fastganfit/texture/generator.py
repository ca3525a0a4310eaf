"""TextureGenerator: a StyleGAN2-style generator of UV textures, used frozen as GANFit's texture prior.

Mapping network ``z -> w`` (pixel-normalised z, leaky-ReLU MLP), synthesis from a learned 4x4 constant
through modulated, demodulated 3x3 convolutions with bilinear 2x upsampling, per-layer noise (fixed
buffers, so the output is a deterministic function of the latent), per-texel learned biases (UV maps are
spatially aligned) and skip-connected ``toRGB`` layers.

For reconstruction the latent lives in one of three spaces (``latent_space``), all zero-centred:

* ``z``: ``[B, z_dim]``, prior N(0, I);
* ``w``: ``[B, w_dim]``, ``w = w_mean + w_std * latent`` (statistics measured from the mapping network);
* ``w+``: ``[B, num_ws * w_dim]``, one such ``w`` per synthesis layer.

The regulariser is ``0.5 * ||latent||^2`` in every space (a diagonal Gaussian in w and w+).
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

LATENT_SPACES = ("z", "w", "w+")
CHECKPOINT_FORMAT = "fastganfit.TextureGenerator/1"


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weights scaled at run time by 1/sqrt(fan_in))."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in] -> [B, out]``."""
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class MappingNetwork(nn.Module):
    """``z [B, z_dim] -> w [B, w_dim]``: pixel norm then ``layers`` leaky-ReLU linear layers."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul) for a, b in itertools.pairwise(dims))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map ``z [B, z_dim]`` to ``w [B, w_dim]``."""
        x = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2) * math.sqrt(2.0)
        return x


class ModulatedConv(nn.Module):
    """Style-modulated convolution, optionally demodulated (StyleGAN2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, w_dim: int, demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.demodulate = demodulate
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x [B, Cin, H, W]``, ``w [B, w_dim]`` -> ``[B, Cout, H, W]``.

        Scales the input by the style, convolves with the shared weight and rescales the output by the
        demodulation factor: equal to convolving with per-sample modulated weights, but a plain batched
        convolution (much faster on CPU than a grouped one).
        """
        style = self.affine(w)
        weight = self.weight * self.scale
        out = F.conv2d(x * style[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            energy = torch.einsum("oikl,bi->bo", weight.square(), style.square())
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        return out


class StyledLayer(nn.Module):
    """Modulated 3x3 conv + fixed-noise injection + per-texel bias + leaky ReLU (optionally upsampling 2x first).

    The bias is learned per texel, not only per channel: UV maps are spatially aligned, so features tied
    to a place on the face (where the lips or brows are) can be learned directly rather than built up
    from the 4x4 constant, which makes training much faster.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, upsample: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, 3, w_dim)
        self.upsample = upsample
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise", torch.randn(1, 1, resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(1, out_channels, resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x [B, Cin, h, w]`` -> ``[B, Cout, H, W]`` (H = 2h when upsampling)."""
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x, w) + self.noise_strength * self.noise + self.bias
        return F.leaky_relu(x, 0.2) * math.sqrt(2.0)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to RGB (no demodulation) with a per-texel bias (see :class:`StyledLayer`).

    Weights start small so that the summed skip outputs of an untrained generator stay inside the
    data range [-1, 1] (otherwise the discriminator wins at once by spotting out-of-range colours).
    """

    def __init__(self, in_channels: int, w_dim: int, resolution: int, initial_gain: float = 0.1) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_channels, 3, 1, w_dim, demodulate=False)
        with torch.no_grad():
            self.conv.weight.mul_(initial_gain)
        self.bias = nn.Parameter(torch.zeros(1, 3, resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, 3, H, W]``."""
        return self.conv(x, w) + self.bias


def channels_for(resolution: int, base_channels: int, max_channels: int) -> dict[int, int]:
    """Channels per synthesis resolution 4..R: ``base_channels * 32 / R`` capped at ``max_channels``."""
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"texture resolution must be a power of two >= 8, got {resolution}")
    sizes = [4 * 2**i for i in range(int(math.log2(resolution)) - 1)]
    return {size: min(max_channels, max(8, base_channels * 32 // size)) for size in sizes}


class TextureGenerator(nn.Module):
    """StyleGAN2-style UV-texture generator: ``latent -> texture [B, 3, R, R]`` in [0, 1].

    ``base_channels`` sets the width (channels at 32x32 are ``base_channels``; lower resolutions are
    wider up to ``max_channels``). Call :meth:`update_w_statistics` after training (the checkpoint
    stores them) so that the ``w`` and ``w+`` spaces are centred.
    """

    def __init__(
        self,
        resolution: int = 128,
        z_dim: int = 128,
        w_dim: int = 128,
        mapping_layers: int = 4,
        base_channels: int = 64,
        max_channels: int = 256,
        latent_space: str = "w",
    ) -> None:
        super().__init__()
        if latent_space not in LATENT_SPACES:
            raise ValueError(f"latent_space must be one of {LATENT_SPACES}, got {latent_space!r}")
        self.hparams = {
            "resolution": resolution, "z_dim": z_dim, "w_dim": w_dim, "mapping_layers": mapping_layers,
            "base_channels": base_channels, "max_channels": max_channels,
        }
        self.resolution, self.z_dim, self.w_dim = resolution, z_dim, w_dim
        self.latent_space = latent_space
        channels = channels_for(resolution, base_channels, max_channels)
        resolutions = sorted(channels)
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.constant = nn.Parameter(torch.randn(1, channels[4], 4, 4))
        self.layers = nn.ModuleList([StyledLayer(channels[4], channels[4], w_dim, 4, upsample=False)])
        self.to_rgb = nn.ModuleList([ToRGB(channels[4], w_dim, 4)])
        for low, high in itertools.pairwise(resolutions):
            self.layers.append(StyledLayer(channels[low], channels[high], w_dim, high, upsample=True))
            self.layers.append(StyledLayer(channels[high], channels[high], w_dim, high, upsample=False))
            self.to_rgb.append(ToRGB(channels[high], w_dim, high))
        self.num_ws = len(self.layers) + 1
        self.register_buffer("w_mean", torch.zeros(w_dim))
        self.register_buffer("w_std", torch.ones(w_dim))

    @property
    def latent_dim(self) -> int:
        """Size of the reconstruction latent in the current ``latent_space``."""
        return {"z": self.z_dim, "w": self.w_dim, "w+": self.num_ws * self.w_dim}[self.latent_space]

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` -> raw output ``[B, 3, R, R]`` (data range [-1, 1])."""
        batch = ws.shape[0]
        x = self.constant.expand(batch, -1, -1, -1)
        x = self.layers[0](x, ws[:, 0])
        rgb = self.to_rgb[0](x, ws[:, 1])
        for block, to_rgb in enumerate(self.to_rgb[1:]):
            first = 1 + 2 * block
            x = self.layers[first](x, ws[:, first])
            x = self.layers[first + 1](x, ws[:, first + 1])
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + to_rgb(x, ws[:, first + 2])
        return rgb

    def ws_from_z(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """``z [B, z_dim]`` -> ``ws [B, num_ws, w_dim]`` (optionally truncated towards ``w_mean``)."""
        w = self.mapping(z)
        if truncation != 1.0:
            w = self.w_mean + truncation * (w - self.w_mean)
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def ws_from_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``latent [B, latent_dim]`` -> ``ws [B, num_ws, w_dim]``."""
        if latent.ndim != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(
                f"texture latent ({self.latent_space} space): expected [B, {self.latent_dim}], got {list(latent.shape)}"
            )
        if self.latent_space == "z":
            return self.ws_from_z(latent)
        ws = latent.view(latent.shape[0], -1, self.w_dim)
        return (self.w_mean + self.w_std * ws).expand(-1, self.num_ws, -1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """UV texture ``[B, 3, R, R]`` in [0, 1] from ``latent [B, latent_dim]``."""
        return (self.synthesis(self.ws_from_latent(latent)) * 0.5 + 0.5).clamp(0.0, 1.0)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, truncation: float = 1.0
    ) -> torch.Tensor:
        """Random textures ``[B, 3, R, R]`` in [0, 1] (z ~ N(0, I))."""
        z = torch.randn(batch_size, self.z_dim, generator=generator).to(self.constant.device)
        return (self.synthesis(self.ws_from_z(z, truncation)) * 0.5 + 0.5).clamp(0.0, 1.0)

    def zero_latent(self, batch_size: int) -> torch.Tensor:
        """The mean texture's latent ``[B, latent_dim]`` (zeros: ``w_mean`` in w / w+)."""
        return self.constant.new_zeros(batch_size, self.latent_dim)

    def latent_regulariser(self, latent: torch.Tensor) -> torch.Tensor:
        """Negative log prior up to a constant, ``[B]``: ``0.5 * ||latent||^2``."""
        return 0.5 * latent.square().sum(1)

    @torch.no_grad()
    def update_w_statistics(self, num_samples: int = 10_000, seed: int = 0) -> None:
        """Measure ``w_mean`` and ``w_std`` from ``num_samples`` mapped z samples."""
        z = torch.randn(num_samples, self.z_dim, generator=torch.Generator().manual_seed(seed))
        w = self.mapping(z.to(self.constant.device))
        self.w_mean.copy_(w.mean(0))
        self.w_std.copy_(w.std(0).clamp(min=1e-4))

    def checkpoint(self) -> dict:
        """A self-describing checkpoint: format tag, constructor arguments and state dict."""
        return {"format": CHECKPOINT_FORMAT, "hparams": dict(self.hparams), "state_dict": self.state_dict()}

    @classmethod
    def load(
        cls, path: str | Path | None, latent_space: str = "w", allow_random_init: bool = False, **hparams: int
    ) -> TextureGenerator:
        """A frozen generator (eval mode, no gradients to its weights) from a checkpoint file.

        ``path=None`` builds a randomly initialised generator, which is only useful in tests: it needs
        ``allow_random_init=True`` and warns. ``hparams`` apply to that case only.
        """
        if path is None:
            if not allow_random_init:
                raise ValueError(
                    "texture generator: no checkpoint given. Set texture.path to a generator checkpoint "
                    "(fastganfit/assets/texture_gan_default.pt is the shipped synthetic prior), or pass "
                    "allow_random_init=True for tests"
                )
            warnings.warn("TextureGenerator has random weights: textures are meaningless (tests only)", stacklevel=2)
            generator = cls(latent_space=latent_space, **hparams)
        else:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(
                    f"texture generator checkpoint {path} does not exist (expected a generator exported by "
                    "scripts/export_texture_prior.py; see docs/textures.md)"
                )
            try:
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:
                raise ValueError(f"texture generator checkpoint {path} cannot be read: {error}") from error
            if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"{path} is not a fastganfit texture generator checkpoint ({CHECKPOINT_FORMAT})")
            generator = cls(latent_space=latent_space, **checkpoint["hparams"])
            generator.load_state_dict(checkpoint["state_dict"])
        generator.eval().requires_grad_(False)
        return generator


def default_texture_prior_path() -> Path:
    """The shipped default texture prior (trained on procedural UV textures)."""
    return Path(__file__).resolve().parent.parent / "assets" / "texture_gan_default.pt"


def load_default_texture_prior(latent_space: str = "w") -> TextureGenerator:
    """The default texture prior (trained on procedural UV textures), from ``fastganfit/assets``."""
    path = default_texture_prior_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the default texture prior {path} is not there yet. Train one with `python train.py "
            "experiment=texture_gan_procedural` and export it with `python scripts/export_texture_prior.py "
            f"<run>/checkpoints/last.ckpt --output {path}`, or use texture=procedural or texture=gan texture.path=..."
        )
    return TextureGenerator.load(path, latent_space=latent_space)
