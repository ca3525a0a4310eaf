"""The TensorBoard logger: train.py writes event files with the training scalars and the reconstruction grid."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_fast_ganfit import run_train, tiny_train_overrides

from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.io.image_logging import image_folder, log_image_grid


def read_events(folder: Path) -> EventAccumulator:
    """All scalars and images of the event files in ``folder``."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def decoded_image(events: EventAccumulator, tag: str, step: int) -> np.ndarray:
    """The image logged under ``tag`` at ``step``, as uint8 ``[H, W, 3]``."""
    (event,) = [event for event in events.Images(tag) if event.step == step]
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))


def test_image_grid_reaches_tensorboard(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="logs", default_hp_metric=False)
    images = torch.rand(3, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    png = log_image_grid(logger, tmp_path / "images", "train/grid", images, step=7, columns=2)
    logger.finalize("success")
    logged = decoded_image(read_events(Path(logger.log_dir)), "train/grid", 7)
    copy = np.asarray(Image.open(png).convert("RGB"))
    assert logged.shape == copy.shape == (2 * 8 + 3 * 2, 2 * 10 + 3 * 2, 3)  # 2 rows x 2 columns, 2 px padding
    assert np.abs(logged.astype(int) - copy.astype(int)).max() <= 1  # the same picture (rounding aside)


class RankedTrainer:
    """The two trainer attributes :func:`image_folder` reads, counting the reads of ``log_dir`` (a DDP collective)."""

    def __init__(self, log_dir: str, is_global_zero: bool) -> None:
        self._log_dir, self.is_global_zero, self.log_dir_reads = log_dir, is_global_zero, 0

    @property
    def log_dir(self) -> str:
        self.log_dir_reads += 1
        return self._log_dir


def test_image_files_are_written_by_rank_zero_but_every_rank_reads_the_log_dir(tmp_path: Path) -> None:
    rank_zero, other_rank = RankedTrainer(str(tmp_path), True), RankedTrainer(str(tmp_path), False)
    assert image_folder(rank_zero, "images") == tmp_path / "images"
    assert image_folder(other_rank, "images") is None
    assert rank_zero.log_dir_reads == other_rank.log_dir_reads == 1


@pytest.mark.slow
def test_train_py_with_tensorboard_logger(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    generate_synthetic_faces(shards, n=2, seed=0, crop_size=64, progress=False)
    run_dir = tmp_path / "run"
    result = run_train(
        "experiment=fast_align",
        "logger=tensorboard",
        "trainer.max_steps=1",
        f"hydra.run.dir={run_dir}",
        *tiny_train_overrides(shards),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (version,) = (run_dir / "logs").iterdir()
    assert list(version.glob("events.out.tfevents.*"))
    events = read_events(version)
    scalars = set(events.Tags()["scalars"])
    assert {"train/total", "train/landmark", "train/lr"} <= scalars and "hp_metric" not in scalars
    (total,) = events.Scalars("train/total")
    assert total.step == 0 and np.isfinite(total.value) and total.value > 0
    logged = decoded_image(events, "train/reconstruction", 0)
    copy = np.asarray(Image.open(version / "images" / "train_reconstruction_0000000.png").convert("RGB"))
    assert logged.shape == copy.shape and np.abs(logged.astype(int) - copy.astype(int)).max() <= 1

