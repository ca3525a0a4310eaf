"""fit.py over degenerate inputs, in subprocesses (a crash of the process is what is looked for): random sizes of
1-64 px in every pixel mode, strips of odd aspect ratios, random bytes, empty and truncated files, next to good
photos. Every run must exit 0 or 1 (never a signal or a traceback), print its summary line and write every good
photo.

Size: ``FASTGANFIT_FUZZ_ROUNDS`` runs (default 1) of ``FASTGANFIT_FUZZ_FILES`` degenerate files each (default 16),
seed ``FASTGANFIT_FUZZ_SEED`` (default 0). Full size (docs/fitting.md, section "Exit status"):
``FASTGANFIT_FUZZ_ROUNDS=10 FASTGANFIT_FUZZ_FILES=120 python -m pytest tests/test_fit_fuzz.py -s``.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from tiny_checkpoint import write_tiny_checkpoint

REPO = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("FASTGANFIT_FUZZ_ROUNDS", "1"))
FILES = int(os.environ.get("FASTGANFIT_FUZZ_FILES", "16"))
SEED = int(os.environ.get("FASTGANFIT_FUZZ_SEED", "0"))
MODES = ("RGB", "L", "RGBA", "P", "1", "I;16", "CMYK", "LA", "F")
FORMATS = {"png": ("RGB", "L", "RGBA", "P", "1", "I;16", "LA"), "jpg": ("RGB", "L", "CMYK"),
           "bmp": ("RGB", "L", "P", "1"), "gif": ("P", "L"), "tif": MODES, "webp": ("RGB", "RGBA")}  # fmt: skip
SUMMARY = re.compile(r"fit\.py: reconstructed (\d+) of (\d+) images")


def encoded(image: Image.Image, suffix: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format={"jpg": "JPEG", "tif": "TIFF"}.get(suffix, suffix.upper()))
    return buffer.getvalue()


def noise_image(rng: np.random.Generator, width: int, height: int, mode: str) -> Image.Image:
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    return image.convert("L").convert(mode) if mode in ("I;16", "F") else image.convert(mode)


def degenerate_file(rng: np.random.Generator, good: bytes) -> tuple[str, bytes]:
    """One degenerate input: (suffix, content)."""
    kind = rng.integers(6)
    suffix = str(rng.choice(list(FORMATS)))
    if kind <= 1:  # a tiny image, 1-64 px a side
        mode = str(rng.choice(FORMATS[suffix]))
        width, height = (int(side) for side in rng.integers(1, 65, 2))
        return suffix, encoded(noise_image(rng, width, height, mode), suffix)
    if kind == 2:  # a strip: odd aspect ratio
        short, long = int(rng.integers(1, 40)), int(rng.integers(64, 1500))
        width, height = (short, long) if rng.random() < 0.5 else (long, short)
        return suffix, encoded(noise_image(rng, width, height, "RGB"), suffix if suffix != "gif" else "png")
    if kind == 3:  # random bytes under an image name
        return suffix, rng.bytes(int(rng.integers(0, 4096)))
    if kind == 4:  # a good photo cut short
        return "jpg", good[: int(rng.integers(0, len(good)))]
    header = encoded(noise_image(rng, 48, 48, "RGB"), "png")  # a valid header, then garbage
    return "png", header[:33] + rng.bytes(int(rng.integers(0, 512)))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt"
    write_tiny_checkpoint(path)
    return path


@pytest.mark.parametrize("round_index", range(ROUNDS))
def test_fit_py_survives_degenerate_images(checkpoint: Path, tmp_path: Path, round_index: int) -> None:
    rng = np.random.default_rng([SEED, round_index])
    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut = Image.fromarray(data.astronaut())
    good = encoded(astronaut, "jpg")
    (photos / "good_astronaut.jpg").write_bytes(good)
    astronaut.convert("L").save(photos / "good_gray.png")
    for index in range(FILES):
        suffix, content = degenerate_file(rng, good)
        (photos / f"bad_{index:04d}.{suffix}").write_bytes(content)
    command = [
        sys.executable, str(REPO / "fit.py"), f"ckpt={checkpoint}", f"image={photos}", f"output={tmp_path / 'out'}",
        "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode in (0, 1), f"exit {result.returncode}\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    summary = SUMMARY.search(result.stdout)
    assert summary is not None, result.stdout[-2000:] + result.stderr[-2000:]
    assert int(summary.group(2)) == FILES + 2
    for name in ("good_astronaut", "good_gray"):
        assert (tmp_path / "out" / name / "mesh.obj").is_file(), result.stderr[-4000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == FILES - (int(summary.group(1)) - 2)  # every other input: one line naming it
    assert all(re.match(rf"error: {re.escape(str(photos))}/bad_\d{{4}}\.\w+: ", line) for line in errors)
    unexpected = [line for line in errors if ": failed (" in line]  # an exception from a detector, not a check
    assert not unexpected, unexpected
    print(f"fuzz round {round_index}: {FILES + 2} inputs, {summary.group(1)} written, {len(errors)} refused, "
          f"exit {result.returncode}")  # fmt: skip
