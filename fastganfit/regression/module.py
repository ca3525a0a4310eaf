"""FastGANFitModule: trains the Fast-GANFit regressor through the frozen GANFit graph (alignment or full phase).

Per batch (aligned crops ``image [B, 3, S, S]`` in [0, 1], ``landmarks [B, 68, 2]`` in crop pixels), with the
:class:`~fastganfit.reconstruction.graph.FaceReconstructionGraph` ``graph``::

    graph.target(crop, landmarks)                  -> image [B, 3, R, R], landmarks, identity activations
    graph.input_heatmaps(crop, landmarks)          -> [B, 68, h, h]
    graph.landmark_camera(landmarks)               -> camera0 [B, 7], landmark features [B, 143]
    regressor(activations, heatmaps, features,
              colour, embedding)                   -> FaceParams (camera = camera0 + the camera head)
    graph.render(params, target)                   -> vertices, UV texture, render over the input
    graph.objective(result, loss)                  -> total, terms

Only the regressor trains; the graph is frozen and stays in eval mode. Checkpoints hold the regressor's weights
only (the graph is rebuilt from the run's config).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from fastganfit.io.image_logging import image_folder, log_image_grid
from fastganfit.params import GROUPS, FaceParams
from fastganfit.reconstruction.graph import FaceReconstructionGraph, Reconstruction
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.reconstruction.panels import PANELS_PER_ROW, reconstruction_panels
from fastganfit.reconstruction.vertex_error import vertex_error_mm
from fastganfit.regression.colour_map import AUTO, resolve_colour_map
from fastganfit.regression.exposure import match_exposure
from fastganfit.regression.lr_schedule import learning_rate_scheduler
from fastganfit.regression.regressor import Regressor, face_colour_features

PHASES = ("align", "full")
PHASE_HEADS: dict[str, tuple[str, ...]] = {"align": ("shape", "expression", "camera"), "full": GROUPS}
REGRESSOR_PREFIX = "regressor."
#: The optimiser and schedule of a module built without ``optimizer`` / ``scheduler`` (the former argument defaults).
DEFAULT_OPTIMIZER = functools.partial(torch.optim.AdamW, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)
DEFAULT_SCHEDULER = functools.partial(learning_rate_scheduler, kind="cosine", warmup_steps=0, min_factor=0.0)
OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], Optimizer]
SchedulerFactory = Callable[..., LRScheduler]


def factory_description(factory: Callable[..., Any]) -> dict[str, Any]:
    """A partial's target and keywords as plain values (``{"_target_": "torch.optim.adamw.AdamW", "lr": ...}``), for
    the logged hyperparameters."""
    if not isinstance(factory, functools.partial):
        return {"_target_": f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', factory)}"}
    target = factory.func
    keywords = {key: list(value) if isinstance(value, tuple) else value for key, value in factory.keywords.items()}
    return {"_target_": f"{target.__module__}.{target.__qualname__}", **keywords}


def schedule_length(scheduler: SchedulerFactory, max_steps: int | None) -> dict[str, int]:
    """``{"total_steps": max_steps}`` when ``scheduler`` takes a ``total_steps`` its partial leaves ``None`` and the
    trainer has a positive ``max_steps``; else ``{}`` (a schedule that needs a length then says so)."""
    parameter = inspect.signature(scheduler).parameters.get("total_steps")
    if parameter is None or parameter.default is not None or max_steps is None or max_steps < 1:
        return {}
    return {"total_steps": max_steps}


def load_regressor_weights(path: str | Path) -> dict[str, Tensor]:
    """The regressor's state dict from a FastGANFitModule checkpoint (its ``regressor.*`` entries).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file without regressor weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"init_checkpoint {path} does not exist: give the checkpoint of an alignment run "
            "(`python train.py experiment=fast_align` writes outputs/train/<run>/checkpoints/last.ckpt)"
        )
    return regressor_weights(torch.load(path, map_location="cpu", weights_only=True), f"init_checkpoint {path}")


def regressor_weights(checkpoint: Any, source: str) -> dict[str, Tensor]:
    """The regressor's state dict (its ``regressor.*`` entries) of a loaded ``checkpoint`` (its ``state_dict``, or
    a state dict itself); ``ValueError`` naming ``source`` when it has none."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else {}
    weights = {key[len(REGRESSOR_PREFIX) :]: value for key, value in state.items() if key.startswith(REGRESSOR_PREFIX)}
    if not weights:
        raise ValueError(
            f"{source} has no regressor weights (no 'regressor.*' entries in its state_dict): "
            "give a checkpoint written by FastGANFitModule (experiment=fast_align)"
        )
    return weights


class FastGANFitModule(L.LightningModule):
    """Fast-GANFit training: ``phase="align"`` (landmarks + regularisers, ``conf/loss/fast_align.yaml``) or
    ``"full"`` (the whole GANFit objective, ``conf/loss/fast_full.yaml``, starting from an alignment run's
    regressor given as ``init_checkpoint``).

    Parts (built already, e.g. by :func:`fastganfit.regression.build.build_fast_ganfit`): ``graph`` (the frozen
    FaceReconstructionGraph), ``regressor`` and ``loss`` (GANFitLoss).

    ``landmark_camera``: the camera head predicts a residual on :func:`camera_from_landmarks` (the camera that
    best projects the mean face's landmarks onto the input's); ``False``: the head predicts the camera itself.
    ``exposure_match``: :meth:`predict` (what fit.py, evaluate.py and GANFit++ start from) scales the regressed
    light's brightness to the photo's (:func:`~fastganfit.regression.exposure.match_exposure`); the training and
    validation losses see the heads' own light. ``colour_map``: :meth:`predict` takes the texture latent and the light
    from a linear map of the face's colour fitted on real colour photos (:mod:`fastganfit.regression.colour_map`;
    greyscale photos keep the heads' texture and exposure-matched light): ``"auto"`` the shipped portrait map where
    it fits the graph's texture model and lighting, a path to a map file, or ``None``; training and validation see
    the heads.
    ``train_heads``: the regressor heads that learn (default: shape, expression, camera for ``align``,
    all for ``full``); the others keep their weights (zero output: mean texture, ambient light). The identity head
    never learns: its map was fitted on more rendered faces than a training set holds, and Adam's steps of about the
    learning rate per weight would move its small weights by their own size in a demo's 1000 steps, towards the
    training faces. The rest of the regressor always trains. ``optimizer``: builds the optimiser from the trainable
    parameters (a partial, e.g. of ``torch.optim.AdamW``: conf/optimizer/); ``scheduler``: builds the per-step
    learning-rate scheduler from the optimiser (conf/scheduler/; a ``total_steps`` argument left ``None`` gets the
    trainer's ``max_steps``).
    Defaults: :data:`DEFAULT_OPTIMIZER`, :data:`DEFAULT_SCHEDULER`. Image grids (input | render | overlay | UV
    texture of ``num_logged_images`` faces) go to the logger and ``<log_dir>/images`` every ``log_images_every_n_steps``
    training steps (0: never), on global rank 0 only. ``compile``: ``torch.compile`` the regressor in place
    (``True``: the inductor backend, or a backend's name), which keeps its parameter names and so the
    checkpoints' keys (compiling the whole module would prefix them with ``_orig_mod.``).
    """

    def __init__(
        self,
        graph: FaceReconstructionGraph,
        regressor: Regressor,
        loss: GANFitLoss,
        phase: str = "align",
        optimizer: OptimizerFactory = DEFAULT_OPTIMIZER,
        scheduler: SchedulerFactory = DEFAULT_SCHEDULER,
        train_heads: Sequence[str] | None = None,
        landmark_camera: bool = True,
        exposure_match: bool = True,
        colour_map: str | Path | None = AUTO,
        init_checkpoint: str | Path | None = None,
        log_images_every_n_steps: int = 200,
        num_logged_images: int = 4,
        compile: bool | str = False,
    ) -> None:
        super().__init__()
        if phase not in PHASES:
            raise ValueError(f"FastGANFitModule: phase must be one of {PHASES}, got {phase!r}")
        heads = list(PHASE_HEADS[phase] if train_heads is None else train_heads)
        unknown = sorted(set(heads) - set(GROUPS))
        if unknown or not heads:
            raise ValueError(f"FastGANFitModule: train_heads must be a non-empty subset of {list(GROUPS)}, got {heads}")
        # check the optimiser's and schedule's settings now rather than when the trainer asks for them
        probe = optimizer([torch.nn.Parameter(torch.zeros(1))])
        scheduler(probe, **schedule_length(scheduler, 1))
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.save_hyperparameters(ignore=["graph", "regressor", "loss", "optimizer", "scheduler"])
        self.hparams["optimizer"] = factory_description(optimizer)
        self.hparams["scheduler"] = factory_description(scheduler)
        self.hparams["train_heads"] = heads
        self.hparams["init_checkpoint"] = None if init_checkpoint is None else str(init_checkpoint)
        self.hparams["colour_map"] = None if colour_map is None else str(colour_map)
        self.graph = graph
        self.regressor = regressor
        self.loss = loss
        self.colour_map = resolve_colour_map(colour_map, graph)
        if init_checkpoint is not None:
            self.regressor.load_state_dict(load_regressor_weights(init_checkpoint))
        for group in (self.regressor.heads, self.regressor.landmark_heads):
            for name, head in group.items():
                head.requires_grad_(name in heads)
        if self.regressor.identity_head is not None:  # keeps its closed-form map (regression/identity_prior.py)
            self.regressor.identity_head.requires_grad_(False)
        if compile:
            self.regressor.compile(backend="inductor" if compile is True else compile)
        self._last_step_time: float | None = None
        self._image_folder: Path | None = None

    def on_train_start(self) -> None:
        """Find the picture folder on every rank now: ``trainer.log_dir`` is a collective under DDP, and pictures
        are logged on rank 0 alone."""
        self._image_folder = image_folder(self.trainer, "images")

    def reconstruct(self, crop: Tensor, crop_landmarks: Tensor) -> Reconstruction:
        """Run the graph on aligned crops ``[B, 3, S, S]`` with landmarks ``[B, 68, 2]`` (module docstring)."""
        graph = self.graph
        target = graph.target(crop, crop_landmarks)
        heatmaps = graph.input_heatmaps(crop, crop_landmarks)
        camera = graph.landmark_camera(target.landmarks) if self.hparams.landmark_camera else None
        features = graph.landmark_features(target.landmarks, camera) if self.regressor.landmark_features else None
        colour = face_colour_features(target.image, target.landmarks) if self.regressor.colour_input else None
        identity = target.identity_input
        params = self.regressor(identity.activations, heatmaps, features, colour, identity.embedding)
        if camera is not None:
            params = replace(params, camera=params.camera + camera)
        return graph.render(params, target)

    def predict(self, crop: Tensor, crop_landmarks: Tensor) -> FaceParams:
        """The parameters of :meth:`reconstruct` with the exposure match when ``exposure_match``, and the texture and
        light of the colour map when there is one, except on greyscale photos (class docstring): the regression fit.py
        and the benchmarks use."""
        result = self.reconstruct(crop, crop_landmarks)
        params = match_exposure(self.graph, result) if self.hparams.exposure_match else result.params
        if self.colour_map is None:
            return params
        texture, light = self.colour_map(face_colour_features(result.target.image, result.target.landmarks))
        grey = result.target.greyscale
        if grey is None:
            return replace(params, texture=texture, light=light)
        grey = grey[:, None]  # the map is fitted on colour photos: greyscale ones keep the heads'
        return replace(params, texture=torch.where(grey, params.texture, texture),
                       light=torch.where(grey, params.light, light))  # fmt: skip

    def objective(
        self, result: Reconstruction, batch: dict[str, Any] | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The training loss of a reconstruction: the total (scalar) and each active term's batch mean. With the
        loss's ``supervised`` terms on, a ``batch`` with ground truth (``vertices``, ``params``,
        ``has_ground_truth``) adds them, logged as ``supervised_<term>``."""
        total, terms = self.graph.objective(result, self.loss)
        supervised = self.loss.supervised
        if supervised is None or not supervised.active_terms or batch is None or "vertices" not in batch:
            return total, terms
        extra, extra_terms = supervised(
            result.vertices, result.params, batch["vertices"], batch["params"], batch.get("has_ground_truth")
        )
        terms.update({f"supervised_{name}": value for name, value in extra_terms.items()})
        total = total + extra
        terms["total"] = total.detach()
        return total, terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Loss of one batch; logs ``train/<term>`` every step, and on the trainer's logging steps ``train/lr``,
        ``train/images_per_second`` and the progress bar's ``loss`` (host values: logging them every step would
        cost a host synchronisation per step). Picture panels: rank 0, every ``log_images_every_n_steps``."""
        now = time.perf_counter()
        batch_size = batch["image"].shape[0]
        result = self.reconstruct(batch["image"], batch["landmarks"])
        total, terms = self.objective(result, batch)
        self.log_dict(
            {f"train/{name}": value for name, value in terms.items()},
            on_step=True,
            on_epoch=False,
            prog_bar=False,
            batch_size=batch_size,
        )
        if self.global_step % max(self.trainer.log_every_n_steps, 1) == 0:
            logs = {"train/lr": self.optimizers().param_groups[0]["lr"]}
            if self._last_step_time is not None:
                logs["train/images_per_second"] = batch_size / max(now - self._last_step_time, 1e-9)
            self.log_dict(logs, on_step=True, on_epoch=False, batch_size=batch_size)
            self.log("loss", terms["total"].detach(), prog_bar=True, on_step=True, batch_size=batch_size, logger=False)
        self._last_step_time = now
        every = self.hparams.log_images_every_n_steps
        if every and self.global_step % every == 0 and self.trainer.is_global_zero:
            self.log_images("train/reconstruction", result)
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The training loss (``val/<term>``) and, on batches with ground-truth ``vertices``, the vertex error."""
        batch_size = batch["image"].shape[0]
        result = self.reconstruct(batch["image"], batch["landmarks"])
        _, terms = self.objective(result, batch)
        self.log_dict({f"val/{name}": value for name, value in terms.items()}, batch_size=batch_size, sync_dist=True)
        if "vertices" in batch:
            self.log_vertex_errors(result.vertices, batch)

    def log_vertex_errors(self, vertices: Tensor, batch: dict[str, Any]) -> None:
        """Log mean vertex errors in mm over the batch's samples with ground truth: ``val/vertex_error_mm``
        (plain, in the model frame: the camera carries the pose, so shape and expression are compared as
        they are), ``val/vertex_error_similarity_mm`` (after a similarity alignment) and the same two for
        the mean face (``val/mean_face_error_mm``, ``val/mean_face_error_similarity_mm``)."""
        has_truth = batch.get("has_ground_truth", torch.ones(vertices.shape[0], dtype=torch.bool))
        has_truth = has_truth.to(vertices.device)
        if not bool(has_truth.any()):
            return
        target = batch["vertices"].to(vertices)[has_truth]
        predicted = vertices[has_truth]
        mean_face = self.graph.model.mean_vertices(predicted.shape[0]).to(predicted)
        count = predicted.shape[0]
        metrics = {
            "val/vertex_error_mm": vertex_error_mm(predicted, target).mean(),
            "val/vertex_error_similarity_mm": vertex_error_mm(predicted, target, align=True).mean(),
            "val/mean_face_error_mm": vertex_error_mm(mean_face, target).mean(),
            "val/mean_face_error_similarity_mm": vertex_error_mm(mean_face, target, align=True).mean(),
        }
        self.log_dict(metrics, batch_size=count, sync_dist=True)

    @torch.no_grad()
    def log_images(self, name: str, result: Reconstruction) -> None:
        """Log input | render | overlay | UV texture rows of the first ``num_logged_images`` faces."""
        count = min(self.hparams.num_logged_images, result.image.shape[0])
        if count < 1:
            return
        render = result.render
        panels = reconstruction_panels(
            result.image[:count],
            render.image[:count],
            render.mask[:count],
            render.landmarks[:count],
            render.landmark_visibility[:count],
            result.texture[:count],
        )
        log_image_grid(self.logger, self._image_folder, name, panels, self.global_step, columns=PANELS_PER_ROW)

    def configure_optimizers(self) -> dict[str, Any]:
        """The optimiser over the regressor's trainable parameters, with its learning-rate schedule stepped per step."""
        trainable = [parameter for parameter in self.regressor.parameters() if parameter.requires_grad]
        optimiser = self.optimizer(trainable)
        scheduler = self.scheduler(optimiser, **schedule_length(self.scheduler, self.trainer.max_steps))
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the regressor's weights: the frozen components come from the run's config."""
        checkpoint["state_dict"] = {
            key: value for key, value in checkpoint["state_dict"].items() if key.startswith(REGRESSOR_PREFIX)
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Fill the frozen components' entries from this module, so that strict loading checks the regressor."""
        state = checkpoint["state_dict"]
        for key, value in self.state_dict().items():
            if not key.startswith(REGRESSOR_PREFIX):
                state.setdefault(key, value)
