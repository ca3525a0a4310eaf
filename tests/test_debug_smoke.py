"""``train.py experiment=fast_align debug=smoke`` (docs/training.md): the whole training path at test size, with
every callback of train.yaml and the W&B logger (offline) exercised, in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.train import train


@pytest.mark.slow  # about 20 s of CPU (module, 16 tiny faces rendered, 4 steps, 2 validations, W&B offline)
def test_debug_smoke_trains_validates_checkpoints_and_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        overrides = ["experiment=fast_align", "debug=smoke", f"run_dir={tmp_path}", f"logger.save_dir={tmp_path}"]
        cfg = compose("train", overrides)
    assert set(cfg.callbacks) == {"checkpoint", "lr_monitor", "checkpoint_on_signal", "validation_panel",
                                  "best_validation"}  # fmt: skip
    final, artifact = train(cfg)
    assert final == tmp_path / "checkpoints" / "last.ckpt" and artifact is None
    checkpoint = torch.load(final, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == cfg.trainer.max_steps == 4
    assert (tmp_path / "checkpoints" / "epoch=1-step=4.ckpt").is_file()  # the checkpoint callback, every 2 steps
    assert checkpoint["fastganfit"]["model"]["optimizer"]["_target_"] == "torch.optim.AdamW"
    images = sorted(path.name for path in (tmp_path / "images").iterdir())
    # training pictures at the steps they were taken (0, 2); a validation's panel and meshes at the step Lightning
    # gives its val/* scalars, one less than the optimiser steps before it (validations after 2 and 4 steps: 1, 3)
    assert images == ["train_reconstruction_0000000.png", "train_reconstruction_0000002.png",
                      "val_panel_0000001.png", "val_panel_0000003.png"]  # fmt: skip
    assert sorted(path.name for path in (tmp_path / "meshes").iterdir()) == ["val_0000001_0.obj", "val_0000003_0.obj"]
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, list((tmp_path / "wandb").iterdir())
    logged = runs[0].read_bytes()
    for key in (b"lr-AdamW", b"val/vertex_error_mm", b"val/panel", b"best/val/vertex_error_mm"):
        assert key in logged, key  # lr_monitor, validation, validation_panel, best_validation
    assert OmegaConf.to_container(cfg.logger)["offline"] is True
