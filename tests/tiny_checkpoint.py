"""Tiny FastGANFitModule checkpoints in train.py's format (regressor weights + the resolved model config)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fastganfit.regression.module import REGRESSOR_PREFIX, FastGANFitModule
from fastganfit.training.checkpoint_config import CHECKPOINT_CONFIG_KEY

REPO = Path(__file__).resolve().parent.parent
#: train.py overrides that shrink a fast_* experiment's model to test size (64 px crops and renders). Components are
#: set through their config groups (conf/components/default.yaml), the regressor under model.
TINY_MODEL_OVERRIDES = [
    "renderer.image_size=64", "heatmaps.crop_size=64", "heatmaps.heatmap_size=32", "texture.resolution=32",
    "identity.layers=[stage2,stage3]", "model.regressor.adapter_channels=16", "model.regressor.feature_dim=32",
    "model.regressor.hidden=32",
]


def tiny_model_config(experiment: str = "fast_align", overrides: Sequence[str] = TINY_MODEL_OVERRIDES) -> dict:
    """The resolved model config of ``experiment`` at test size, as train.py stores it in its checkpoints."""
    with initialize_config_dir(str(REPO / "fastganfit" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", "model.init_checkpoint=null", *overrides])
    return OmegaConf.to_container(cfg.model, resolve=True)


def save_checkpoint(path: Path, model_config: Mapping[str, Any], regressor_weights: Mapping[str, torch.Tensor]) -> Path:
    """Write a checkpoint as train.py would: the regressor's weights and the model config."""
    state = {REGRESSOR_PREFIX + key: value for key, value in regressor_weights.items()}
    torch.save({"state_dict": state, CHECKPOINT_CONFIG_KEY: {"model": dict(model_config)}}, path)
    return path


def write_tiny_checkpoint(
    path: Path, experiment: str = "fast_align", overrides: Sequence[str] = ()
) -> FastGANFitModule:
    """Build ``experiment``'s module at test size (64 px crops and renders) with train.py ``overrides`` (e.g.
    ``model.colour_map=null``), save it to ``path`` (untrained regressor: the landmark prior's shape and expression,
    mean texture, camera from the landmarks) and return it."""
    config = tiny_model_config(experiment, [*TINY_MODEL_OVERRIDES, *overrides])
    module = instantiate(config, _convert_="all")
    save_checkpoint(path, config, module.regressor.state_dict())
    return module
