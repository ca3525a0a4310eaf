"""The run's model configuration inside every checkpoint, so a checkpoint alone rebuilds its model."""

from __future__ import annotations

from typing import Any

import lightning as L

from fastganfit.regression.checkpoint import CHECKPOINT_CONFIG_KEY
from fastganfit.training.loggers import wandb_run_info

TRACKING_KEY = "tracking"  # checkpoint["fastganfit"]["tracking"]: the W&B run that wrote the checkpoint


class ModelConfigInCheckpoint(L.Callback):
    """Stores ``model_config`` (the resolved ``model`` config train.py instantiated, a plain dict with its
    ``_target_`` keys) in each checkpoint as ``checkpoint["fastganfit"]["model"]``.

    Checkpoints of :class:`~fastganfit.regression.module.FastGANFitModule` hold the regressor's weights only;
    with this config, ``fit.py`` rebuilds the frozen components (face model, texture model, renderer,
    identity network, heatmaps) exactly as the run used them.
    """

    def __init__(self, model_config: dict[str, Any]) -> None:
        self.model_config = model_config

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Add the model config to ``checkpoint``, and the W&B run writing it (``tracking``: project, group, id,
        name) when the run logs to W&B, so that fit.py and evaluate.py runs can join its group."""
        checkpoint[CHECKPOINT_CONFIG_KEY] = {"model": self.model_config}
        run = wandb_run_info(trainer.loggers)
        if run is not None:
            checkpoint[CHECKPOINT_CONFIG_KEY][TRACKING_KEY] = run
