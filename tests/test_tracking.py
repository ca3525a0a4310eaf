"""W&B tracking: offline runs of train.py (one run per stage), fit.py and evaluate.py, read back with W&B's own
protobuf records (fastganfit.training.wandb_offline); no network, no mock of W&B."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import wandb
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image
from skimage import data
from test_fast_ganfit import tiny_train_overrides
from test_loggers import read_events
from wandb.proto import wandb_internal_pb2

from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.io.mesh_export import read_obj
from fastganfit.training.loggers import RunLogger, close_loggers, exit_code_of, start_tracking
from fastganfit.training.run_metadata import flatten
from fastganfit.training.wandb_offline import BLOCK, OfflineRun, find_runs, read_records

REPO = Path(__file__).resolve().parent.parent
#: a staged run (align 4 steps, full 2 steps) validating every 2 steps, as a tiny test
STAGES = "+stages={align:{trainer:{max_steps:4}},full:{model:{phase:full},loss:{identity:1.0},trainer:{max_steps:2}}}"
VALIDATE_EVERY_2 = ["+trainer.val_check_interval=2", "+trainer.check_val_every_n_epoch=null"]


def offline_env(root: Path) -> dict[str, str]:
    """The environment of an offline W&B command: no API key, W&B files under ``root``."""
    env = {key: value for key, value in os.environ.items() if key != "WANDB_API_KEY"}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(root), WANDB_CONFIG_DIR=str(root / "config"),
               WANDB_CACHE_DIR=str(root / "cache"), WANDB_DATA_DIR=str(root / "data"), NETRC=str(root / "netrc"),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # fmt: skip
    return env


def validation_steps(run: OfflineRun, key: str = "val/panel") -> list[int]:
    """The steps ``key`` was logged at (a validation's: Lightning's logger step, one less than the optimiser steps
    done when validation runs after a training batch)."""
    return [row["trainer/global_step"] for row in run.history if key in row]


def assert_validation_steps_align(run: OfflineRun) -> list[int]:
    """The validation scalars, panel, table and meshes of ``run`` are logged at the same steps; returns them."""
    steps = validation_steps(run, "val/vertex_error_mm")
    for key in ("val/panel", "val/faces", "val/meshes"):
        assert validation_steps(run, key) == steps, key
    return steps


def run_script(script: str, *overrides: str, root: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / script), *overrides]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600, env=offline_env(root))


def frame(payload: bytes, kind: int) -> bytes:
    """One LevelDB-log chunk: CRC32, length, type, payload."""
    return zlib.crc32(payload).to_bytes(4, "little") + len(payload).to_bytes(2, "little") + bytes([kind]) + payload


def test_read_records_joins_chunks_across_blocks_and_skips_padding(tmp_path: Path) -> None:
    small = wandb_internal_pb2.Record()
    small.run.run_id = "abc"
    big = wandb_internal_pb2.Record()
    big.history.item.add(key="val/x", value_json=json.dumps("y" * 40000))  # longer than a 32 KiB block
    body = frame(small.SerializeToString(), 1)
    payload = big.SerializeToString()
    first_room = BLOCK - 7 - len(body) - 7  # what fits after the file header, the small record and a chunk header
    body += frame(payload[:first_room], 2)
    rest = payload[first_room:]
    body += frame(rest[: BLOCK - 7], 3) + frame(rest[BLOCK - 7 :], 4)
    path = tmp_path / "run-abc.wandb"
    path.write_bytes(b":W&B\x00\x00\x01" + body)
    records = read_records(path)
    assert [record.WhichOneof("record_type") for record in records] == ["run", "history"]
    assert records[0].run.run_id == "abc" and records[1].history.item[0].value_json == json.dumps("y" * 40000)
    (tmp_path / "other.wandb").write_bytes(b"not a run")
    with pytest.raises(ValueError, match="not a W&B run file"):
        read_records(tmp_path / "other.wandb")


def test_flatten_gives_dotted_keys() -> None:
    config = {"loss": {"landmark": 2.0, "extra": {}}, "heads": ["shape", "camera"], "stages": [{"lr": 1}], "seed": 0}
    assert flatten(config) == {
        "loss.landmark": 2.0, "loss.extra": None, "heads": ["shape", "camera"], "stages.0.lr": 1, "seed": 0,
    }  # fmt: skip


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    generate_synthetic_faces(folder, n=4, seed=0, crop_size=64, progress=False)
    return folder


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, shards: Path) -> tuple[Path, list[OfflineRun], str]:
    """A staged train.py run (align -> full) logging to W&B offline with ``log_model=true``."""
    root = tmp_path_factory.mktemp("staged")
    result = run_script(
        "train.py", "experiment=fast_align", "logger=wandb", "logger.log_model=true", "logger.tags=[tiny,test]",
        f"hydra.run.dir={root / 'run'}", *tiny_train_overrides(shards), "trainer.max_steps=4", *VALIDATE_EVERY_2,
        STAGES, root=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run", find_runs(root / "run"), result.stderr


@pytest.mark.slow
def test_staged_run_gives_one_wandb_run_per_stage_in_one_group(staged) -> None:
    _, runs, stderr = staged
    assert [run.job_type for run in runs] == ["align", "full"]
    assert {run.group for run in runs} == {"run"} and [run.name for run in runs] == ["run-align", "run-full"]
    assert all(run.tags == ["tiny", "test"] for run in runs)
    for run in runs:  # one line per run says where it is and how to upload it
        assert f"W&B: offline run in {run.folder}; upload it with `wandb sync {run.folder}`" in stderr
    align, full = runs
    assert len(align.values("val/vertex_error_mm")) == 2 and len(full.values("val/vertex_error_mm")) == 1
    assert validation_steps(align) == [1, 3] and validation_steps(full) == [1]  # each stage counts from 0
    assert assert_validation_steps_align(align) == [1, 3] and assert_validation_steps_align(full) == [1]


@pytest.mark.slow
def test_run_config_holds_the_resolved_config_and_metadata(staged) -> None:
    run_dir, (align, full), _ = staged
    for run, identity in ((align, 0.0), (full, 1.0)):
        config = run.config
        assert config["loss.landmark"] == 1.0 and config["loss.shape"] == 0.003 and config["loss.identity"] == identity
        assert config["model.texture._target_"] == "fastganfit.texture.pca.load_portrait_texture_prior"
        assert config["model.renderer.image_size"] == 64 and config["model.identity.layers"] == ["stage2", "stage3"]
        assert config["data.batch_size"] == 2 and config["data.train_urls"] == config["data.val_urls"]
        assert config["seed"] == 0 and config["trainer.max_steps"] == (4 if run is align else 2)
        assert len(config["git.commit"]) == 40 and isinstance(config["git.dirty"], bool)
        assert config["versions.torch"] == importlib.metadata.version("torch") and config["machine.cpus"] >= 1
        assert config["command.experiment"] == "fast_align" and config["command.job"] == "train"
        assert "logger=wandb" in config["command.overrides"] and "trainer.max_steps=4" in config["command.overrides"]
    assert config["model.phase"] == "full" and align.config["model.phase"] == "align"
    assert full.config["model.init_checkpoint"] == str(run_dir / "align" / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_validation_panel_shows_the_same_faces_at_every_validation(staged) -> None:
    run_dir, (align, _), _ = staged
    panels = align.values("val/panel")
    assert len(panels) == 2 and panels[0]["captions"] == panels[1]["captions"]
    assert len(set(panels[0]["captions"])) == 4 and panels[0]["count"] == 4
    assert panels[0]["width"] == 5 * 64 and panels[0]["height"] == 64  # input | render | overlay | UV | side
    files = sorted((align.files / "media" / "images" / "val").glob("panel_*.png"))
    assert files and all(Image.open(path).size == (5 * 64, 64) for path in files)
    saved = np.asarray(Image.open(run_dir / "align" / "images" / "val_panel_0000003.png").convert("RGB"))
    for index, name in enumerate(panels[1]["filenames"]):  # the PNG copy: one row per face, 2 px padding
        logged = np.asarray(Image.open(align.files / name).convert("RGB")).astype(int)
        row = saved[2 + index * 66 : 66 + index * 66, 2 : 2 + 5 * 64].astype(int)
        assert np.abs(row - logged).max() <= 1 and logged.std() > 10
    (meshes, _) = align.values("val/meshes")
    assert meshes["_type"] == "object3D" and meshes["count"] == 2
    assert [item["caption"] for item in meshes["objects"]] == panels[0]["captions"][:2]
    obj = (align.files / meshes["objects"][0]["path"]).read_text()
    assert obj.count("\nv ") > 1000 and "\nf " in obj
    logged_tables = align.values("val/faces")
    assert len(logged_tables) == 2 and logged_tables[0]["_type"] == "table-file" and logged_tables[0]["nrows"] == 4
    first, last = align.tables("val/faces")
    assert last.columns[:2] == ["face_id", "landmark_error_px"] and "vertex_error_mm" in last.columns
    assert [row["face_id"] for row in first.rows()] == [row["face_id"] for row in last.rows()] == panels[0]["captions"]
    thumbnail = Image.open(last.files[last.rows()[0]["panel"]["path"]])
    assert thumbnail.size == (5 * 64, 64)
    errors = [row["vertex_error_mm"] for row in last.rows()]
    logged = align.values("val/vertex_error_mm")[-1]
    assert np.mean(errors) == pytest.approx(logged, rel=1e-4)  # the 4 faces are the whole validation set


@pytest.mark.slow
def test_summary_holds_the_best_validation_error_and_its_step(staged) -> None:
    _, runs, _ = staged
    for run in runs:
        errors = run.values("val/vertex_error_mm")
        best = int(np.argmin(errors))
        assert run.summary["best/val/vertex_error_mm"] == pytest.approx(errors[best])
        assert run.summary["best/step"] == validation_steps(run, "val/vertex_error_mm")[best]


@pytest.mark.slow
def test_checkpoints_are_artifacts_with_config_and_metric_and_full_records_align(staged) -> None:
    run_dir, (align, full), _ = staged
    models = [artifact for artifact in align.artifacts if artifact["type"] == "model"]
    assert models and {artifact["name"] for artifact in models} == {f"model-{align.run_id}"}
    steps = [artifact["metadata"]["step"] for artifact in models]
    assert len(steps) == len(set(steps))  # a best and a last file of one step: one artifact
    for run in (align, full):  # every staged file (checkpoints, tables) lies inside the run's own folder
        staged_files = [Path(path) for artifact in run.artifacts for path in artifact["files"].values()]
        assert staged_files and all(path.is_relative_to(run.folder) and path.is_file() for path in staged_files)
    metadata = models[-1]["metadata"]
    assert metadata["config"]["loss.landmark"] == 1.0 and metadata["step"] == 4
    assert metadata["metrics"]["val/vertex_error_mm"] == pytest.approx(align.values("val/vertex_error_mm")[-1])
    assert full.config["lineage.init_artifact"] == f"model-{align.run_id}:latest"
    saved = torch.load(run_dir / "full" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["fastganfit"]["tracking"] == {"project": "fastganfit", "group": "run", "id": full.run_id,
                                               "name": "run-full"}  # fmt: skip


@pytest.mark.slow
def test_tensorboard_holds_the_same_scalar_names(staged, shards: Path, tmp_path: Path) -> None:
    _, (align, _), _ = staged
    result = run_script(
        "train.py", "experiment=fast_align", "logger=tensorboard", f"hydra.run.dir={tmp_path / 'run'}",
        *tiny_train_overrides(shards), "trainer.max_steps=4", *VALIDATE_EVERY_2, root=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (version,) = (tmp_path / "run" / "logs").iterdir()
    events = read_events(version)
    tensorboard = {tag for tag in events.Tags()["scalars"] if tag.startswith(("train/", "val/"))}
    wandb_scalars = {key for row in align.history for key, value in row.items()
                     if key.startswith(("train/", "val/")) and isinstance(value, (int, float))}  # fmt: skip
    assert tensorboard == wandb_scalars and {"train/total", "train/lr", "val/vertex_error_mm"} <= tensorboard
    assert [event.step for event in events.Images("val/panel")] == [1, 3]  # the steps of the validation scalars
    assert [event.step for event in events.Scalars("val/vertex_error_mm")] == [1, 3]


@pytest.mark.slow
def test_fit_py_logs_its_results_table_in_the_training_runs_group(staged, tmp_path: Path) -> None:
    run_dir, (_, full), _ = staged
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    result = run_script(
        "fit.py", f"ckpt={run_dir / 'full' / 'checkpoints' / 'last.ckpt'}", f"image={tmp_path / 'astronaut.png'}",
        "refine=true", "refinement.stages.align.steps=1", "refinement.stages.full.steps=1",
        "refinement.stages.colour.steps=1", "logger=wandb", f"output={tmp_path / 'out'}", "progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}", root=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = find_runs(tmp_path / "hydra")
    assert run.group == full.group == "run" and run.job_type == "fit" and run.config["refine"] is True
    assert run.name == "fit-run-full" and run.exit_code == 0
    assert run.config["training_run.id"] == full.run_id
    assert run.values("fit/results")[0]["nrows"] == 1
    (table,) = run.tables("fit/results")
    assert table.columns[:8] == ["image", "method", "input", "render", "overlay", "texture", "side", "points"]
    assert "full/landmark" in table.columns and len(table.data) == 1
    (row,) = table.rows()
    assert row["image"].endswith("astronaut.png") and row["method"] == "regression + GANFit++ refinement"
    fit_info = json.loads((tmp_path / "out" / "astronaut" / "fit.json").read_text())
    assert row["full/landmark"] == pytest.approx(fit_info["batch_objective"]["full"]["last"]["landmark"])
    points = json.loads(table.files[row["points"]["path"]].read_text())
    mesh = read_obj(tmp_path / "out" / "astronaut" / "mesh.obj")
    assert np.allclose(points, mesh.vertices, atol=1e-3)  # the mesh's vertices as a point cloud
    (meshes,) = run.values("fit/meshes")
    assert meshes["objects"][0]["caption"] == row["image"]
    assert (run.files / meshes["objects"][0]["path"]).read_text().count("\nv ") == len(mesh.vertices)
    assert Image.open(table.files[row["input"]["path"]]).size == (64, 64)
    overlay = np.asarray(Image.open(table.files[row["overlay"]["path"]]).convert("RGB"))
    assert np.array_equal(
        overlay, np.asarray(Image.open(tmp_path / "out" / "astronaut" / "overlay.png").convert("RGB"))
    )
    assert run.values("fit/reconstructed") == [1] and run.values("fit/failed") == [0]


@pytest.mark.slow
def test_evaluate_py_logs_table_curve_and_maps_in_the_training_runs_group(staged, tmp_path: Path) -> None:
    run_dir, (_, full), _ = staged
    result = run_script(
        "evaluate.py", "benchmark=synthetic", f"ckpt={run_dir / 'full' / 'checkpoints' / 'last.ckpt'}",
        "benchmark.n=2", "benchmark.batch_size=2", "benchmark.refine=null", "benchmark.icp_max_iterations=2",
        "benchmark.num_examples=1", "benchmark.map_size=48", "benchmark.progress=false", "benchmark.device=cpu",
        "logger=wandb", f"output_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'run'}", root=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = find_runs(tmp_path / "run")
    assert run.group == full.group and run.job_type == "evaluate" and run.name == "evaluate-synthetic-run-full"
    (table,) = run.tables("evaluate/results")
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert table.columns == written["columns"] and [row[0] for row in table.data] == ["mean face", "regression"]
    assert table.data[1][1] == pytest.approx(written["rows"][1][1])
    assert run.summary[f"evaluate/regression/{written['columns'][1]}"] == pytest.approx(written["rows"][1][1])
    for name in ("cumulative_error", "error_maps"):
        (image,) = run.values(f"evaluate/{name}")
        assert Image.open(run.files / image["path"]).size == Image.open(tmp_path / "out" / f"{name}.png").size


def test_evaluate_py_rejects_a_logger_other_than_wandb(tmp_path: Path) -> None:
    result = run_script("evaluate.py", "logger=csv", f"hydra.run.dir={tmp_path}", root=tmp_path)
    assert result.returncode == 2 and "log to W&B only (logger=wandb)" in result.stderr


def compose_train(*overrides: str, hydra_config: bool = False) -> DictConfig:
    with initialize_config_dir(str(REPO / "fastganfit" / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


def test_sweep_configs_compose_into_training_runs() -> None:
    hydra_sweep = compose_train("experiment=fast_full", "+sweep=loss_weights", hydra_config=True)
    params = hydra_sweep.hydra.sweeper.params
    assert dict(params) == {"loss.identity": "5.0,10.0,20.0", "loss.content": "0.1,0.2"}
    assert hydra_sweep.logger._target_ == "fastganfit.training.loggers.RunLogger"
    assert hydra_sweep.logger.group == "loss_weights"
    sweep = yaml.safe_load((REPO / "scripts" / "wandb_sweep_loss_weights.yaml").read_text())
    assert sweep["program"] == "train.py" and sweep["metric"] == {"name": "val/vertex_error_mm", "goal": "minimize"}
    fixed = [argument for argument in sweep["command"] if not argument.startswith("${")]
    sampled = {
        name: spec["values"][-1] if "values" in spec else spec["max"] for name, spec in sweep["parameters"].items()
    }
    cfg = compose_train(*fixed, *(f"{name}={value}" for name, value in sampled.items()))  # as the agent runs it
    assert (cfg.loss.identity, cfg.loss.content, cfg.loss.landmark) == (20.0, 0.2, 50.0)
    assert cfg.logger.group == "wandb_loss_weights" and cfg.model.phase == "full"


@pytest.mark.slow
def test_hydra_multirun_sweep_gives_one_wandb_run_per_job_in_one_group(shards: Path, tmp_path: Path) -> None:
    result = run_script(
        "train.py", "-m", "experiment=fast_full", "+sweep=loss_weights", "loss.identity=1.0,2.0", "loss.content=0.0",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", *tiny_train_overrides(shards), "trainer.max_steps=1",
        "model.init_checkpoint=null", root=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = find_runs(tmp_path / "sweep")
    assert {run.group for run in runs} == {"loss_weights"} and len(runs) == 2
    assert sorted(run.name for run in runs) == ["fast_full-0 loss.identity=1.0", "fast_full-1 loss.identity=2.0"]
    assert sorted(run.config["loss.identity"] for run in runs) == [1.0, 2.0]


class Line(L.LightningModule):
    """A one-layer regression, enough for Lightning to train and W&B to watch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        return torch.nn.functional.mse_loss(self.layer(inputs), targets)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_watch_logs_gradient_histograms_and_bad_options_are_named(tmp_path: Path, monkeypatch) -> None:
    for key, value in offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=r"logger\.watch must be one of"):
        RunLogger(save_dir=str(tmp_path), watch="weights")
    with pytest.raises(ValueError, match=r"logger\.log_model must be false, true or all"):
        RunLogger(save_dir=str(tmp_path), log_model="best")
    logger = RunLogger(save_dir=str(tmp_path), project="test", watch="gradients", watch_every_n_steps=1)
    module = Line()
    start_tracking([logger], module, {"loss.landmark": 2.0})
    data = torch.utils.data.TensorDataset(torch.randn(8, 3), torch.randn(8, 1))
    trainer = L.Trainer(max_steps=3, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1)  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=2))
    close_loggers([logger])
    wandb.teardown()  # the run file is complete once W&B's service has stopped
    (run,) = find_runs(tmp_path)
    assert run.config["loss.landmark"] == 2.0
    histograms = run.values("gradients/layer.weight")
    assert histograms and histograms[0]["_type"] == "histogram" and sum(histograms[0]["values"]) == 3


@pytest.mark.parametrize(("exit_code", "state"), [(0, None), (1, "failed"), (143, "stopped")])
def test_closed_runs_record_how_they_ended_and_say_where_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, exit_code: int, state: str | None
) -> None:
    for key, value in offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    logger = RunLogger(save_dir=str(tmp_path), project="test")
    logger.log_metrics({"val/x": 1.0}, step=0)
    staged = tmp_path / "checkpoint.ckpt"
    staged.write_bytes(b"weights")
    artifact = wandb.Artifact("model-test", type="model")
    artifact.add_file(str(staged), name="model.ckpt")
    logger.experiment.log_artifact(artifact)
    close_loggers([logger], exit_code)
    wandb.teardown()
    (run,) = find_runs(tmp_path)
    assert run.exit_code == exit_code and run.preempting == (state == "stopped")
    stderr = capsys.readouterr().err
    assert f"W&B: offline run in {run.folder}; upload it with `wandb sync {run.folder}`" in stderr
    assert (f"W&B: run {run.run_id} marked {state} (exit code {exit_code})" in stderr) == (state is not None)
    (logged,) = run.artifacts
    assert Path(logged["files"]["model.ckpt"]).is_relative_to(run.folder)  # staged inside the run's folder


def test_exit_codes_of_stopped_and_failed_runs() -> None:
    assert exit_code_of(None) == 0 and exit_code_of(RuntimeError("x")) == 1 and exit_code_of(KeyboardInterrupt()) == 130
    assert exit_code_of(SystemExit(143)) == 143 and exit_code_of(SystemExit(None)) == 0


def test_docs_tracking_commands_compose() -> None:
    """Every train.py / fit.py / evaluate.py command of docs/tracking.md composes (the submitit launcher,
    an optional plugin, aside)."""
    text = (REPO / "docs" / "tracking.md").read_text().replace("<run>", "2026-01-01_12-00-00")  # placeholder filled
    commands = [
        re.split(r"\s+#", line)[0].split() for line in text.splitlines() if line.startswith(".venv/bin/python ")
    ]
    scripts = {"train.py": "train", "fit.py": "fit", "evaluate.py": "evaluate"}
    composed = 0
    for command in commands:
        if command[1] not in scripts or any(word.startswith("hydra/launcher=") for word in command):
            continue
        overrides = [word for word in command[2:] if word != "-m"]
        with initialize_config_dir(str(REPO / "fastganfit" / "conf"), version_base="1.3"):
            cfg = compose(scripts[command[1]], overrides=overrides)
        assert cfg.logger._target_ == "fastganfit.training.loggers.RunLogger", command
        composed += 1
    assert composed == 6


def test_stopped_staged_run_is_marked_and_its_resume_continues_the_same_wandb_run(shards: Path, tmp_path: Path) -> None:
    """The acceptance run of issue 28: a staged logger=wandb run stopped by SIGTERM in its first stage, resumed with
    ckpt_path=, read back from its offline files."""
    run_dir = tmp_path / "run"

    def command(align_steps: int) -> list[str]:
        stages = STAGES.replace("align:{trainer:{max_steps:4}}", f"align:{{trainer:{{max_steps:{align_steps}}}}}")
        return ["experiment=fast_align", "logger=wandb", f"hydra.run.dir={run_dir}", *tiny_train_overrides(shards),
                "callbacks.checkpoint.every_n_train_steps=1000", *VALIDATE_EVERY_2, stages]  # fmt: skip

    log = tmp_path / "stopped.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *command(1000)], cwd=REPO,
                                   env=offline_env(tmp_path), stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 400
        while not list(run_dir.glob("align/images/train_reconstruction_0000004.png")):  # validated at step 2
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=300) == 143, log.read_text()[-3000:]
    stopped_log = log.read_text()
    checkpoint = run_dir / "align" / "checkpoints" / "last.ckpt"
    step = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
    resumed = run_script("train.py", *command(step + 3), f"ckpt_path={checkpoint}", root=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    stopped, continued, full = find_runs(run_dir)
    assert "W&B: run " + stopped.run_id + " marked stopped (exit code 143)" in stopped_log
    assert f"upload it with `wandb sync {stopped.folder}`" in stopped_log
    assert stopped.exit_code == 143 and stopped.preempting and continued.exit_code == 0 and full.exit_code == 0
    assert continued.run_id == stopped.run_id and continued.name == stopped.name == "run-align"
    assert full.run_id != stopped.run_id and full.job_type == "full"
    before, after = assert_validation_steps_align(stopped), assert_validation_steps_align(continued)
    assert before and after and min(after) > max(before)  # the resume goes on from the stopped step
    assert min(row["trainer/global_step"] for row in continued.history) >= step - 1
    assert_validation_steps_align(full)
    errors = stopped.values("val/vertex_error_mm") + continued.values("val/vertex_error_mm")
    steps = before + after
    assert continued.summary["best/val/vertex_error_mm"] == pytest.approx(min(errors))  # the best of both parts
    assert continued.summary["best/step"] == steps[int(np.argmin(errors))]
