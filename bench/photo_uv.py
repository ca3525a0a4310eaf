"""Photo UV-texture benchmark: UV extraction ms per image (CPU, 224 px crops, 128 and 256 px UV maps, batch 8),
and photos -> UV shards throughput (dlib detection + regression + extraction + shard writing, one process) with a
trained checkpoint. Writes the 'photo_uv' section of BENCHMARKS.md.

Usage: python bench/photo_uv.py [--ckpt outputs/demo/train/full/checkpoints/last.ckpt] [--photos 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import time_call, write_section
from hydra import compose, initialize_config_dir
from PIL import Image
from skimage import data

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.photo_uv_shards import run_part
from fastganfit.data.synthetic import SyntheticFaceSource
from fastganfit.texture.photo_uv import PhotoTextureExtractor

BATCH, SIZE = 8, 224
REPO = Path(__file__).resolve().parent.parent


def extraction_ms(resolution: int, repeats: int) -> float:
    """Median ms per image of :class:`PhotoTextureExtractor` (visibility, albedo, mirror, blend) at batch 8."""
    source = SyntheticFaceSource(seed=0, crop_size=SIZE)
    samples = source.render(list(range(BATCH)))
    image = torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1).float() / 255 for s in samples])
    vertices = torch.stack([torch.from_numpy(s["vertices"]) for s in samples])
    camera = torch.stack([torch.from_numpy(s["params"]["camera"]) for s in samples])
    light = torch.stack([torch.from_numpy(s["params"]["light"]) for s in samples])
    renderer = source.renderer
    extractor = PhotoTextureExtractor(source.model, renderer.camera, renderer.lighting, resolution, backend="torch")
    model_texture = torch.full((BATCH, 3, resolution, resolution), 0.5)

    def extract() -> None:
        with torch.no_grad():
            extractor(image, vertices, camera, light, model_texture)

    return time_call(extract, repeats) / BATCH * 1000


def shard_throughput(ckpt: Path, photos: int) -> float:
    """Photos per second of one part of ``photo_uv_shards`` over ``photos`` copies of the astronaut photo."""
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "photos"
        inputs.mkdir()
        for index in range(photos):
            Image.fromarray(data.astronaut()).save(inputs / f"astronaut{index:03d}.jpg")
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("photo_uv_shards", overrides=[f"input={inputs}", f"output={Path(folder) / 'uv'}",
                                                        f"ckpt={ckpt}", "progress=false", "device=cpu",
                                                        "max_landmark_error=1.0"])  # fmt: skip
        started = time.perf_counter()
        record = run_part(dict(cfg), 0)
        seconds = time.perf_counter() - started
    if record.written != photos:
        raise RuntimeError(f"only {record.written} of {photos} photos gave UV textures: {record.skipped}")
    return photos / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", type=Path, default=REPO / "outputs/demo/train/full/checkpoints/last.ckpt")
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not args.ckpt.is_file():
        print(f"error: checkpoint {args.ckpt} does not exist (make demo trains it, or pass --ckpt)", file=sys.stderr)
        return 1
    rows = []
    for resolution in (128, 256):
        ms = extraction_ms(resolution, args.repeats)
        print(f"UV extraction at {resolution}: {ms:.1f} ms/image", flush=True)
        rows.append(f"| UV extraction, {resolution} px UV map | {ms:.1f} ms/image |")
    rate = shard_throughput(args.ckpt, args.photos)
    print(f"photos -> UV shards: {rate:.2f} photos/s", flush=True)
    rows.append(f"| photos -> UV shards (512 px photos, 256 px UV, regression, 1 process) | {rate:.2f} photos/s |")
    body = "\n".join(
        [
            f"PhotoTextureExtractor on {SIZE} px crops of synthetic faces, batch {BATCH}, CPU, plain-PyTorch "
            f"rasteriser; median of {args.repeats} runs. Throughput: `photo_uv_shards` part 0 over {args.photos} "
            "copies of the astronaut photo (dlib detection and landmarks, the demo checkpoint's regression, "
            "extraction, shard writing; model loading included).",
            "",
            "| step | time |",
            "|---|---|",
            *rows,
        ]
    )
    write_section("photo_uv", body, "python bench/photo_uv.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
