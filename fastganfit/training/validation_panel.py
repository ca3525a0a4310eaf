"""The fixed validation panel: the same validation faces after every validation, so runs line up image by image,
and the run summary's best validation error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from torch import Tensor

from fastganfit.fitting.views import ViewRenderer
from fastganfit.io.image_logging import image_folder, log_image_grid
from fastganfit.io.images import image_to_uint8
from fastganfit.io.mesh_export import write_obj
from fastganfit.reconstruction.graph import Reconstruction
from fastganfit.reconstruction.panels import PANELS_PER_ROW, reconstruction_panels
from fastganfit.reconstruction.vertex_error import vertex_error_mm

COLUMNS = PANELS_PER_ROW + 1  # input | render | overlay | UV texture | side view


def logger_step(trainer: L.Trainer) -> int:
    """The step Lightning gives the metrics it logs now (its logger connector's ``_batches_that_stepped``): during
    a validation inside ``fit`` one less than ``trainer.global_step`` (Lightning counts the batch after validating),
    so the panels, tables, meshes and ``best/step`` of a validation land at the step of its ``val/*`` scalars."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def panel_rows(result: Reconstruction, side: Tensor) -> Tensor:
    """``[B, 3, H, 5 W]``: per face, input | render | overlay with landmarks | UV texture | ``side [B, 3, H, W]``."""
    render = result.render
    panels = reconstruction_panels(
        result.image, render.image, render.mask, render.landmarks, render.landmark_visibility, result.texture
    )
    batch, _, height, width = result.image.shape
    columns = torch.cat([panels.view(batch, PANELS_PER_ROW, 3, height, width), side[:, None].to(panels)], dim=1)
    return columns.permute(0, 2, 3, 1, 4).reshape(batch, 3, height, COLUMNS * width).clamp(0, 1)


def face_errors(result: Reconstruction, faces: dict[str, Any], graph: Any) -> dict[str, Tensor]:
    """Per-face errors ``[B]``: ``landmark_error_px`` (render pixels) and, for faces with ground truth,
    ``vertex_error_mm`` and ``vertex_error_similarity_mm`` (NaN for the others)."""
    errors = {
        "landmark_error_px": torch.linalg.vector_norm(result.render.landmarks - result.landmarks, dim=-1).mean(-1)
    }
    truth = faces.get("vertices")
    if truth is not None:
        truth = truth.to(result.vertices)
        has = faces.get("has_ground_truth", torch.ones(truth.shape[0], dtype=torch.bool)).to(truth.device)
        for name, align in (("vertex_error_mm", False), ("vertex_error_similarity_mm", True)):
            error = vertex_error_mm(result.vertices, truth, align=align)
            errors[name] = torch.where(has, error, torch.full_like(error, float("nan")))
    return errors


class ValidationPanel(L.Callback):
    """After every validation, reconstruct the same ``num_faces`` validation faces (the first ones of the first
    validation) and log, under ``val/panel``, one row per face: input | render | overlay with landmarks | UV
    texture | shape turned ``side_yaw_degrees`` (grey, shaded).

    Every logger gets the rows (TensorBoard as one grid, W&B one image per face captioned with its id) and a
    PNG goes to ``<log_dir>/images``. W&B runs also get the first ``num_meshes`` meshes as 3D objects
    (``val/meshes``) and a table ``val/faces`` (face id, per-face errors, a thumbnail of the row).
    """

    def __init__(self, num_faces: int = 4, num_meshes: int = 2, side_yaw_degrees: float = 60.0) -> None:
        if num_faces < 1 or num_meshes < 0:
            raise ValueError(f"ValidationPanel: num_faces >= 1 and num_meshes >= 0, got {num_faces}, {num_meshes}")
        self.num_faces, self.num_meshes, self.side_yaw_degrees = num_faces, num_meshes, side_yaw_degrees
        self.faces: dict[str, Any] = {}
        self._views: ViewRenderer | None = None

    def on_validation_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        """Keep the first ``num_faces`` validation faces (on the CPU) until there are enough."""
        have = len(self.faces.get("key", []))
        if have >= self.num_faces or not hasattr(module, "reconstruct") or not isinstance(batch, dict):
            return
        if "landmarks" not in batch:
            return
        take = self.num_faces - have
        for name in ("key", "image", "landmarks", "vertices", "has_ground_truth"):
            if name not in batch:
                continue
            value = batch[name][:take]
            value = list(value) if name == "key" else value.detach().cpu()
            previous = self.faces.get(name)
            if previous is None:
                self.faces[name] = value
            else:
                self.faces[name] = previous + value if name == "key" else torch.cat([previous, value])

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Reconstruct the kept faces and log the panel (and, for W&B, meshes and the table)."""
        folder = image_folder(trainer, "images")  # every rank reads the log dir (a DDP collective)
        if trainer.sanity_checking or not trainer.is_global_zero or not self.faces:
            return
        device = module.device
        result = module.reconstruct(self.faces["image"].to(device), self.faces["landmarks"].to(device))
        if self._views is None:
            self._views = ViewRenderer(module.graph, result.image.shape[-1], side_yaw_degrees=self.side_yaw_degrees)
        side = self._views(result.image, result.params).side
        rows = panel_rows(result, side).cpu()
        errors = {name: value.cpu() for name, value in face_errors(result, self.faces, module.graph).items()}
        keys = [str(key) for key in self.faces["key"]]
        step = logger_step(trainer)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                self.log_wandb(logger, folder, rows, keys, errors, result, module, step)
            else:
                log_image_grid(logger, None, "val/panel", rows, step, columns=1)
        if folder is not None:
            log_image_grid(None, folder, "val/panel", rows, step, columns=1)

    def log_wandb(
        self, logger: WandbLogger, folder: Path | None, rows: Tensor, keys: list[str], errors: dict[str, Tensor],
        result: Reconstruction, module: L.LightningModule, step: int,
    ) -> None:  # fmt: skip
        """Rows captioned with the face ids, meshes as 3D objects and the per-face table."""
        import wandb

        images = [wandb.Image(image_to_uint8(row), caption=key) for row, key in zip(rows, keys, strict=True)]
        columns = ["face_id", *errors, "panel"]
        data = [
            [key, *(float(errors[name][index]) for name in errors), images[index]] for index, key in enumerate(keys)
        ]
        metrics: dict[str, Any] = {"val/panel": images, "val/faces": wandb.Table(columns=columns, data=data)}
        if self.num_meshes and folder is not None:
            faces = module.graph.renderer.faces.cpu().numpy()
            meshes = []
            for index, key in enumerate(keys[: self.num_meshes]):
                path = folder.parent / "meshes" / f"val_{step:07d}_{index}.obj"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_obj(path, result.vertices[index].cpu().numpy(), faces)
                meshes.append(wandb.Object3D(str(path), caption=key))
            metrics["val/meshes"] = meshes
        logger.log_metrics(metrics, step=step)


class BestValidationSummary(L.Callback):
    """Keep the best value of ``monitor`` (``mode`` min or max) over the run's validations and its step (the logged
    step of that validation's scalars): W&B runs get them in their summary (``best/<monitor>``, ``best/step``), the
    other loggers as scalars. The best is kept in checkpoints: a resumed run records it again and goes on from it."""

    def __init__(self, monitor: str = "val/vertex_error_mm", mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"BestValidationSummary: mode must be min or max, got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.best_step: int | None = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Update the best value from this validation's logged ``monitor`` (outside any training step)."""
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        value = float(value)
        better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        if not better:
            return
        self.best, self.best_step = value, logger_step(trainer)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                self.record(logger)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """A resumed run: write the best value restored from its checkpoint to the (resumed) run's summary."""
        if self.best is not None and trainer.is_global_zero:
            for logger in trainer.loggers:
                self.record(logger)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_step = state_dict.get("best"), state_dict.get("best_step")

    def record(self, logger: Logger) -> None:
        """Write the best value and its step to ``logger``."""
        best = {f"best/{self.monitor}": self.best, "best/step": self.best_step}
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(best)
        else:
            logger.log_metrics({f"best/{self.monitor}": self.best}, step=self.best_step)
