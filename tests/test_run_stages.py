"""Staged training runs (train.py `stages`): stage configs, chaining, resuming, and the model config in checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.training.checkpoint_config import CHECKPOINT_CONFIG_KEY
from fastganfit.training.stages import chain_from, resume_point, stage_configs

REPO = Path(__file__).resolve().parent.parent


def staged_config(run_dir: str = "/runs/x"):
    return OmegaConf.create(
        {
            "run_dir": run_dir,
            "ckpt_path": None,
            "loss": {"landmark": 1.0, "identity": 0.0},
            "model": {"phase": "align", "loss": "${loss}", "init_checkpoint": "???", "lr": 1.0},
            "stages": {
                "align": {"model": {"lr": 2.0, "init_checkpoint": None}},
                "full": {"model": {"phase": "full"}, "loss": {"identity": 10.0}},
            },
        }
    )


def test_stage_configs_merge_overrides_in_order() -> None:
    stages = stage_configs(staged_config())
    assert [name for name, _ in stages] == ["align", "full"]
    align, full = (config for _, config in stages)
    assert align.run_dir == "/runs/x/align" and full.run_dir == "/runs/x/full"
    assert align.model.lr == 2.0 and align.model.phase == "align" and align.model.loss.identity == 0.0
    assert full.model.lr == 1.0 and full.model.phase == "full"
    assert full.model.loss.identity == 10.0 and full.model.loss.landmark == 1.0  # interpolation sees the merge
    assert align.stages is None and full.stages is None


def test_unstaged_config_is_one_run() -> None:
    config = staged_config()
    config.stages = None
    assert stage_configs(config) == [("", config)]


@pytest.mark.parametrize("stages", [{}, [1, 2], {"align": 3}])
def test_malformed_stages_are_rejected(stages) -> None:
    config = staged_config()
    config.stages = stages
    with pytest.raises(ValueError, match="stages"):
        stage_configs(config)


def test_chain_fills_a_missing_or_null_init_checkpoint_only() -> None:
    align, full = (config for _, config in stage_configs(staged_config()))
    assert OmegaConf.is_missing(full.model, "init_checkpoint")
    chain_from(align, Path("/runs/x/earlier/checkpoints/last.ckpt"))
    assert align.model.init_checkpoint == "/runs/x/earlier/checkpoints/last.ckpt"
    chain_from(full, Path("/runs/x/align/checkpoints/last.ckpt"))
    assert full.model.init_checkpoint == "/runs/x/align/checkpoints/last.ckpt"
    chain_from(full, Path("/elsewhere.ckpt"))
    assert full.model.init_checkpoint == "/runs/x/align/checkpoints/last.ckpt"
    without = OmegaConf.create({"model": {"lr": 1.0}})
    chain_from(without, Path("/runs/x/align/checkpoints/last.ckpt"))
    assert "init_checkpoint" not in without.model


def test_resume_point_skips_finished_stages() -> None:
    stages = stage_configs(staged_config())
    remaining, previous = resume_point(stages, "/runs/x/full/checkpoints/epoch=0-step=7.ckpt")
    assert [name for name, _ in remaining] == ["full"]
    assert remaining[0][1].ckpt_path == "/runs/x/full/checkpoints/epoch=0-step=7.ckpt"
    assert previous == Path("/runs/x/align/checkpoints/last.ckpt")
    remaining, previous = resume_point(stages, "/runs/x/align/checkpoints/last.ckpt")
    assert [name for name, _ in remaining] == ["align", "full"] and previous is None
    assert remaining[1][1].ckpt_path is None
    with pytest.raises(ValueError, match="align', 'full"):
        resume_point(stages, "/runs/x/other/checkpoints/last.ckpt")
    assert resume_point(stages, None) == (stages, None)


@pytest.mark.slow
def test_train_py_runs_stages_and_resumes_the_last(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    generate_synthetic_faces(shards, n=4, seed=0, crop_size=64, progress=False)
    overrides = [
        "experiment=fast_align", f"data.train_urls={shards}", f"data.val_urls={shards}", "data.synthetic=null",
        "data.batch_size=2", "data.num_workers=0", "data.shuffle_buffer=0", "data.augment=false",
        "renderer.image_size=64", "heatmaps.crop_size=64", "heatmaps.heatmap_size=32",
        "texture.resolution=32", "identity.layers=[stage3]", "model.regressor.adapter_channels=8",
        "model.regressor.feature_dim=16", "model.regressor.hidden=16", "model.log_images_every_n_steps=0",
        "model.scheduler.warmup_steps=0", "+trainer.enable_progress_bar=false", "trainer.max_steps=1",
        "trainer.log_every_n_steps=1",
        "stages={align:{model:{optimizer:{lr:0.001}}},full:{model:{phase:full,init_checkpoint:null},loss:{identity:10.0,pixel:1.0}}}",
    ]
    run_dir = tmp_path / "run"
    command = [sys.executable, str(REPO / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    align_last = run_dir / "align" / "checkpoints" / "last.ckpt"
    full_last = run_dir / "full" / "checkpoints" / "last.ckpt"
    align = torch.load(align_last, map_location="cpu", weights_only=True)
    full = torch.load(full_last, map_location="cpu", weights_only=True)
    assert align["global_step"] == 1 and full["global_step"] == 1
    assert full["hyper_parameters"]["init_checkpoint"] == str(align_last)
    assert full["hyper_parameters"]["phase"] == "full"
    stored = full[CHECKPOINT_CONFIG_KEY]["model"]
    assert stored["phase"] == "full" and stored["loss"]["identity"] == 10.0 and stored["regressor"]["hidden"] == 16
    assert "${" not in str(stored), "the stored model config is resolved"
    assert list((run_dir / "full" / "logs").rglob("metrics.csv"))

    resumed = subprocess.run(
        [*command[:-1], "trainer.max_steps=2", f"ckpt_path={full_last}", f"hydra.run.dir={tmp_path / 'resumed'}"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (tmp_path / "resumed" / "align").exists(), "the finished stage is not trained again"
    state = torch.load(tmp_path / "resumed" / "full" / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=True)
    assert state["global_step"] == 2 and state["hyper_parameters"]["init_checkpoint"] == str(align_last)
