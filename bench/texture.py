"""Texture generator benchmark: ms per sample on CPU at batch 8, resolutions 128 and 256 (the shipped
prior's widths), forward and forward+backward to the latent. Writes the 'texture' section of BENCHMARKS.md.

Usage: python bench/texture.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys

import torch
from common import time_call, write_section

from fastganfit.texture.generator import TextureGenerator

BATCH = 8
WIDTHS = {"base_channels": 32, "max_channels": 128}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for resolution in (128, 256):
        generator = TextureGenerator(resolution=resolution, **WIDTHS).eval().requires_grad_(False)
        latent = torch.randn(BATCH, generator.latent_dim)

        def forward(generator: TextureGenerator = generator, latent: torch.Tensor = latent) -> None:
            with torch.no_grad():
                generator(latent)

        def forward_backward(generator: TextureGenerator = generator, latent: torch.Tensor = latent) -> None:
            generator(latent.clone().requires_grad_()).mean().backward()

        forward_ms = time_call(forward, args.repeats) / BATCH * 1000
        backward_ms = time_call(forward_backward, args.repeats) / BATCH * 1000
        parameters = sum(p.numel() for p in generator.parameters()) / 1e6
        print(f"{resolution}: {forward_ms:.1f} ms/sample forward, {backward_ms:.1f} forward+backward", flush=True)
        rows.append(f"| {resolution} | {parameters:.2f} M | {forward_ms:.1f} | {backward_ms:.1f} |")
    body = "\n".join(
        [
            f"TextureGenerator (base_channels={WIDTHS['base_channels']}, max_channels={WIDTHS['max_channels']}, "
            f"w latent), batch {BATCH}, CPU; median of {args.repeats} runs.",
            "",
            "| resolution | parameters | forward ms/sample | forward+backward ms/sample |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    write_section("texture", body, "python bench/texture.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
