"""The front door: one object that reconstructs faces from photos, as ``fit.py`` does, for Python code.

    import fastganfit
    reconstructor = fastganfit.FaceReconstructor.from_checkpoint("last.ckpt")
    result = reconstructor.reconstruct("photo.jpg")[0]   # one FaceReconstruction per face found
    result.save("out/photo")                              # the files fit.py writes (mesh.obj, texture.png, ...)

:meth:`FaceReconstructor.from_checkpoint` rebuilds a trained FastGANFitModule (regression; ``refine=True`` adds
GANFit++ refinement); :meth:`FaceReconstructor.from_components` fits from the mean face (GANFit) with the default
components or others. Settings left out (landmarker, refinement and GANFit stages, components) are fit.py's
defaults (``fastganfit/conf/fit.yaml``). ``fit.py``, ``evaluate.py``, the photos -> UV-shards command, ``bench/``
and ``scripts/`` build through this class.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image

from fastganfit.data.prepare import sample_key
from fastganfit.fitting.inputs import InputImage, resolve_inputs
from fastganfit.fitting.outputs import FaceOutputs, MeshTopology, write_face_outputs
from fastganfit.fitting.package_config import instantiate_packaged, packaged_fit_config, require_component_values
from fastganfit.fitting.photos import Photo, array_photo, decoded_photo
from fastganfit.fitting.pipeline import (
    FitOptions,
    FitReport,
    ImageOutcome,
    PreparedImage,
    Reconstructor,
    default_log,
    fit_batch_outputs,
    reconstruct_images,
    subject_batches,
)
from fastganfit.fitting.settings import FitSettings
from fastganfit.params import GROUPS
from fastganfit.perception.landmarks import Landmarker
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.regression.checkpoint import build_graph, load_fast_ganfit
from fastganfit.regression.component_values import COMPONENT_PATHS, FILE_KEYS, ComponentOption
from fastganfit.regression.module import FastGANFitModule

#: What :meth:`FaceReconstructor.reconstruct` takes: a path (file, folder or glob), a PIL image or a uint8 RGB array
#: ``[H, W, 3]``, or a list of those.
ImageInput = str | os.PathLike | Image.Image | np.ndarray
ON_ERROR = ("raise", "skip")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (or ``None``) -> cuda when available, else cpu; anything else as torch reads it (checked)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device}: CUDA is not available on this machine")
    return resolved


@dataclass(frozen=True)
class FaceReconstruction:
    """One reconstructed face: what ``fit.py`` writes into a result folder, in memory.

    ``source``: the input (path or ``images[i]``); ``key``: the result folder's name fit.py gives it; ``outputs``:
    the files' content (:class:`~fastganfit.fitting.outputs.FaceOutputs`); ``topology``: the face model's triangles
    and UV layout. The properties give the parts: ``vertices [V, 3]`` (mm, model frame), ``faces [F, 3]``,
    ``texture`` (the exported UV texture, uint8 ``[Ht, Wt, 3]``), ``model_texture``, ``params`` (FaceParams groups),
    landmarks, crop geometry and ``notes``.
    """

    source: str
    key: str
    outputs: FaceOutputs
    topology: MeshTopology

    @property
    def vertices(self) -> np.ndarray:
        """``[V, 3]`` mesh vertices in mm (the face model's frame)."""
        return self.outputs.vertices

    @property
    def faces(self) -> np.ndarray:
        """``[F, 3]`` triangles (vertex indices)."""
        return self.topology.faces

    @property
    def texture(self) -> np.ndarray:
        """The mesh's UV texture, uint8 ``[Ht, Wt, 3]``: the photo texture (completed by the model's) or, with
        ``texture_source="model"``, the fitted model's."""
        return self.outputs.texture

    @property
    def model_texture(self) -> np.ndarray | None:
        """The fitted texture model's UV texture, uint8 ``[Ht, Wt, 3]`` (``None`` without a photo texture)."""
        return self.outputs.model_texture

    @property
    def texture_mask(self) -> np.ndarray | None:
        """The photo texture's confidence, uint8 ``[Ht, Wt, 3]`` (grey)."""
        return self.outputs.texture_mask

    @property
    def params(self) -> dict[str, np.ndarray]:
        """FaceParams groups (``shape``, ``expression``, ``texture``, ``camera``, ``light``), float32 arrays."""
        return {name: self.outputs.arrays[name] for name in GROUPS}

    @property
    def crop_landmarks(self) -> np.ndarray:
        """``[68, 2]`` detected landmarks in aligned-crop pixels."""
        return self.outputs.arrays["crop_landmarks"]

    @property
    def photo_landmarks(self) -> np.ndarray:
        """``[68, 2]`` detected landmarks in photo pixels (of the photo after any downscaling)."""
        return self.outputs.arrays["photo_landmarks"]

    @property
    def crop_transform(self) -> np.ndarray:
        """``[2, 3]`` photo pixels -> aligned-crop pixels."""
        return self.outputs.arrays["crop_transform"]

    @property
    def box(self) -> np.ndarray:
        """``[4]`` the detector's face box ``x0, y0, x1, y1`` (photo pixels)."""
        return self.outputs.arrays["box"]

    @property
    def crop_size(self) -> int:
        """Side of the aligned crop (pixels)."""
        return int(self.outputs.arrays["crop_size"])

    @property
    def photo_scale(self) -> float:
        """The factor the photo was downscaled by before detection (1: not downscaled)."""
        return float(self.outputs.arrays["photo_scale"])

    @property
    def notes(self) -> list[str]:
        """Notes on the input (conversions, downscaling, several faces)."""
        return list(self.outputs.info["notes"])

    @property
    def overlay(self) -> np.ndarray:
        """The render over the photo, uint8 ``[H, W, 3]``."""
        return self.outputs.overlay

    @property
    def report(self) -> np.ndarray:
        """input | render | overlay | model texture | photo texture | side view, uint8."""
        return self.outputs.report

    @property
    def info(self) -> dict[str, Any]:
        """What ``fit.json`` holds (source, method, notes, objective per stage, ...)."""
        return self.outputs.info

    def save(self, folder: str | os.PathLike) -> Path:
        """Write fit.py's files into ``folder`` (``mesh.obj`` + ``mesh.mtl`` + ``texture.png``, ``mesh.glb``,
        ``params.npz``, ``overlay.png``, ``report.png``, ``fit.json``, ``texture_model.png``, ``texture_mask.png``;
        :mod:`fastganfit.fitting.outputs`), all together or none; returns the folder."""
        return write_face_outputs(folder, self.topology, self.outputs)

    def __repr__(self) -> str:
        height, width = self.texture.shape[:2]
        return (
            f"FaceReconstruction(source={self.source!r}, face {self.info['face_index']} of {self.info['faces_found']}, "
            f"{len(self.vertices)} vertices (mm), {len(self.faces)} triangles, texture {width}x{height} "
            f"({self.info['texture_source']}), method={self.info['method']!r}, notes={self.notes})"
        )


class FaceReconstructor:
    """Reconstructs faces from photos with one graph of frozen components and, optionally, a trained regressor.

    ``graph``: the components on their device; ``regressor``: a trained FastGANFitModule (regression, GANFit++ with
    ``refine=True``), or ``None`` (GANFit from the mean face); ``landmarker``: face detector + 68 landmarks;
    ``refinement`` / ``ganfit``: the optimisation stages; ``options``: batch size, face size, texture source, ...
    (:class:`~fastganfit.fitting.pipeline.FitOptions`; its ``start`` and ``settings`` are set per call). Left out,
    ``landmarker``, ``refinement`` and ``ganfit`` are fit.py's defaults, read when first needed.
    """

    def __init__(
        self,
        graph: FaceReconstructionGraph,
        regressor: FastGANFitModule | None = None,
        landmarker: Landmarker | None = None,
        refinement: FitSettings | None = None,
        ganfit: FitSettings | None = None,
        options: FitOptions | None = None,
        log: Callable[[str], None] = default_log,
    ) -> None:
        self.graph, self.regressor = graph, regressor
        self._landmarker, self._refinement, self._ganfit = landmarker, refinement, ganfit
        self.options = options if options is not None else FitOptions()
        self.log = log

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        *,
        device: str | torch.device | None = "auto",
        landmarker: Landmarker | None = None,
        refinement: FitSettings | None = None,
        options: FitOptions | None = None,
        log: Callable[[str], None] = default_log,
        **component_values: Any,
    ) -> FaceReconstructor:
        """The FastGANFitModule of a ``train.py`` checkpoint (read once) with its components.

        ``component_values`` apply on top of the checkpoint's components, as fit.py's component overrides do:
        ``identity={"weights": PATH}`` or ``**{"identity.weights": PATH}`` sets a value (e.g. a licensed file that
        moved since training); an option, by name (``identity="arcface_iresnet50"``) or as a whole config (a mapping
        with ``_target_``, whose file keys are applied as values), must describe the trained component, or it is a
        ``ValueError``: the regressor was sized for the trained components.
        """
        values, component_options = checkpoint_request(component_values)
        return cls.load_checkpoint(path, values, component_options, device=device, landmarker=landmarker,
                                   refinement=refinement, options=options, log=log)  # fmt: skip

    @classmethod
    def load_checkpoint(
        cls,
        path: str | os.PathLike,
        values: Mapping[str, Any] | None = None,
        component_options: Sequence[ComponentOption] = (),
        *,
        device: str | torch.device | None = "auto",
        landmarker: Landmarker | None = None,
        refinement: FitSettings | None = None,
        options: FitOptions | None = None,
        log: Callable[[str], None] = default_log,
    ) -> FaceReconstructor:
        """:meth:`from_checkpoint` with the component values as dotted model config keys (``renderer.lighting.x``) and
        the options as :class:`~fastganfit.regression.component_values.ComponentOption` (as the command lines give
        them, :mod:`fastganfit.cli.components`)."""
        module = load_fast_ganfit(path, resolve_device(device), values, component_options)
        return cls(module.graph, module, landmarker, refinement, None, options, log)

    @classmethod
    def from_components(
        cls,
        *,
        device: str | torch.device | None = "auto",
        landmarker: Landmarker | None = None,
        ganfit: FitSettings | None = None,
        options: FitOptions | None = None,
        log: Callable[[str], None] = default_log,
        **components: Any,
    ) -> FaceReconstructor:
        """GANFit from the mean face with fit.py's components (``fastganfit/conf/components/default.yaml`` and
        ``fit.yaml``: the ICT face model, the default texture prior, ...), changed by ``components``: an option by
        name (``facemodel="bfm2009"``), values (``facemodel={"path": PATH}``, ``**{"renderer.backend": "torch"}``)
        or a whole config (a mapping with ``_target_``). ``ValueError`` naming a value an option needs and lacks: a
        licensed asset's ``paths.<key>`` not set (``facemodel="bfm2009"`` reads ``paths.bfm2009``) with the local
        paths file to name it in (docs/assets.md), as fit.py says it."""
        cfg = components_config(components)
        require_component_values(cfg, 'as the component\'s value (facemodel={"path": FILE, "landmark_indices": FILE})')
        graph = build_graph(OmegaConf.to_container(cfg.model, resolve=True), resolve_device(device))
        return cls(graph, None, landmarker, None, ganfit, options, log)

    @property
    def device(self) -> torch.device:
        """Where the components run."""
        return self.graph.device

    @property
    def landmarker(self) -> Landmarker:
        """The face detector + 68 landmarks (fit.py's default, ``conf/landmarks/dlib.yaml``, when none was given)."""
        if self._landmarker is None:
            self._landmarker = instantiate_packaged("landmarks")
        return self._landmarker

    @property
    def refinement(self) -> FitSettings:
        """GANFit++ refinement stages (``conf/fit/refine.yaml`` when none were given)."""
        if self._refinement is None:
            self._refinement = instantiate_packaged("refinement")
        return self._refinement

    @property
    def ganfit(self) -> FitSettings:
        """GANFit stages from the mean face (``conf/fit/ganfit.yaml`` when none were given)."""
        if self._ganfit is None:
            self._ganfit = instantiate_packaged("ganfit")
        return self._ganfit

    def fit_options(self, refine: bool = False, faces: str | None = None) -> FitOptions:
        """The options of one call: with a regressor, regression (``refine=True``: + GANFit++ refinement); without,
        GANFit from the mean face (whatever ``refine`` says). ``faces``: ``all`` or ``largest`` (``None``: the
        options')."""
        faces = faces if faces is not None else self.options.faces
        if self.regressor is None:
            return replace(self.options, start="mean_face", settings=self.ganfit, faces=faces)
        return replace(self.options, start="regressor", settings=self.refinement if refine else None, faces=faces)

    def runner(self, refine: bool = False, faces: str | None = None, detect: bool = True) -> Reconstructor:
        """The pipeline's :class:`~fastganfit.fitting.pipeline.Reconstructor` for one call's options (without a
        landmarker when ``detect`` is false: aligned crops only)."""
        return Reconstructor(self.graph, self.landmarker if detect else None, self.fit_options(refine, faces),
                             self.log, self.regressor)  # fmt: skip

    def reconstruct(
        self,
        images: ImageInput | Sequence[ImageInput],
        refine: bool = False,
        faces: str | None = None,
        on_error: str = "raise",
    ) -> list[FaceReconstruction]:
        """Reconstruct every face of ``images`` (a path, folder or glob, a PIL image, a uint8 RGB array
        ``[H, W, 3]``, or a list of those), in input order (largest face first); ``refine`` and ``faces``: see
        :meth:`fit_options`. A bad input (missing path, wrong array) raises naming it before anything is fitted; an
        input without a usable face (or whose fit fails) raises with the reason, or, with ``on_error="skip"``, is
        logged and left out."""
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        runner = self.runner(refine, faces)
        inputs = input_images(images, runner.options.max_side)
        prepared: list[PreparedImage] = []
        for item, photo in inputs:
            outcome = ImageOutcome(str(item.path))
            prepared += runner.prepare(item, outcome, photo)
            self.check(outcome, on_error)
        results = []
        for batch in subject_batches(prepared, runner.options.batch_size):
            for image, outputs in fit_batch_outputs(runner, batch):
                results.append(FaceReconstruction(image.outcome.source, image.key, outputs, runner.topology))
            for image in batch:
                self.check(image.outcome, on_error)
        return results

    @staticmethod
    def check(outcome: ImageOutcome, on_error: str) -> None:
        """Raise ``ValueError`` naming a failed input unless failures are skipped."""
        if outcome.error is not None and on_error == "raise":
            raise ValueError(f"{outcome.source}: {outcome.error}")

    def reconstruct_to_folder(
        self,
        image: str | os.PathLike | Sequence[str | os.PathLike],
        output: str | os.PathLike,
        refine: bool = False,
        faces: str | None = None,
    ) -> FitReport:
        """fit.py's run: every image of ``image`` (file, folder, glob or list) into ``output/<key>/`` (and
        ``index.html`` for several), each input reported on its own (:func:`~fastganfit.fitting.pipeline.
        reconstruct_images`: failures do not stop the others)."""
        return reconstruct_images(image, output, self.graph, self.landmarker, self.fit_options(refine, faces),
                                  self.log, regressor=self.regressor)  # fmt: skip

    def __repr__(self) -> str:
        kind = "regressor" if self.regressor is not None else "GANFit from the mean face"
        return f"FaceReconstructor({kind}, crop {self.graph.crop_size} px, on {self.device})"


def input_images(images: ImageInput | Sequence[ImageInput], max_side: int) -> list[tuple[InputImage, Photo | None]]:
    """Each input as an :class:`InputImage` with its decoded :class:`Photo` (``None`` for a file, decoded later),
    keys as fit.py gives them. Raises (naming the input) for a missing path, an array of another dtype or shape and
    an object of another type."""
    single = isinstance(images, str | os.PathLike | Image.Image | np.ndarray)
    entries = [images] if single else list(images)
    used: set[str] = set()
    checked: list[tuple[InputImage, Photo | None]] = []
    for index, entry in enumerate(entries):
        name = "image" if single else f"images[{index}]"
        if isinstance(entry, str | os.PathLike):
            resolved = resolve_inputs(entry)
            if resolved.failed:
                raise FileNotFoundError(f"{name}: {resolved.failed[0].reason}")
            for item in resolved.images:
                checked.append((replace(item, key=sample_key(Path(item.key), None, used)), None))
            continue
        if isinstance(entry, np.ndarray):
            photo = array_photo(entry, max_side, name)
        elif isinstance(entry, Image.Image):
            photo = decoded_photo(entry, max_side)
        else:
            raise TypeError(f"{name}: expected a path, a PIL image or a uint8 RGB numpy array, got "
                            f"{type(entry).__name__}")  # fmt: skip
        key = sample_key(Path(f"image{index}"), None, used)
        checked.append((InputImage(Path(name), key, Path.cwd()), photo))
    return checked


def checkpoint_request(component_values: Mapping[str, Any]) -> tuple[dict[str, Any], list[ComponentOption]]:
    """Python component values (:meth:`FaceReconstructor.from_checkpoint`) as dotted model config keys and the
    options to check against the trained components."""
    values: dict[str, Any] = {}
    options: list[ComponentOption] = []
    for key, value in component_values.items():
        group, _, rest = key.partition(".")
        path = component_path(group, key)
        if rest:
            values[f"{path}.{rest}"] = value
        elif isinstance(value, str):
            chosen = packaged_fit_config([f"{group}={value}"])[group]
            config = {}
            for name in chosen:  # key by key: an option's file keys may refer to paths not set (conf/paths), and
                if name in FILE_KEYS or OmegaConf.is_missing(chosen, name):  # are not compared with the checkpoint's
                    continue
                entry = chosen[name]
                nested = isinstance(entry, DictConfig | ListConfig)
                config[name] = OmegaConf.to_container(entry, resolve=True) if nested else entry
            options.append(ComponentOption(f"{group}={value}", group, config))
        elif isinstance(value, Mapping):
            if "_target_" in value:
                options.append(ComponentOption(f"{group}={value['_target_']}", group, dict(value)))
                values.update({f"{path}.{name}": entry for name, entry in value.items() if name in FILE_KEYS})
            else:
                values.update({f"{path}.{name}": entry for name, entry in value.items()})
        else:
            raise TypeError(f"{key}={value!r}: give an option name, a mapping of values or a dotted key")
    return values, options


def components_config(components: Mapping[str, Any]) -> DictConfig:
    """fit.yaml's configuration with ``components`` applied (:meth:`FaceReconstructor.from_components`)."""
    choices = []
    for key, value in components.items():
        component_path(key.partition(".")[0], key)
        if "." not in key and isinstance(value, str):
            choices.append(f"{key}={value}")
    cfg = packaged_fit_config(choices)
    for key, value in components.items():
        if "." in key:
            OmegaConf.update(cfg, key, value, merge=True)
        elif isinstance(value, Mapping):
            if "_target_" in value:
                cfg[key] = dict(value)
            else:
                for name, entry in value.items():
                    OmegaConf.update(cfg, f"{key}.{name}", entry, merge=True)
        elif not isinstance(value, str):
            raise TypeError(f"{key}={value!r}: give an option name, a mapping of values or a dotted key")
    return cfg


def component_path(group: str, key: str) -> str:
    """The model config path of component ``group``; ``ValueError`` naming ``key`` when it is no component."""
    if group not in COMPONENT_PATHS:
        raise ValueError(f"{key}: not a component; components are {sorted(COMPONENT_PATHS)}")
    return COMPONENT_PATHS[group]

