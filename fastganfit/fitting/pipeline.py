"""Reconstruct photos end to end: inputs -> photo -> every face (or the largest) -> aligned crop -> FaceParams
(regressed, refined or fitted from the mean face) -> files per face (and ``index.html`` for a collection).

A photo with one reconstructed face writes ``<key>/``; with several (``faces=all``), one folder per face,
``<key>_face<k>_<x0>-<y0>-<x1>-<y1>/`` (``k`` = 0 for the largest, the box in photo pixels).

Every input is handled on its own: a file that cannot be read, has no usable face, or fails later is
reported in one line (``error: <source>: <reason>``) and the others go on; notes on conversions, downscaling
or several faces are one line each (``note: <source>: ...``). A result folder appears complete or not at all.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fastganfit.data.prepare import UnusableInputError
from fastganfit.fitting.faces import FACE_CHOICES, SMALL_FACE, FaceCrop, crop_faces, graph_crop_template
from fastganfit.fitting.index_page import IndexEntry, IndexPage, write_index
from fastganfit.fitting.inputs import InputImage, resolve_inputs
from fastganfit.fitting.optimise import ObjectiveRecord, refine, regress, share_subject_groups
from fastganfit.fitting.outputs import FaceOutputs, MeshTopology, write_face_outputs
from fastganfit.fitting.paste_render import paste_render
from fastganfit.fitting.photo_texture import (
    LIGHT_MODES,
    coverage_fraction,
    detail_crops,
    detail_scale,
    photo_texture_extractor,
)
from fastganfit.fitting.photos import Photo, load_photo
from fastganfit.fitting.report_image import report_images
from fastganfit.fitting.settings import FitSettings
from fastganfit.fitting.views import FaceViews, ViewRenderer
from fastganfit.io.images import image_to_uint8, png_bytes
from fastganfit.io.output_folder import output_folder_problem
from fastganfit.params import FaceParams
from fastganfit.perception.landmarks import Landmarker
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.regression.module import FastGANFitModule
from fastganfit.texture.photo_uv import PhotoTexture

STARTS = ("regressor", "mean_face")
GROUPINGS = ("none", "all", "folder")
TEXTURE_SOURCES = ("photo", "model")


@dataclass(frozen=True)
class FitOptions:
    """How to reconstruct.

    ``start``: ``regressor`` (a trained FastGANFitModule's regressor) or ``mean_face`` (all-zero FaceParams: GANFit).
    ``settings``: the optimisation after the start (GANFit++ refinement, or GANFit), ``None`` for none.
    ``subjects``: ``none`` (every image alone), ``all`` (every image shows one person) or ``folder`` (the
    images of one folder show one person): a person's images share shape and texture latent.
    ``batch_size``: images optimised together. ``min_face``: smallest face box side (pixels) accepted;
    ``small_face``: faces below this side are reconstructed from an upsampled crop, with a note.
    ``max_side``: larger photos are downscaled to this longer side. ``progress``: progress bars.
    ``texture_source``: the OBJ's texture, ``photo`` (taken from the photo, completed by the model's; see
    :mod:`fastganfit.texture.photo_uv`) or ``model`` (the fitted texture model's). ``photo_light``: what of the
    fitted light the photo texture divides out, ``brightness`` (keeps the photo's colour balance) or ``colour``.
    ``faces``: ``all`` (every face of a photo at least ``min_face`` pixels, one result each) or ``largest``.
    """

    start: str = "regressor"
    settings: FitSettings | None = None
    subjects: str = "none"
    batch_size: int = 8
    min_face: float = 20.0
    small_face: float = SMALL_FACE
    max_side: int = 2048
    progress: bool = True
    texture_source: str = "photo"
    photo_light: str = "brightness"

    faces: str = "all"

    def __post_init__(self) -> None:
        if self.texture_source not in TEXTURE_SOURCES:
            raise ValueError(f"texture_source must be one of {TEXTURE_SOURCES}, got {self.texture_source!r}")
        if self.photo_light not in LIGHT_MODES:
            raise ValueError(f"photo_light must be one of {LIGHT_MODES}, got {self.photo_light!r}")
        if self.faces not in FACE_CHOICES:
            raise ValueError(f"faces must be one of {FACE_CHOICES}, got {self.faces!r}")
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {self.start!r}")
        if self.start == "mean_face" and self.settings is None:
            raise ValueError("fitting from the mean face needs optimisation settings")
        if self.subjects not in GROUPINGS:
            raise ValueError(f"subjects must be one of {GROUPINGS}, got {self.subjects!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.min_face < 0 or self.small_face < 0:
            raise ValueError(f"min_face and small_face must be >= 0 pixels, got {self.min_face} and {self.small_face}")
        if self.max_side < 16:
            raise ValueError(f"max_side must be at least 16 pixels, got {self.max_side}")

    @property
    def method(self) -> str:
        """``regression``, ``regression + refinement`` or ``GANFit optimisation``."""
        if self.start == "mean_face":
            return "GANFit optimisation from the mean face"
        return "regression + GANFit++ refinement" if self.settings is not None else "regression"


@dataclass
class ImageOutcome:
    """What happened to one input: its ``source``, result ``folder`` (``None`` when it failed), ``notes`` and
    the ``error`` that stopped it."""

    source: str
    folder: Path | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class FitReport:
    """A run's outcomes (in input order), notes on skipped files, the ``index`` page (if any), its duration and
    ``problems`` of the run itself (an output folder that cannot be written, an index page that could not be)."""

    outcomes: list[ImageOutcome]
    skipped: list[ImageOutcome]
    index: Path | None
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ImageOutcome]:
        """Inputs that gave no result."""
        return [outcome for outcome in self.outcomes if outcome.error is not None]

    @property
    def written(self) -> list[ImageOutcome]:
        """Inputs with a result folder."""
        return [outcome for outcome in self.outcomes if outcome.folder is not None]

    @property
    def exit_status(self) -> int:
        """0 when every input was reconstructed (and the index written), else 1 (docs/fitting.md, "Exit status")."""
        return 1 if self.failed or self.problems or not self.written else 0

    def summary(self, output: Path) -> str:
        """The run's closing line: how many images were reconstructed, where, and what failed."""
        index = f"; index: {self.index}" if self.index is not None else ""
        failed = f"; {len(self.failed)} failed" if self.failed else ""
        problems = "".join(f"; {problem}" for problem in self.problems)
        return (f"reconstructed {len(self.written)} of {len(self.outcomes)} images in {self.seconds:.1f} s into "
                f"{output}{index}{failed}{problems}")  # fmt: skip


@dataclass
class PreparedImage:
    """A face ready to fit: the input, its photo, the face's crop, the input's outcome record, the subject and
    the result folder's name ``key``."""

    item: InputImage
    photo: Photo
    face: FaceCrop
    outcome: ImageOutcome
    subject: str
    key: str


def default_log(message: str) -> None:
    """Print a message line without breaking progress bars."""
    tqdm.write(message, file=sys.stderr)


def subject_batches(images: Sequence[PreparedImage], batch_size: int) -> list[list[PreparedImage]]:
    """Group images by subject (in order of first appearance) and pack whole subjects into batches of at most
    ``batch_size`` images (a subject with more images than that gets a batch of its own)."""
    subjects: dict[str, list[PreparedImage]] = {}
    for image in images:
        subjects.setdefault(image.subject, []).append(image)
    batches: list[list[PreparedImage]] = []
    current: list[PreparedImage] = []
    for group in subjects.values():
        if current and len(current) + len(group) > batch_size:
            batches.append(current)
            current = []
        current = current + group
    if current:
        batches.append(current)
    return batches


def subject_of(item: InputImage, grouping: str) -> str:
    """The subject label of an input under ``grouping`` (:data:`GROUPINGS`)."""
    if grouping == "all":
        return "all"
    if grouping == "folder":
        return str(item.folder.resolve())
    return item.key


def mesh_topology(graph: FaceReconstructionGraph) -> MeshTopology:
    """The face model's triangles and UV layout as numpy arrays."""
    model = graph.model
    return MeshTopology(
        model.faces.detach().cpu().numpy(), model.uvs.detach().cpu().numpy(), model.face_uvs.detach().cpu().numpy()
    )


def stage_summary(history: Sequence[ObjectiveRecord]) -> dict[str, dict[str, Any]]:
    """Per stage: steps and the objective's terms (means over the batch optimised together) before the first
    and after the last update."""
    summary: dict[str, dict[str, Any]] = {}
    for record in history:
        entry = summary.setdefault(record.stage, {"first": record.terms})
        entry["steps"], entry["last"] = record.step, record.terms
    return summary


class Reconstructor:
    """Runs :func:`reconstruct_images`' steps for one graph (and regressor), landmarker and set of options."""

    def __init__(self, graph: FaceReconstructionGraph, landmarker: Landmarker, options: FitOptions,
                 log: Callable[[str], None], regressor: FastGANFitModule | None = None) -> None:  # fmt: skip
        if options.start == "regressor" and regressor is None:
            raise ValueError("start=regressor needs a trained FastGANFitModule (fit.py ckpt=...)")
        self.graph, self.regressor = graph, regressor
        self.landmarker, self.options, self.log = landmarker, options, log
        self.crop_size = graph.crop_size
        self.template = graph_crop_template(graph, self.crop_size)
        self.views = ViewRenderer(graph, self.crop_size)
        self.topology = mesh_topology(graph)
        self.device = graph.device
        self.photo_texture = photo_texture_extractor(graph, light=options.photo_light)
        self.detail_scale = detail_scale(self.photo_texture.resolution, self.crop_size)

    def fail(self, outcome: ImageOutcome, reason: str) -> None:
        """Record and print one input's failure."""
        outcome.error, outcome.folder = reason, None
        self.log(f"error: {outcome.source}: {reason}")

    def prepare(self, item: InputImage, outcome: ImageOutcome, photo: Photo | None = None) -> list[PreparedImage]:
        """Load (unless the decoded ``photo`` is given), detect and crop one input's faces; none (failure recorded in
        ``outcome``) when it cannot be used."""
        options = self.options
        try:
            photo = photo or load_photo(item.path, options.max_side)
            outcome.notes += photo.notes
            faces = crop_faces(photo.image, self.landmarker, self.template, self.crop_size, options.min_face,
                               options.faces, options.small_face)
            outcome.notes += [note for face in faces for note in face.notes]
        except UnusableInputError as error:
            self.fail(outcome, str(error))
            return []
        except Exception as error:  # anything else about one file is that file's problem, not the run's
            self.fail(outcome, f"failed ({type(error).__name__}: {error})")
            return []
        for note in outcome.notes:
            self.log(f"note: {outcome.source}: {note}")
        subject = subject_of(item, options.subjects)
        if len(faces) == 1:
            return [PreparedImage(item, photo, faces[0], outcome, subject, item.key)]
        # several people: each face is its own subject and has its own folder
        return [PreparedImage(item, photo, face, outcome, f"{subject}#{face.label}", f"{item.key}_{face.label}")
                for face in faces]

    def fit_batch(self, batch: Sequence[PreparedImage]) -> tuple[FaceParams, list[ObjectiveRecord], torch.Tensor]:
        """FaceParams of a batch (and the optimisation's history) and its crops ``[B, 3, S, S]``."""
        crops = torch.stack([torch.from_numpy(np.array(image.face.crop)) for image in batch]).to(self.device)
        crops = crops.permute(0, 3, 1, 2).float() / 255.0
        landmarks = torch.stack([torch.from_numpy(np.array(image.face.landmarks)) for image in batch]).to(self.device)
        params, history = self.fit_crops(crops, landmarks, [image.subject for image in batch])
        return params, history, crops

    def fit_crops(
        self, crops: torch.Tensor, landmarks: torch.Tensor, subject_labels: Sequence[str]
    ) -> tuple[FaceParams, list[ObjectiveRecord]]:
        """FaceParams of aligned ``crops [B, 3, S, S]`` in [0, 1] with ``landmarks [B, 68, 2]`` (crop pixels), and
        the optimisation's history; images with the same subject label share shape and texture (when grouping)."""
        labels = {label: index for index, label in enumerate(dict.fromkeys(subject_labels))}
        subjects = torch.tensor([labels[label] for label in subject_labels], device=self.device)
        shared = self.options.subjects != "none"
        if self.options.start == "regressor":
            params = regress(self.regressor, crops, landmarks)
        else:
            params = FaceParams.zeros(self.graph.sizes, crops.shape[0], device=self.device)
        history: list[ObjectiveRecord] = []
        if self.options.settings is not None:
            params, history = refine(
                self.graph, crops, landmarks, params, self.options.settings, subjects if shared else None,
                progress=self.options.progress,
            )  # fmt: skip
        elif shared:
            params = share_subject_groups(params, subjects)
        return params, history

    def outputs(self, image: PreparedImage, index: int, params: FaceParams, views: FaceViews, report: np.ndarray,
                history: Sequence[ObjectiveRecord], batch_keys: Sequence[str],
                photo_texture: PhotoTexture) -> FaceOutputs:  # fmt: skip
        """The files' content for face ``index`` of a batch (``photo_texture``: the batch's photo textures)."""
        face, photo = image.face, image.photo
        wide = image_to_uint8(views.wide[index])
        wide_mask = views.wide_mask[index, 0].detach().cpu().numpy()
        wide_transform = face.transform + np.array([[0.0, 0.0, views.wide_offset]] * 2)
        arrays = {name: values[index].detach().cpu().numpy().astype(np.float32) for name, values in params.items()}
        arrays.update(
            crop_transform=face.transform.astype(np.float64),
            crop_landmarks=face.landmarks.astype(np.float32),
            photo_landmarks=face.photo_landmarks.astype(np.float32),
            box=face.box.astype(np.float32),
            photo_scale=np.float64(photo.scale),
            crop_size=np.int64(self.crop_size),
        )
        info = {
            "source": image.outcome.source,
            "method": self.options.method,
            "notes": image.outcome.notes,
            "faces_found": face.faces,
            "detector_score": face.score,
            "photo_size": [int(photo.image.shape[1]), int(photo.image.shape[0])],
            "photo_scale": photo.scale,
            "crop_size": self.crop_size,
            "batch_objective": stage_summary(history),
            "batch": list(batch_keys),
            "subject": image.subject if self.options.subjects != "none" else None,
            "texture_source": self.options.texture_source,
            "photo_texture_coverage": coverage_fraction(photo_texture.confidence[index], self.photo_texture),
            "face_index": face.index,
            "face_box": [round(float(value), 1) for value in face.box],
        }
        chosen = photo_texture.blended if self.options.texture_source == "photo" else views.texture
        return FaceOutputs(
            vertices=views.vertices[index].detach().cpu().numpy(),
            texture=image_to_uint8(chosen[index]),
            model_texture=image_to_uint8(views.texture[index]),
            texture_mask=image_to_uint8(photo_texture.confidence[index].expand(3, -1, -1)),
            arrays=arrays,
            overlay=paste_render(photo.image, wide, wide_mask, wide_transform),
            report=report,
            info=info,
        )


def reconstruct_images(
    image: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    graph: FaceReconstructionGraph,
    landmarker: Landmarker,
    options: FitOptions,
    log: Callable[[str], None] = default_log,
    title: str = "fastganfit reconstructions",
    regressor: FastGANFitModule | None = None,
) -> FitReport:
    """Reconstruct every image of ``image`` (a file, folder, glob or list) into ``output_dir/<key>/``.

    ``graph`` gives the frozen components on its device, ``regressor`` the trained module when
    ``options.start == "regressor"``; ``landmarker`` finds faces and their 68 landmarks. Writes ``index.html``
    for a folder, glob or list.
    """
    started = time.perf_counter()
    output = Path(output_dir)
    resolved = resolve_inputs(image)
    runner = Reconstructor(graph, landmarker, options, log, regressor)
    outcomes: list[ImageOutcome] = []
    for problem in resolved.failed:
        outcome = ImageOutcome(problem.source)
        runner.fail(outcome, problem.reason)
        outcomes.append(outcome)
    if (unwritable := output_folder_problem(output)) is not None:
        log(f"error: {unwritable}")
        for item in resolved.images:
            outcomes.append(outcome := ImageOutcome(str(item.path)))
            runner.fail(outcome, "not reconstructed: " + unwritable)
        return FitReport(outcomes, [], None, time.perf_counter() - started, [unwritable])
    skipped = [ImageOutcome(problem.source, notes=[problem.reason]) for problem in resolved.skipped]
    for outcome in skipped:
        log(f"note: {outcome.source}: skipped, {outcome.notes[0]}")
    prepared: list[PreparedImage] = []
    bar = tqdm(resolved.images, desc="detect", unit="image", file=sys.stderr, disable=not options.progress)
    for item in bar:
        outcome = ImageOutcome(str(item.path))
        outcomes.append(outcome)
        prepared += runner.prepare(item, outcome)
    entries: list[IndexEntry] = []
    bar = tqdm(total=len(prepared), desc="fit", unit="face", file=sys.stderr, disable=not options.progress)
    with bar:
        for batch in subject_batches(prepared, options.batch_size):
            entries += fit_and_write(runner, batch, output)
            bar.update(len(batch))
    index, problems = None, []
    if resolved.collection:
        page = IndexPage(
            title,
            entries,
            [(outcome.source, outcome.error) for outcome in outcomes if outcome.error is not None],
            [f"{len(entries)} faces reconstructed from {len(outcomes)} images ({options.method})."],
        )
        try:
            index = write_index(output / "index.html", page, runner.topology)
        except OSError as error:  # the results are written; the run says the page is missing
            problems.append(f"index page {output / 'index.html'} could not be written ({error.strerror or error})")
            log(f"error: {problems[-1]}")
    return FitReport(outcomes, skipped, index, time.perf_counter() - started, problems)


def fit_batch_outputs(runner: Reconstructor, batch: Sequence[PreparedImage]) -> list[tuple[PreparedImage, FaceOutputs]]:
    """Fit one batch and compute each face's results; failures are recorded per image (and left out)."""
    try:
        params, history, crops = runner.fit_batch(batch)
        views = runner.views(crops, params)
        with torch.no_grad():
            sharp = detail_crops([image.photo.image for image in batch], [image.face.transform for image in batch],
                                 runner.crop_size, runner.detail_scale).to(runner.device)  # fmt: skip
            photo = runner.photo_texture(sharp, views.vertices, params.camera, params.light, views.texture)
        reports = report_images(crops, views, photo.blended)
    except Exception as error:  # the batch's images fail together; the run goes on
        for image in batch:
            runner.fail(image.outcome, f"fitting failed ({type(error).__name__}: {error})")
        return []
    results = []
    keys = [image.key for image in batch]
    for index, image in enumerate(batch):
        try:
            results.append((image, runner.outputs(image, index, params, views, reports[index], history, keys, photo)))
        except Exception as error:
            runner.fail(image.outcome, f"could not be written ({type(error).__name__}: {error})")
    return results


def fit_and_write(runner: Reconstructor, batch: Sequence[PreparedImage], output: Path) -> list[IndexEntry]:
    """Fit one batch and write each image's files; failures are recorded per image. Returns the index entries."""
    entries = []
    for image, outputs in fit_batch_outputs(runner, batch):
        try:
            folder = write_face_outputs(output / image.key, runner.topology, outputs)
        except Exception as error:
            runner.fail(image.outcome, f"could not be written ({type(error).__name__}: {error})")
            continue
        image.outcome.folder = image.outcome.folder or folder  # several faces: the first one's folder
        runner.log(f"wrote {folder}")
        entries.append(
            IndexEntry(image.key, image.outcome.source, image.outcome.notes, outputs.vertices,
                       png_bytes(outputs.texture))
        )  # fmt: skip
    return entries
