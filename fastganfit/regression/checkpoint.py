"""Rebuild a trained FastGANFitModule from its checkpoint (the model config inside + the regressor's weights).

``train.py`` stores the resolved ``model`` config (a plain dict with ``_target_`` keys) in every checkpoint
as ``checkpoint["fastganfit"]["model"]``; the state dict holds the regressor's weights only. Configs written
before a renaming or before the optimizer / scheduler groups are upgraded as they are read. The frozen
components (face model, texture model, renderer, identity network, heatmaps) are rebuilt from that config.
The config is instantiated with Hydra's ``instantiate``, the tool that wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fastganfit.reconstruction.graph import COMPONENTS, FaceReconstructionGraph
from fastganfit.regression.component_values import ComponentOption, check_component_options
from fastganfit.regression.module import FastGANFitModule, regressor_weights

#: Where train.py stores the resolved model config inside a checkpoint.
CHECKPOINT_CONFIG_KEY = "fastganfit"
#: Modules renamed by the package reorganisation (docs/architecture.md): checkpoints written before it name the
#: old ones in their ``_target_`` keys.
RENAMED_MODULES = {
    "fastganfit.model.build": "fastganfit.regression.build",
    "fastganfit.model.losses": "fastganfit.reconstruction.losses",
    "fastganfit.facemodel.camera": "fastganfit.render.camera",
    "fastganfit.facemodel.lighting": "fastganfit.render.lighting",
    "fastganfit.facemodel.texture_generator": "fastganfit.texture.generator",
    "fastganfit.facemodel.procedural_texture": "fastganfit.texture.procedural",
    "fastganfit.facemodel.pca_texture": "fastganfit.texture.pca",
}


def renamed_targets(config: Any) -> Any:
    """``config`` (nested dicts and lists) with ``_target_`` values of :data:`RENAMED_MODULES` updated."""
    if isinstance(config, list):
        return [renamed_targets(item) for item in config]
    if not isinstance(config, dict):
        return config
    updated = {key: renamed_targets(value) for key, value in config.items()}
    target = updated.get("_target_")
    if isinstance(target, str):
        module, _, name = target.rpartition(".")
        for old, new in RENAMED_MODULES.items():
            if module == old or module.startswith(old + "."):
                updated["_target_"] = f"{new}{module[len(old):]}.{name}"
    return updated


#: FastGANFitModule's optimiser arguments before the optimizer / scheduler config groups, with their defaults then:
#: a checkpoint written before holds them in its model config.
OLD_OPTIMISER_ARGUMENTS: dict[str, Any] = {
    "lr": 1e-4, "weight_decay": 1e-4, "betas": [0.9, 0.999], "schedule": "cosine", "schedule_steps": None,
    "warmup_steps": 0, "min_lr_factor": 0.0, "step_size": 1000, "gamma": 0.1,
}  # fmt: skip


def upgraded_optimiser_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a model config) with the old optimiser arguments (:data:`OLD_OPTIMISER_ARGUMENTS`) replaced by the
    ``optimizer`` and ``scheduler`` partials that give the same optimiser and learning rate per step (AdamW;
    :func:`~fastganfit.regression.lr_schedule.learning_rate_scheduler` with the old ``schedule``). A config without
    them is returned as is."""
    if not set(OLD_OPTIMISER_ARGUMENTS) & set(config):
        return dict(config)
    old = {key: config.get(key, default) for key, default in OLD_OPTIMISER_ARGUMENTS.items()}
    upgraded = {key: value for key, value in config.items() if key not in OLD_OPTIMISER_ARGUMENTS}
    upgraded["optimizer"] = {
        "_target_": "torch.optim.AdamW", "_partial_": True,
        "lr": old["lr"], "weight_decay": old["weight_decay"], "betas": list(old["betas"]),
    }  # fmt: skip
    upgraded["scheduler"] = {
        "_target_": "fastganfit.regression.lr_schedule.learning_rate_scheduler", "_partial_": True,
        "kind": old["schedule"], "total_steps": old["schedule_steps"], "warmup_steps": old["warmup_steps"],
        "min_factor": old["min_lr_factor"], "step_size": old["step_size"], "gamma": old["gamma"],
    }  # fmt: skip
    return upgraded


def build_fast_ganfit_module(model_config: Mapping[str, Any], device: torch.device | str = "cpu") -> FastGANFitModule:
    """Instantiate a FastGANFitModule from a resolved model config (``_target_`` keys), without loading any
    ``init_checkpoint`` or fitting a landmark prior (the weights come next), on ``device``, in eval mode. Raises
    ``ValueError`` when the config builds something else."""
    try:
        module = instantiate(dict(model_config), init_checkpoint=None, fit_prior=False, _convert_="all")
    except InstantiationException as error:
        raise ValueError(f"the model config could not be built: {error}") from error
    if not isinstance(module, FastGANFitModule):
        raise ValueError(f"the model config builds a {type(module).__name__}, not a FastGANFitModule")
    return module.to(device).eval()


def build_graph(model_config: Mapping[str, Any], device: torch.device | str = "cpu") -> FaceReconstructionGraph:
    """The frozen graph of a model config's components alone (no regressor, e.g. for GANFit), on ``device``."""
    components = {name: model_config[name] for name in COMPONENTS}
    target = f"{FaceReconstructionGraph.__module__}.FaceReconstructionGraph.from_components"
    try:
        graph = instantiate({"_target_": target, **components}, _convert_="all")
    except InstantiationException as error:
        raise ValueError(f"the components could not be built: {error}") from error
    return graph.to(device)


@dataclass(frozen=True)
class StoredModel:
    """What a checkpoint written by ``train.py`` holds for rebuilding its FastGANFitModule: the model ``config``
    (old module names updated, :func:`renamed_targets`) and the ``state_dict`` (the regressor's weights among it)."""

    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]


def read_checkpoint(path: str | Path) -> StoredModel:
    """The model config and regressor weights of the checkpoint ``path`` (the file is read once).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not a checkpoint,
    not a fastganfit checkpoint, or has no model config.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (train one: `python train.py experiment=demo`)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"checkpoint {path} is not a PyTorch checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"checkpoint {path} is not a Lightning checkpoint (no 'state_dict')")
    stored = checkpoint.get(CHECKPOINT_CONFIG_KEY)
    if not isinstance(stored, dict):
        raise ValueError(
            f"checkpoint {path} is not a fastganfit checkpoint (no '{CHECKPOINT_CONFIG_KEY}' entry): it was not "
            "written by train.py, or by a version that did not store the model config"
        )
    config = stored.get("model")
    if not isinstance(config, dict) or "_target_" not in config:
        raise ValueError(f"checkpoint {path} has no model config ('{CHECKPOINT_CONFIG_KEY}.model' with a _target_)")
    return StoredModel(upgraded_optimiser_settings(renamed_targets(config)), checkpoint["state_dict"])


def read_model_config(path: str | Path) -> dict[str, Any]:
    """The model config stored in the checkpoint ``path`` (errors: :func:`read_checkpoint`)."""
    return read_checkpoint(path).config


def with_values(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with each dotted key of ``values`` (``identity.weights``) set; ``ValueError`` for a key whose
    parent the config does not have (a value for a component the checkpoint was not trained with)."""
    updated = OmegaConf.create(dict(config))
    for key, value in values.items():
        parent = key.rpartition(".")[0]
        if parent and not isinstance(OmegaConf.select(updated, parent), DictConfig):
            raise ValueError(f"{key}={value}: the checkpoint's model config has no {parent!r} to set it in")
        OmegaConf.update(updated, key, value, merge=True)
    return OmegaConf.to_container(updated)


def load_fast_ganfit(
    path: str | Path,
    device: torch.device | str = "cpu",
    values: Mapping[str, Any] | None = None,
    options: Sequence[ComponentOption] = (),
) -> FastGANFitModule:
    """The FastGANFitModule of a checkpoint written by ``train.py`` (the file read once): its config instantiated
    (with ``init_checkpoint=None``), the regressor's weights loaded, on ``device``, in eval mode. ``values``: dotted
    model config keys set before building (``{"identity.weights": path}``, see :func:`with_values`); ``options``:
    component options asked for, checked against the trained components
    (:func:`~fastganfit.regression.component_values.check_component_options`).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not a fastganfit
    checkpoint of a FastGANFitModule (see :func:`read_checkpoint`) or an option other than the trained one.
    """
    stored = read_checkpoint(path)
    values = dict(values or {})
    check_component_options(stored.config, options, values, str(path))
    config = with_values(stored.config, values)
    try:
        module = build_fast_ganfit_module(config, "cpu")
    except ValueError as error:
        raise ValueError(f"checkpoint {path}: {error}") from error
    module.regressor.load_state_dict(regressor_weights(stored.state_dict, f"checkpoint {path}"))
    return module.to(device).eval()
