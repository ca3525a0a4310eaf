"""Renderer benchmark: ms per image for each backend, ICT face, 224x224, batch 8, forward and
forward+backward. Writes the 'render' section of BENCHMARKS.md.

Usage: python bench/render.py [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys

import torch
from common import time_call, write_section

from fastganfit.data.random_faces import sample_random_faces
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.render.face_renderer import FaceRenderer

BATCH, SIZE, TEXTURE = 8, 224, 256


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = MorphableModel.ict().to(device)
    faces = sample_random_faces(model, BATCH, torch.Generator().manual_seed(0))
    vertices = model(faces.shape.to(device), faces.expression.to(device))
    texture = torch.rand(BATCH, 3, TEXTURE, TEXTURE, device=device)
    camera, light = faces.camera.to(device), faces.light.to(device)

    rows, results = [], {}
    for backend in ("torch", "pytorch3d"):
        renderer = FaceRenderer.from_model(model, image_size=SIZE, backend=backend).to(device)

        def forward(renderer: FaceRenderer = renderer) -> None:
            with torch.no_grad():
                renderer(vertices, texture, camera, light)

        def forward_backward(renderer: FaceRenderer = renderer) -> None:
            leaf_vertices = vertices.detach().requires_grad_()
            leaf_texture = texture.detach().requires_grad_()
            renderer(leaf_vertices, leaf_texture, camera, light).image.mean().backward()

        repeats = args.repeats if backend == "torch" or device.type == "cuda" else 1
        for name, fn in (("forward", forward), ("forward+backward", forward_backward)):
            ms_per_image = time_call(fn, repeats=repeats, warmup=1) / BATCH * 1000
            results[(backend, name)] = ms_per_image
            print(f"{backend:10s} {name:17s} {ms_per_image:9.1f} ms/image", flush=True)
        rows.append(
            f"| {backend} | {results[(backend, 'forward')]:.1f} | {results[(backend, 'forward+backward')]:.1f} |"
        )
    modes = ("forward", "forward+backward")
    speedup = {name: results[("pytorch3d", name)] / results[("torch", name)] for name in modes}
    body = "\n".join(
        [
            f"ICT face ({model.faces.shape[0]} triangles), {SIZE}x{SIZE}, batch {BATCH}, {TEXTURE}x{TEXTURE} UV "
            f"texture, Phong light, device `{device.type}`; median of {args.repeats} runs (pytorch3d on CPU: 1 run).",
            "",
            "| backend | forward ms/image | forward+backward ms/image |",
            "|---|---|---|",
            *rows,
            "",
            f"torch backend speed-up over pytorch3d: {speedup['forward']:.0f}x forward, "
            f"{speedup['forward+backward']:.0f}x forward+backward.",
        ]
    )
    write_section(f"render ({device.type})", body, f"python bench/render.py --device {device.type}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
