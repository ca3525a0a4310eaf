"""Residual discriminator for UV textures (StyleGAN2-style, with equalised learning rate).

Every layer keeps its weights ~ N(0, 1) and scales them by ``1 / sqrt(fan_in)`` at run time, and every
leaky ReLU is followed by a gain of ``sqrt(2)``: activations keep unit scale through all blocks, so the
untrained discriminator already responds to its input. With PyTorch's default initialisation the
activations shrank about 2x per block, the logits of a 128 px discriminator barely depended on the image
(spread 2e-4) and training stalled at chance level for thousands of iterations.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from fastganfit.texture.generator import EqualLinear, channels_for

ACTIVATION_GAIN = math.sqrt(2.0)


def _activate(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * ACTIVATION_GAIN


class EqualConv2d(nn.Module):
    """2D convolution with equalised learning rate (weights scaled at run time by ``1 / sqrt(fan_in)``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, Cin, H, W] -> [B, Cout, H, W]``."""
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs then 2x average pooling, plus a 1x1 pooled skip path; output scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, Cin, H, W] -> [B, Cout, H/2, W/2]``."""
        y = F.avg_pool2d(_activate(self.conv2(_activate(self.conv1(x)))), 2)
        return (y + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2.0)


class TextureDiscriminator(nn.Module):
    """Scores UV textures ``[B, 3, R, R]`` in [-1, 1]: ``[B]`` logits.

    Width mirrors the generator's (``channels_for``). The last stage appends the minibatch standard
    deviation as an extra channel, which discourages mode collapse.
    """

    def __init__(
        self, resolution: int = 128, base_channels: int = 64, max_channels: int = 256
    ) -> None:
        super().__init__()
        channels = channels_for(resolution, base_channels, max_channels)
        sizes = sorted(channels, reverse=True)
        self.from_rgb = EqualConv2d(3, channels[resolution], 1)
        self.blocks = nn.Sequential(
            *(DiscriminatorBlock(channels[high], channels[low]) for high, low in itertools.pairwise(sizes))
        )
        self.final_conv = EqualConv2d(channels[4] + 1, channels[4], 3)
        self.final_fc = EqualLinear(channels[4] * 16, channels[4])
        self.out = EqualLinear(channels[4], 1)
        self.resolution = resolution

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]`` for ``images [B, 3, R, R]``."""
        x = self.blocks(_activate(self.from_rgb(images)))
        spread = x.std(0, unbiased=False).mean() if x.shape[0] > 1 else x.new_zeros(())
        spread = spread.expand(x.shape[0], 1, *x.shape[2:])
        x = _activate(self.final_conv(torch.cat([x, spread], 1)))
        x = _activate(self.final_fc(x.flatten(1)))
        return self.out(x).squeeze(1)
