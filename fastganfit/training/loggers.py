"""Loggers of the entry points: the W&B logger (run metadata, checkpoint artifacts, one run per stage) and the
run set-up shared by train.py, fit.py and evaluate.py (no Hydra here)."""

from __future__ import annotations

import netrc
import numbers
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig

WANDB_LOGGER = "fastganfit.training.loggers.RunLogger"
WATCH_MODES = (None, "gradients", "parameters", "all")
#: The exit status of a run stopped by a signal (SIGTERM: 128 + 15) and of one stopped by Ctrl+C (128 + 2).
STOPPED_EXIT_CODES = (143, 130)
#: Where W&B stages artifact files before upload: ``$WANDB_DATA_DIR/artifacts/staging`` (wandb 0.31,
#: ``wandb.sdk.artifacts.staging``), read when a file is added, so it can point into each run's own folder.
WANDB_DATA_DIR = "WANDB_DATA_DIR"


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def is_wandb(logger_target: str | None) -> bool:
    """Whether a logger config's ``_target_`` is a W&B logger."""
    return bool(logger_target) and str(logger_target).endswith(("WandbLogger", "RunLogger"))


def prepare_logger_environment(logger_target: str | None) -> None:
    """Before building a W&B logger: without credentials, switch W&B to offline mode (the run is still
    written locally and can be uploaded later with ``wandb sync``) and quiet (:func:`close_loggers` prints
    the one line that says where the run is)."""
    if is_wandb(logger_target) and not _has_wandb_credentials():
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")


class RunLogger(WandbLogger):
    """Lightning's :class:`WandbLogger` for fastganfit runs (``conf/logger/wandb.yaml``).

    Artifact files (checkpoints, tables) are staged inside the run's own folder (``<run folder>/staging``, via
    ``WANDB_DATA_DIR``), so an offline run folder holds everything ``wandb sync`` uploads; a checkpoint step is
    uploaded once (a best and a last file of the same step: one artifact with both aliases).

    Extra options: ``watch`` (``gradients``, ``parameters`` or ``all``: histograms of the trained module every
    ``watch_every_n_steps`` steps; ``None``: off). ``log_model`` (``True``: the last and best checkpoints when
    training ends; ``"all"``: every checkpoint as it is saved) uploads checkpoints as ``model``-type artifacts
    named ``model-<run id>`` whose metadata holds the run's flattened config (:attr:`run_config`, set by
    train.py), the step and the last value of every ``val/*`` scalar. ``group``, ``tags``, ``job_type`` and the
    other keyword arguments go to ``wandb.init``.
    """

    def __init__(self, *args: Any, watch: str | None = None, watch_every_n_steps: int = 100, **kwargs: Any) -> None:
        if watch not in WATCH_MODES:
            raise ValueError(f"logger.watch must be one of {list(WATCH_MODES)}, got {watch!r}")
        if watch_every_n_steps < 1:
            raise ValueError(f"logger.watch_every_n_steps must be at least 1, got {watch_every_n_steps}")
        log_model = kwargs.pop("log_model", False)
        if log_model not in (False, True, "all"):
            raise ValueError(f"logger.log_model must be false, true or all, got {log_model!r}")
        super().__init__(*args, log_model=False, **kwargs)
        self.upload_checkpoints = log_model
        self.watch_mode = watch
        self.watch_every_n_steps = watch_every_n_steps
        self.run_config: dict[str, Any] = {}
        self.validation_metrics: dict[str, float] = {}
        self._uploaded: dict[str, float] = {}
        self._uploaded_steps: set[int] = set()
        self._saved_at: dict[str, tuple[float, int]] = {}
        self._pending: dict[int, ModelCheckpoint] = {}

    @property
    def experiment(self) -> Any:
        """The W&B run (started on first use); its artifact files are staged in its own folder from then on."""
        run = super().experiment
        folder = getattr(run, "dir", None)  # other ranks get Lightning's DummyExperiment
        if isinstance(folder, str) and folder:
            os.environ[WANDB_DATA_DIR] = str(Path(folder).parent / "staging")
        return run

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log ``metrics`` and remember the latest ``val/*`` values for the artifacts' metadata."""
        super().log_metrics(metrics, step)
        scalars = {key: value for key, value in metrics.items() if isinstance(value, numbers.Real)}
        self.validation_metrics.update({key: float(value) for key, value in scalars.items() if key.startswith("val/")})

    @property
    def offline(self) -> bool:
        """Whether the run is written locally only (no API key, or ``WANDB_MODE=offline``)."""
        return self.experiment.settings.mode == "offline"

    def attach(self, module: L.LightningModule, init_artifact: str | None = None) -> None:
        """Start ``watch`` histograms of ``module`` when asked for; record ``init_artifact`` (the checkpoint
        artifact the run starts from) as the run's input, which W&B allows online only (offline runs keep
        its name in the config, ``lineage.init_artifact``)."""
        if self.watch_mode is not None:
            self.watch(module, log=self.watch_mode, log_freq=self.watch_every_n_steps)
        if init_artifact is not None and not self.offline:
            self.use_artifact(init_artifact, artifact_type="model")

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Note the step of each file just written; ``log_model="all"``: upload the new checkpoints now; ``True``:
        remember the callback for the end."""
        for path in checkpoint_paths(checkpoint_callback):
            written = Path(path).stat().st_mtime
            if self._saved_at.get(path, (None, 0))[0] != written:
                self._saved_at[path] = (written, checkpoint_callback._last_global_step_saved)
        if self.upload_checkpoints == "all":
            self.upload(checkpoint_callback)
        elif self.upload_checkpoints:
            self._pending[id(checkpoint_callback)] = checkpoint_callback

    def finalize(self, status: str) -> None:
        """On success, upload the checkpoints ``log_model=true`` waits for."""
        if status == "success" and self._experiment is not None:
            for checkpoint_callback in self._pending.values():
                self.upload(checkpoint_callback)

    def upload(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Upload the callback's best and last checkpoints not uploaded since they were written: one artifact per
        step (when the best and the last file hold the same step, the best file, aliased ``best`` and ``latest``)."""
        import wandb

        best = checkpoint_callback.best_model_path
        by_step: dict[int, list[str]] = {}
        for path in sorted(checkpoint_paths(checkpoint_callback), key=lambda path: path != best):
            written = Path(path).stat().st_mtime
            if self._uploaded.get(path) == written:
                continue
            recorded, step = self._saved_at.get(path, (None, 0))
            step = step if recorded == written else checkpoint_callback._last_global_step_saved
            by_step.setdefault(step, []).append(path)
        for step, paths in sorted(by_step.items()):
            for path in paths:
                self._uploaded[path] = Path(path).stat().st_mtime
            if step in self._uploaded_steps:
                continue
            score = checkpoint_callback.best_model_score
            metadata = {
                "original_filename": Path(paths[0]).name,
                "files": [Path(path).name for path in paths],
                "step": step,  # the optimiser steps the checkpoint holds
                "score": None if score is None else float(score),
                "monitor": checkpoint_callback.monitor,
                "metrics": dict(self.validation_metrics),
                "config": dict(self.run_config),
            }
            artifact = wandb.Artifact(f"model-{self.experiment.id}", type="model", metadata=metadata)
            artifact.add_file(paths[0], name="model.ckpt")
            aliases = ["latest", "best"] if best in paths else ["latest"]
            self.experiment.log_artifact(artifact, aliases=aliases)
            self._uploaded_steps.add(step)

    @property
    def artifact_name(self) -> str | None:
        """``model-<run id>:latest`` once a checkpoint was uploaded, else ``None``."""
        return f"model-{self.experiment.id}:latest" if self._uploaded else None


def checkpoint_paths(checkpoint_callback: ModelCheckpoint) -> set[str]:
    """The existing best, best-k and last checkpoint files of ``checkpoint_callback``."""
    paths = {checkpoint_callback.best_model_path, checkpoint_callback.last_model_path,
             *checkpoint_callback.best_k_models}  # fmt: skip
    return {str(path) for path in paths if path and Path(path).is_file()}


def start_tracking(
    loggers: list[Logger], module: L.LightningModule, metadata: Mapping[str, Any], init_artifact: str | None = None
) -> None:
    """Record ``metadata`` (:func:`~fastganfit.training.run_metadata.run_metadata`) as every logger's
    hyperparameters (W&B: the run config; TensorBoard: hparams; CSV: hparams.yaml); a :class:`RunLogger` also
    keeps it for its artifacts and starts ``watch`` and the lineage (:meth:`RunLogger.attach`)."""
    for logger in loggers:
        logger.log_hyperparams(dict(metadata))
        if isinstance(logger, RunLogger):
            logger.run_config = dict(metadata)
            logger.attach(module, init_artifact)


def uploaded_artifact(loggers: list[Logger]) -> str | None:
    """The checkpoint artifact a :class:`RunLogger` among ``loggers`` uploaded, if any."""
    names = [logger.artifact_name for logger in loggers if isinstance(logger, RunLogger)]
    return next((name for name in names if name), None)


def wandb_run_info(loggers: Sequence[Any]) -> dict[str, str] | None:
    """``project``, ``group``, ``id`` and ``name`` of the first W&B run among ``loggers`` that has started."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            return {"project": run.project, "group": run.group or "", "id": run.id, "name": run.name or ""}
    return None


def stage_logger_config(logger: DictConfig | None, stage: str, run_name: str) -> None:
    """Name a training run's W&B run(s): group ``run_name`` (the run folder) unless ``logger.group`` is set, so
    fit.py and evaluate.py runs of its checkpoints can join it; name ``logger.name`` or ``run_name``. A staged
    run gets one W&B run per stage: job type = the stage, name ``<name>-<stage>``; an unstaged run gets job
    type ``train``.
    Other loggers are left alone (each stage already writes into ``<run_dir>/<stage>``)."""
    if logger is None or not is_wandb(logger.get("_target_")):
        return
    name = logger.get("name") or run_name
    logger.group = logger.get("group") or run_name
    logger.job_type = logger.get("job_type") or stage or "train"
    logger.name = f"{name}-{stage}" if stage else name


def exit_code_of(error: BaseException | None) -> int:
    """The exit code a run ends with: 0 without ``error``; a ``SystemExit``'s own code (143 for a run stopped by a
    signal, :mod:`fastganfit.training.signals`); 130 for Ctrl+C; 1 for any other error."""
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    return 130 if isinstance(error, KeyboardInterrupt) else 1


def close_loggers(loggers: list[Logger], exit_code: int = 0) -> None:
    """End each W&B run with ``exit_code`` (0: finished; 143 or 130: stopped, also marked preempting, so a resume
    continues it; else failed) so the next stage starts a new one, and always print where the run is and, for an
    offline run, how to upload it."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger) or logger._experiment is None:
            continue
        run = logger.experiment
        folder = Path(run.dir).parent
        offline = run.settings.mode == "offline"
        if exit_code in STOPPED_EXIT_CODES:
            run.mark_preempting()
        url = getattr(run, "url", None)
        run.finish(exit_code=exit_code)
        if exit_code:
            state = "stopped" if exit_code in STOPPED_EXIT_CODES else "failed"
            print(f"W&B: run {run.id} marked {state} (exit code {exit_code})", file=sys.stderr)
        if offline:
            print(f"W&B: offline run in {folder}; upload it with `wandb sync {folder}`", file=sys.stderr)
        else:
            print(f"W&B: run {url} (local files in {folder})", file=sys.stderr)
