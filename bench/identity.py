"""Identity-network benchmark: images/s of IdentityNet (face chip + network) at batch 8, forward and
forward+backward (gradient to the image), for dlib's ResNet and ArcFace IResNet-50/100 (random weights:
speed does not depend on them). Writes the 'identity' section of BENCHMARKS.md.

Usage: python bench/identity.py [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from common import time_call, write_section

from fastganfit.perception.arcface import build_iresnet
from fastganfit.perception.dlib_resnet import load_dlib_resnet
from fastganfit.perception.face_chip import ArcFaceChipAligner, DlibChipAligner
from fastganfit.perception.identity import IdentityNet

BATCH, SIZE = 8, 224


def face_batch(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images ``[8, 3, 224, 224]`` and landmarks ``[8, 68, 2]`` with the face in the centre."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(BATCH, 3, SIZE, SIZE, generator=generator)
    landmarks = SIZE * (0.3 + 0.4 * torch.rand(BATCH, 68, 2, generator=generator))
    layout = {36: (0.3, 0.4), 39: (0.42, 0.4), 42: (0.58, 0.4), 45: (0.7, 0.4), 30: (0.5, 0.55), 33: (0.5, 0.6)}
    layout |= {48: (0.38, 0.75), 54: (0.62, 0.75)}
    for index, point in layout.items():
        landmarks[:, index] = SIZE * torch.tensor(point)
    return images.to(device), landmarks.to(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    load = os.getloadavg()[0]
    images, landmarks = face_batch(device)
    networks = {
        "dlib ResNet (150x150, 128-D)": IdentityNet(load_dlib_resnet(), DlibChipAligner()),
        "ArcFace IResNet-50 (112x112, 512-D)": IdentityNet(build_iresnet("iresnet50"), ArcFaceChipAligner()),
        "ArcFace IResNet-100 (112x112, 512-D)": IdentityNet(build_iresnet("iresnet100"), ArcFaceChipAligner()),
    }
    rows = []
    for label, network in networks.items():
        network = network.to(device)

        def forward(network: IdentityNet = network) -> None:
            with torch.no_grad():
                network(images, landmarks)

        def forward_backward(network: IdentityNet = network) -> None:
            leaf = images.detach().requires_grad_()
            output = network(leaf, landmarks)
            (output.embedding.square().sum() + sum(a.mean() for a in output.activations)).backward()

        rates = []
        for name, fn in (("forward", forward), ("forward+backward", forward_backward)):
            rate = BATCH / time_call(fn, repeats=args.repeats, warmup=1)
            rates.append(rate)
            print(f"{label:38s} {name:17s} {rate:8.1f} images/s", flush=True)
        rows.append(f"| {label} | {rates[0]:.1f} | {rates[1]:.1f} |")
    body = "\n".join(
        [
            f"IdentityNet: differentiable face chip + network, all layer activations returned; {SIZE}x{SIZE} "
            f"input images, batch {BATCH}, device `{device.type}`; median of {args.repeats} runs after a warm-up. "
            f"Load average when the run started: {load:.1f} (other jobs on the machine slow these numbers down).",
            "",
            "| network | forward (images/s) | forward+backward to the image (images/s) |",
            "|---|---|---|",
            *rows,
        ]
    )
    write_section("identity", body, "python bench/identity.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
