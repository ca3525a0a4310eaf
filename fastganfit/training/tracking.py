"""W&B runs of fit.py and evaluate.py: their config and results, grouped with the training run of their
checkpoint (train.py stores that run's project, group and id in every checkpoint)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict
from PIL import Image

from fastganfit.io.mesh_export import read_obj
from fastganfit.regression.checkpoint import CHECKPOINT_CONFIG_KEY
from fastganfit.training.checkpoint_config import TRACKING_KEY
from fastganfit.training.loggers import is_wandb, prepare_logger_environment
from fastganfit.training.run_metadata import flatten, run_metadata

REPORT_PADDING = 2  # fastganfit.fitting.report_image.report_images' default padding


class Report(Protocol):
    """What :func:`log_evaluation` reads of a benchmark's report (``EvaluationReport``)."""

    columns: list[str]
    rows: list[list[Any]]
    figures: dict[str, np.ndarray]


def checkpoint_tracking(path: str | Path | None) -> dict[str, str]:
    """The W&B run that wrote the checkpoint at ``path`` (``{}`` when there is none or it was not a W&B run)."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a checkpoint: the entry point that loads it names the problem
        return {}
    stored = checkpoint.get(CHECKPOINT_CONFIG_KEY, {}) if isinstance(checkpoint, dict) else {}
    return dict(stored.get(TRACKING_KEY) or {}) if isinstance(stored, dict) else {}


def run_name(job_type: str, training: dict[str, str], detail: str | None = None) -> str:
    """A fit or evaluate run's display name: ``<job type>[-<detail>]-<training run name>`` (``fit-mean-face``
    without a checkpoint), e.g. ``evaluate-micc-demo-full``."""
    parts = [job_type, detail, training.get("name") or ("mean-face" if job_type == "fit" else None)]
    return "-".join(part for part in parts if part)


def open_run(cfg: DictConfig, job_type: str, checkpoint: str | None, detail: str | None = None) -> WandbLogger | None:
    """The W&B logger of ``cfg.logger`` (``None`` when ``logger`` is null), not started yet: :func:`log_fit` and
    :func:`log_evaluation` start the run with its config, so an input error never leaves an empty run. Job type
    ``job_type``, the group of ``checkpoint``'s training run and a name saying what the run is (:func:`run_name`)
    unless the config sets them.

    Raises ``ValueError`` for a logger other than W&B."""
    if cfg.get("logger") is None:
        return None
    target = cfg.logger.get("_target_")
    if not is_wandb(target):
        raise ValueError(f"logger: fit.py and evaluate.py log to W&B only (logger=wandb), got {target}")
    prepare_logger_environment(target)
    settings = OmegaConf.to_container(cfg.logger, resolve=True)
    training = checkpoint_tracking(checkpoint)
    settings["job_type"] = settings.get("job_type") or job_type
    settings["group"] = settings.get("group") or training.get("group") or None
    settings["name"] = settings.get("name") or run_name(job_type, training, detail)
    settings.pop("log_model", None)
    logger = instantiate(settings)
    metadata = run_metadata(OmegaConf.to_container(cfg, resolve=True))
    metadata.update(flatten({"training_run": training}))
    logger.run_config = metadata
    return logger


def start_run(logger: WandbLogger) -> None:
    """Start the run of :func:`open_run` with its config."""
    logger.log_hyperparams(getattr(logger, "run_config", {}))


def resume_logger_config(logger: DictConfig | None, ckpt_path: str | None) -> None:
    """A run resumed from ``ckpt_path``: its W&B logger continues the W&B run that wrote the checkpoint (its id,
    kept in the checkpoint, with ``resume="allow"``), so history and summaries go on in one run."""
    if logger is None or not is_wandb(logger.get("_target_")):
        return
    run_id = checkpoint_tracking(ckpt_path).get("id")
    if run_id:
        with open_dict(logger):
            logger.id, logger.resume = run_id, "allow"


def training_run_name(run_dir: str | Path) -> str:
    """A training run's name: its folder's, or in a Hydra multirun (sweep) ``<experiment>-<job number>`` and the
    values swept (``fast_full-3 loss.identity=10.0,loss.content=0.2``), where the folder is only the number."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return Path(run_dir).name
    hydra = HydraConfig.get()
    given = dict(override.split("=", 1) for override in sys.argv[1:] if "=" in override)
    params = {**(OmegaConf.select(hydra, "sweeper.params", default=None) or {}), **given}
    swept = {key.lstrip("+") for key, value in params.items()  # a comma outside a list or mapping: a sweep
             if "," in str(value) and not str(value).startswith(("[", "{"))}  # fmt: skip
    values = [override for override in hydra.overrides.task if override.split("=", 1)[0].lstrip("+") in swept]
    name = f"{hydra.runtime.choices.get('experiment') or hydra.job.name}-{hydra.job.num}"
    return f"{name} {','.join(values)}" if values else name


def _fit_row(folder: Path, source: str) -> tuple[list[Any], dict[str, float]]:
    """One fit table row (without its objective values) and the objective values of ``folder``'s fit.json."""
    import wandb

    info = json.loads((folder / "fit.json").read_text())
    report = np.asarray(Image.open(folder / "report.png").convert("RGB"))  # 5 panels of S px, 2 px padding
    size = report.shape[0] - 2 * REPORT_PADDING
    starts = [REPORT_PADDING + index * (size + REPORT_PADDING) for index in range(5)]
    panels = [report[REPORT_PADDING : REPORT_PADDING + size, start : start + size] for start in starts]
    objective = {
        f"{stage}/{term}": float(value)
        for stage, entry in (info.get("batch_objective") or {}).items()
        for term, value in (entry.get("last") or {}).items()
    }
    row = [
        source, info.get("method", ""), wandb.Image(panels[0]), wandb.Image(panels[1]),
        wandb.Image(str(folder / "overlay.png")), wandb.Image(str(folder / "texture.png")), wandb.Image(panels[4]),
        wandb.Object3D(read_obj(folder / "mesh.obj").vertices),  # tables hold point clouds only (W&B 0.31)
    ]  # fmt: skip
    return row, objective


def log_fit(logger: WandbLogger, results: Sequence[tuple[str, Path]], failed: int) -> None:
    """Log ``fit/results``: one row per reconstructed image ``(source, result folder)`` with the input, render,
    overlay on the photo, UV texture, side view, the mesh's vertices (a point cloud) and the objective of its
    batch after each stage; ``fit/meshes``, the meshes as 3D objects (captioned with their image); and the
    counts ``fit/reconstructed`` and ``fit/failed``."""
    import wandb

    start_run(logger)
    fitted = [_fit_row(Path(folder), source) for source, folder in results]
    terms = sorted({term for _, objective in fitted for term in objective})
    columns = ["image", "method", "input", "render", "overlay", "texture", "side", "points", *terms]
    data = [[*row, *(objective.get(term, float("nan")) for term in terms)] for row, objective in fitted]
    table = wandb.Table(columns=columns, data=data)
    meshes = [wandb.Object3D(str(Path(folder) / "mesh.obj"), caption=source) for source, folder in results]
    metrics = {"fit/results": table, "fit/reconstructed": len(data), "fit/failed": failed}
    logger.experiment.log({**metrics, **({"fit/meshes": meshes} if meshes else {})})


def log_evaluation(logger: WandbLogger, report: Report) -> None:
    """Log ``evaluate/results`` (the report's table), its figures (``evaluate/<name>``: the cumulative error
    curve, the error maps) and each numeric cell as a summary value ``evaluate/<row>/<column>``."""
    import wandb

    start_run(logger)
    rows = [[value if isinstance(value, (int, float)) else str(value) for value in row] for row in report.rows]
    metrics: dict[str, Any] = {"evaluate/results": wandb.Table(columns=list(report.columns), data=rows)}
    metrics.update({f"evaluate/{name}": wandb.Image(image) for name, image in report.figures.items()})
    logger.experiment.log(metrics)
    for row in rows:
        for column, value in zip(report.columns[1:], row[1:], strict=True):
            if isinstance(value, (int, float)):
                logger.experiment.summary[f"evaluate/{row[0]}/{column}"] = value
