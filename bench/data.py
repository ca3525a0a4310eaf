"""Data benchmark: ``prepare`` images/s (detect, landmarks, align, crop, write shards) and the
FaceDataModule loader's samples/s on synthetic shards, on CPU. Writes the 'data' section of BENCHMARKS.md.

Usage: python bench/data.py [--images 16] [--samples 32] [--batches 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import write_section
from matplotlib.cbook import get_sample_data
from PIL import Image
from skimage import data as skimage_data

from fastganfit.data.datamodule import FaceDataModule
from fastganfit.data.prepare import prepare_images
from fastganfit.data.synthetic import generate_synthetic_faces


def write_photos(folder: Path, count: int) -> None:
    """``count`` JPEGs alternating astronaut and grace_hopper, each slightly rescaled so no two are equal."""
    with get_sample_data("grace_hopper.jpg") as handle:
        hopper = np.asarray(Image.open(handle).convert("RGB"))
    photos = [skimage_data.astronaut(), hopper]
    for index in range(count):
        image = Image.fromarray(photos[index % 2])
        scale = 1.0 + 0.02 * index
        image = image.resize((round(image.width * scale), round(image.height * scale)))
        image.save(folder / f"photo_{index:03d}.jpg", quality=95)


def loader_samples_per_second(urls: Path, num_workers: int, batches: int) -> float:
    """Samples/s of augmented training batches of 8 from ``urls`` (after one warm-up batch)."""
    module = FaceDataModule(str(urls), batch_size=8, num_workers=num_workers, shuffle_buffer=64, epoch_samples=10_000)
    module.setup("fit")
    iterator = iter(module.train_dataloader())
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * 8 / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        write_photos(root / "photos", args.images)
        rates = {}
        for workers in (1, 2):
            report = prepare_images(root / "photos", root / f"prepared_{workers}", workers=workers, progress=False)
            rates[workers] = report.images_per_second
            print(f"prepare, {workers} worker(s): {rates[workers]:.1f} images/s ({report.written} written)", flush=True)
        start = time.perf_counter()
        generate_synthetic_faces(root / "synthetic", args.samples, seed=0, progress=False)
        synthetic_rate = args.samples / (time.perf_counter() - start)
        print(f"synthetic generation: {synthetic_rate:.2f} faces/s", flush=True)
        shards = root / "synthetic"
        loader = {workers: loader_samples_per_second(shards, workers, args.batches) for workers in (0, 1, 2)}
        for workers, rate in loader.items():
            print(f"loader, {workers} worker(s): {rate:.0f} samples/s", flush=True)
    body = "\n".join(
        [
            f"prepare: {args.images} photos (astronaut and grace_hopper, about 512x512 and 600x500, dlib HOG "
            f"detector + 68-point predictor, 224x224 crops). Loader: FaceDataModule over {args.samples} synthetic "
            f"224x224 samples (shuffle buffer 64, photometric augmentation), batches of 8, {args.batches} batches "
            "after one warm-up batch.",
            "",
            "| step | workers | throughput |",
            "|---|---|---|",
            *(f"| prepare | {workers} | {rate:.1f} images/s |" for workers, rate in rates.items()),
            f"| synthetic generation | main process | {synthetic_rate:.2f} faces/s |",
            *(f"| loader | {workers} | {rate:.0f} samples/s |" for workers, rate in loader.items()),
        ]
    )
    write_section("data", body, "python bench/data.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
