"""Cluster configurations: every trainer's precision, DDP without buffer broadcast on GPUs, and the SLURM sweep
launcher (hydra-submitit-launcher) composed and instantiated as docs/training_operations.md shows them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parent.parent
CONF = str(REPO / "fastganfit" / "conf")


@pytest.mark.parametrize(
    ("trainer", "precision"), [("cpu", 32), ("ddp_cpu", 32), ("gpu", "bf16-mixed"), ("ddp", "bf16-mixed"),
                               ("slurm", "bf16-mixed")],
)  # fmt: skip
def test_every_trainer_sets_its_precision(trainer: str, precision: str | int) -> None:
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=fast_full", f"trainer={trainer}"])
    assert cfg.trainer.precision == precision
    if trainer in ("ddp", "slurm"):
        assert cfg.trainer.strategy.broadcast_buffers is False and cfg.trainer.sync_batchnorm is True
    if trainer in ("ddp", "slurm", "ddp_cpu"):
        assert cfg.trainer.strategy.find_unused_parameters is False  # every regressor step uses every parameter


@pytest.mark.parametrize("trainer", ["ddp", "ddp_cpu", "slurm"])
def test_texture_gan_lets_ddp_find_unused_parameters(trainer: str) -> None:
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=texture_gan_procedural", f"trainer={trainer}"])
    assert cfg.trainer.strategy.find_unused_parameters is True


def test_cpu_trainer_instantiates_with_each_precision(tmp_path: Path) -> None:
    for precision, resolved in (
        ("32", "32-true"),
        ("bf16-mixed", "bf16-mixed"),
        ("16-mixed", "bf16-mixed"),
    ):  # CPU: Lightning uses bf16
        with initialize_config_dir(CONF, version_base="1.3"):
            cfg = compose("train", overrides=["experiment=fast_align", f"trainer.precision={precision}",
                                              f"hydra.run.dir={tmp_path}"], return_hydra_config=True)  # fmt: skip
        trainer = instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False)
        assert trainer.precision == resolved


def test_slurm_sweep_launcher_composes_and_instantiates(tmp_path: Path) -> None:
    # the docs' command: python train.py -m hydra/launcher=slurm_gpu trainer=slurm experiment=fast_full ...
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm_gpu", "trainer=slurm", "experiment=fast_full", "loss.identity=1.0",
                       "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}"],
            return_hydra_config=True,
        )  # fmt: skip
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.gpus_per_node == launcher.tasks_per_node == 8 and launcher.partition == "gpu"
    assert launcher.max_num_timeout == 10 and launcher.submitit_folder == f"{tmp_path}/.submitit/%j"
    assert type(instantiate(launcher)).__name__ == "SlurmLauncher"
