"""Training entry point (Hydra): ``python train.py experiment=NAME [trainer=cpu|gpu|ddp|slurm] [logger=csv|wandb]``.

The experiment config provides ``model`` (a LightningModule) and ``data`` (a LightningDataModule);
``ckpt_path=...`` resumes a run with its optimiser state and step.
"""

from __future__ import annotations

import sys

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fastganfit.training import prepare_logger_environment


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.model is None or cfg.data is None:
        experiments = "fast_align, fast_full, texture_gan, texture_gan_procedural"
        print(f"error: choose an experiment, e.g. `python train.py experiment=fast_align` ({experiments})",
              file=sys.stderr)
        sys.exit(2)
    L.seed_everything(cfg.seed, workers=True)
    prepare_logger_environment(OmegaConf.select(cfg, "logger._target_"))
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values()]
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    module = instantiate(cfg.model, _convert_="all")
    datamodule = instantiate(cfg.data, _convert_="all")
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)


if __name__ == "__main__":
    main()
