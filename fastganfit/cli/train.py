"""Training entry point (Hydra): ``python train.py experiment=NAME [trainer=cpu|gpu|ddp|ddp_cpu|slurm]
[logger=csv|wandb|tensorboard]``.

The experiment config provides ``model`` (a LightningModule) and ``data`` (a LightningDataModule);
``ckpt_path=...`` resumes a run with its optimiser state and step. An experiment with ``stages`` (e.g.
``experiment=demo``: alignment, then the full objective) trains each stage in turn, each from the previous
stage's final checkpoint. The model's components are config groups (``facemodel=``, ``texture=``, ``identity=``,
``heatmaps=``, ``lighting=``, ``renderer.``; conf/components/default.yaml); the resolved model config goes into
every checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.exit_status import exit_status
from fastganfit.fitting.package_config import require_component_values
from fastganfit.training.checkpoint_config import ModelConfigInCheckpoint
from fastganfit.training.loggers import (
    close_loggers,
    exit_code_of,
    prepare_logger_environment,
    stage_logger_config,
    start_tracking,
    uploaded_artifact,
)
from fastganfit.training.run_metadata import run_metadata
from fastganfit.training.stages import chain_from, resume_point, stage_configs
from fastganfit.training.tracking import resume_logger_config, training_run_name

#: The experiments, read from the experiment config folder (conf/experiment/*.yaml).
EXPERIMENTS = ", ".join(sorted(path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml")))


def build_model(config: DictConfig) -> L.LightningModule:
    """Instantiate the model config; a component that cannot be built (a missing or wrong asset file, a required
    value left out) ends the run with exit status 2 and the reason, before any data or training work."""
    try:
        return instantiate(config, _convert_="all")
    except (InstantiationException, MissingMandatoryValue) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        print(f"train.py: error: the model could not be built: {cause}", file=sys.stderr)
        sys.exit(2)


def train(cfg: DictConfig, init_artifact: str | None = None) -> tuple[Path, str | None]:
    """Train one configuration; returns the path of its final checkpoint (``<run_dir>/checkpoints/last.ckpt``)
    and the name of the W&B artifact it was uploaded as (``logger.log_model``; else ``None``).
    ``init_artifact``: the artifact of the checkpoint this run starts from (a staged run's previous stage)."""
    L.seed_everything(cfg.seed, workers=True)
    module = build_model(cfg.model)
    prepare_logger_environment(OmegaConf.select(cfg, "logger._target_"))
    resume_logger_config(cfg.get("logger"), cfg.ckpt_path)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values()]
    callbacks.append(ModelConfigInCheckpoint(OmegaConf.to_container(cfg.model, resolve=True)))
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    metadata = run_metadata(OmegaConf.to_container(cfg, resolve=True))
    if init_artifact is not None:
        metadata["lineage.init_artifact"] = init_artifact
    datamodule = instantiate(cfg.data, _convert_="all")
    if trainer.is_global_zero:
        start_tracking(trainer.loggers, module, metadata, init_artifact)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    except BaseException as error:  # stopped or failed: the W&B run says so, and where it is
        if trainer.is_global_zero:
            close_loggers(trainer.loggers, exit_code_of(error))
        raise
    final = Path(str(cfg.run_dir)) / "checkpoints" / "last.ckpt"
    partial = final.with_name(f".{final.name}.partial")
    trainer.save_checkpoint(partial)
    if trainer.is_global_zero:
        partial.replace(final)
    trainer.strategy.barrier("final checkpoint")
    artifact = uploaded_artifact(trainer.loggers)
    if trainer.is_global_zero:
        close_loggers(trainer.loggers)
    return final, artifact


@exit_status
@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.model is None or cfg.data is None:
        print(
            f"error: choose an experiment, e.g. `python train.py experiment=fast_align` ({EXPERIMENTS})",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        require_component_values(cfg)
        stages = stage_configs(cfg)
        stages, previous = resume_point(stages, cfg.ckpt_path)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    artifact = None
    run_name = training_run_name(str(cfg.run_dir))
    for name, stage in stages:
        if name:
            print(f"stage {name!r}: writing to {stage.run_dir}", file=sys.stderr)
            chain_from(stage, previous)
        stage_logger_config(stage.get("logger"), name, run_name)
        previous, artifact = train(stage, init_artifact=artifact)


if __name__ == "__main__":
    main()
