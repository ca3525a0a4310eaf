"""Send image grids to whichever logger a run uses, and always keep a PNG copy in the run folder."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from torchvision.utils import make_grid

from fastganfit.io.images import save_png


def image_folder(trainer: L.Trainer, name: str) -> Path | None:
    """``<log_dir>/<name>`` on the global-zero process, ``None`` on the others (and without a log dir).

    ``trainer.log_dir`` is read on every rank first: under DDP it is a collective (a broadcast from rank 0),
    so reading it on rank 0 alone would hang the run.
    """
    log_dir = trainer.log_dir
    return Path(log_dir) / name if log_dir and trainer.is_global_zero else None


def log_image_grid(
    logger: Logger | None, folder: str | Path | None, name: str, images: torch.Tensor, step: int, columns: int = 8
) -> Path | None:
    """Log ``images [B, 3, H, W]`` in [0, 1] as one grid under ``name`` at ``step``.

    W&B and TensorBoard loggers receive the grid; a PNG ``{folder}/{name}_{step:07d}.png`` is written
    when ``folder`` is given (every logger, including CSV, so the pictures are never lost).
    """
    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=columns, padding=2, pad_value=1.0)
    if isinstance(logger, WandbLogger):
        logger.log_image(key=name, images=[grid], step=step)
    elif isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(name, grid, global_step=step)
    if folder is None:
        return None
    return save_png(grid, Path(folder) / f"{name.replace('/', '_')}_{step:07d}.png")
