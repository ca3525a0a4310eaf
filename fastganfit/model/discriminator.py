"""Residual discriminator for UV textures (StyleGAN2-style, without equalised learning rate tricks)."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from fastganfit.facemodel.texture_generator import channels_for


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs then 2x average pooling, plus a 1x1 pooled skip path; output scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, Cin, H, W] -> [B, Cout, H/2, W/2]``."""
        y = F.leaky_relu(self.conv1(x), 0.2)
        y = F.avg_pool2d(F.leaky_relu(self.conv2(y), 0.2), 2)
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
        self.from_rgb = nn.Conv2d(3, channels[resolution], 1)
        self.blocks = nn.Sequential(
            *(DiscriminatorBlock(channels[high], channels[low]) for high, low in itertools.pairwise(sizes))
        )
        self.final_conv = nn.Conv2d(channels[4] + 1, channels[4], 3, padding=1)
        self.final_fc = nn.Linear(channels[4] * 16, channels[4])
        self.out = nn.Linear(channels[4], 1)
        self.resolution = resolution

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]`` for ``images [B, 3, R, R]``."""
        x = F.leaky_relu(self.from_rgb(images), 0.2)
        x = self.blocks(x)
        spread = x.std(0, unbiased=False).mean() if x.shape[0] > 1 else x.new_zeros(())
        spread = spread.expand(x.shape[0], 1, *x.shape[2:])
        x = F.leaky_relu(self.final_conv(torch.cat([x, spread], 1)), 0.2)
        x = F.leaky_relu(self.final_fc(x.flatten(1)), 0.2)
        return self.out(x).squeeze(1)
