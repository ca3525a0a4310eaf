"""FaceDataModule: batches of aligned face crops (real or synthetic) from face shards, for the regressor.

Batches are dicts: ``image [B,3,S,S]`` float in [0, 1], ``landmarks [B,68,2]`` (crop pixels), ``key``
(list), ``metadata`` (list of dicts), ``flipped [B]`` bool and, when any sample of the batch is synthetic,
``params`` (name -> ``[B,K]``), ``vertices [B,V,3]`` (mm) and ``has_ground_truth [B]`` bool (samples
without ground truth hold zeros there).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fastganfit.data.face_shards import MANIFEST_NAME, face_dataset, face_shard_urls, read_face_manifest
from fastganfit.data.synthetic import generate_synthetic_faces, synthetic_set_is_current
from fastganfit.perception.landmarks import IBUG68_MIRROR

Urls = str | os.PathLike | Sequence[str | os.PathLike]


def flip_face(sample: dict[str, Any]) -> dict[str, Any]:
    """Mirror a decoded sample left-right: the image, landmark x (``x -> S - 1 - x``) and landmark order
    (iBUG-68 mirror permutation, so index 36 is still the right eye's outer corner). Sets ``flipped``."""
    image = sample["image"]
    landmarks = sample["landmarks"][list(IBUG68_MIRROR)].clone()
    landmarks[:, 0] = image.shape[-1] - 1 - landmarks[:, 0]
    return {**sample, "image": image.flip(-1), "landmarks": landmarks, "flipped": True}


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(image[None], (radius, radius, radius, radius), mode="replicate")
    horizontal = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(horizontal, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)[0]


@dataclass(frozen=True)
class FaceAugment:
    """Light augmentation of decoded face samples (a callable for :func:`face_dataset`).

    Photometric: brightness (x ``1 +- brightness``), contrast and saturation (blend with the mean / grey
    by ``1 +- ...``), a Gaussian blur (sigma up to ``max_blur_sigma`` px) with probability ``blur_probability``
    and Gaussian noise (std up to ``max_noise``) with probability ``noise_probability``; landmarks are
    unchanged. Geometric: a horizontal flip with probability ``flip_probability`` (:func:`flip_face`),
    only for samples *without* ground-truth parameters: a mirrored image is not the render of the stored
    shape, expression, texture, camera and light (the model's coefficients are not mirror symmetric), so
    flipping synthetic samples would break their ground truth. Randomness comes from torch's global
    generator (seeded per DataLoader worker by ``seed_everything(workers=True)``).
    """

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    blur_probability: float = 0.2
    max_blur_sigma: float = 1.0
    noise_probability: float = 0.3
    max_noise: float = 0.02
    flip_probability: float = 0.5

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"augmentation {name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("max_blur_sigma", "max_noise"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"augmentation {name} must be finite and non-negative, got {getattr(self, name)!r}")
        for name in ("blur_probability", "noise_probability", "flip_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augmentation {name} must be a probability in [0, 1], got {getattr(self, name)!r}")

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Augment one decoded sample (``image [3,S,S]``, ``landmarks [68,2]``, ...); returns a new dict."""

        def uniform(low: float, high: float) -> float:
            return low + (high - low) * float(torch.rand(()))

        image = sample["image"]
        if self.brightness > 0:
            image = image * uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast > 0:
            image = image.mean() + (image - image.mean()) * uniform(1 - self.contrast, 1 + self.contrast)
        if self.saturation > 0:
            grey = image.mean(0, keepdim=True)
            image = grey + (image - grey) * uniform(1 - self.saturation, 1 + self.saturation)
        if self.max_blur_sigma > 0 and float(torch.rand(())) < self.blur_probability:
            image = _gaussian_blur(image, uniform(0.3 * self.max_blur_sigma, self.max_blur_sigma))
        if self.max_noise > 0 and float(torch.rand(())) < self.noise_probability:
            image = image + torch.randn_like(image) * uniform(0, self.max_noise)
        augmented = {**sample, "image": image.clamp(0, 1), "flipped": False}
        if "params" not in sample and float(torch.rand(())) < self.flip_probability:
            augmented = flip_face(augmented)
        return augmented


def _not_flipped(sample: dict[str, Any]) -> dict[str, Any]:
    return {**sample, "flipped": False}


def collate_faces(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch decoded samples (see the module docstring); crops must share one size."""
    if not samples:
        raise ValueError("collate_faces: no samples")
    sizes = {tuple(sample["image"].shape) for sample in samples}
    if len(sizes) > 1:
        raise ValueError(
            f"face crops of different sizes in one batch: {sorted(sizes)} (keys "
            f"{[sample['key'] for sample in samples]})"
        )
    batch: dict[str, Any] = {
        "image": torch.stack([sample["image"] for sample in samples]),
        "landmarks": torch.stack([sample["landmarks"] for sample in samples]),
        "key": [sample["key"] for sample in samples],
        "metadata": [sample["metadata"] for sample in samples],
        "flipped": torch.tensor([bool(sample.get("flipped", False)) for sample in samples]),
    }
    truth = [sample for sample in samples if "params" in sample]
    if truth:
        first = truth[0]
        for sample in truth[1:]:
            shapes = {name: tuple(value.shape) for name, value in sample["params"].items()}
            reference = {name: tuple(value.shape) for name, value in first["params"].items()}
            if shapes != reference or sample["vertices"].shape != first["vertices"].shape:
                raise ValueError(
                    f"samples {first['key']!r} and {sample['key']!r} have ground truth of different "
                    f"sizes (params {reference} vs {shapes}): mix shard sets of one face model only"
                )
        batch["has_ground_truth"] = torch.tensor(["params" in sample for sample in samples])
        batch["params"] = {
            name: torch.stack([s["params"][name] if "params" in s else torch.zeros_like(value) for s in samples])
            for name, value in first["params"].items()
        }
        zeros = torch.zeros_like(first["vertices"])
        batch["vertices"] = torch.stack([s["vertices"] if "params" in s else zeros for s in samples])
    return batch


def _rank_and_world_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def manifest_samples(urls: Urls, what: str) -> int:
    """The number of samples of shard folders ``urls`` (from their ``manifest.json``); ``ValueError`` naming
    ``what`` for anything else (a file, glob or pattern has no sample count without reading it)."""
    entries = [urls] if isinstance(urls, str | os.PathLike) else list(urls)
    folders = [Path(entry) for entry in entries if Path(entry).is_dir()]
    if len(folders) != len(entries):
        raise ValueError(
            f"FaceDataModule: {what} must be shard folders (with manifest.json) under DDP, so that every rank can "
            f"take the same number of samples; got {urls!r} (or set data.epoch_samples for training data)"
        )
    return sum(int(read_face_manifest(folder)["samples"]) for folder in folders)


def _absolute(urls: Urls) -> Urls:
    """A local folder ``urls`` (str or path) made absolute, of the same type; lists and URLs unchanged."""
    if isinstance(urls, os.PathLike):
        return Path(urls).resolve()
    if isinstance(urls, str) and "://" not in urls:
        return str(Path(urls).resolve())
    return urls


class FaceDataModule(L.LightningDataModule):
    """Face-shard training (and validation) data for the regressor.

    ``train_urls`` / ``val_urls``: shard folders, files, globs or brace patterns (see
    :func:`~fastganfit.data.face_shards.face_shard_urls`). Shards are split across distributed ranks and
    DataLoader workers (give at least ``world_size * num_workers`` shards), training shards and samples
    are shuffled (``shuffle_buffer`` samples), and corrupt samples are skipped with a warning and counted
    (``train_dataset.corrupt_samples.count`` in the loading process; each worker counts its own).

    ``augment``: ``True`` (default :class:`FaceAugment`), ``False``/``None``, a :class:`FaceAugment` or a
    mapping of its fields; applied to training data only.

    Several ranks (DDP) get the same number of batches whatever the shard layout, so that no rank waits
    for another at the end of an epoch: training data repeats endlessly and each epoch is cut to
    ``epoch_samples / (world_size * max(num_workers, 1))`` samples per reader (``epoch_samples`` defaults to
    the folders' manifest count); readers share the shards when there are enough (each face is seen once
    per pass), and draw shards at random (webdataset's ``resampled``) when there are fewer shards than
    readers. Validation: every rank reads every shard and keeps every ``world_size``-th sample, the same
    count on each (``floor(samples / world_size)``: at most ``world_size - 1`` samples are left out), in
    one reader process.

    ``synthetic``: ``{"train": {...}, "val": {...}}`` keyword arguments of
    :func:`~fastganfit.data.synthetic.generate_synthetic_faces` (``n``, ``seed``, ``crop_size``, ...);
    :meth:`prepare_data` (global rank 0 only; the other ranks wait at a barrier) renders that set into the
    matching ``*_urls`` folder (made absolute when the data module is built) when the folder has no
    ``manifest.json`` yet: a rerun skips finished sets and re-renders interrupted ones. This makes synthetic
    faces the built-in default training set. Batches are pinned in page-locked memory when CUDA is available.
    """

    def __init__(
        self,
        train_urls: Urls,
        val_urls: Urls | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        shuffle_buffer: int = 1000,
        augment: bool | FaceAugment | Mapping[str, float] | None = True,
        epoch_samples: int | None = None,
        drop_last: bool = True,
        synthetic: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
            ("shuffle_buffer", shuffle_buffer, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"FaceDataModule: {name} must be an integer of at least {low}, got {value!r}")
        if epoch_samples is not None and (not isinstance(epoch_samples, int) or epoch_samples < 1):
            raise ValueError(f"FaceDataModule: epoch_samples must be a positive integer or None, got {epoch_samples}")
        if not train_urls:
            raise ValueError("FaceDataModule: train_urls is empty (give shard folders, files, globs or brace patterns)")
        unknown = sorted(set(synthetic or {}) - {"train", "val"})
        if unknown:
            raise ValueError(f"FaceDataModule: synthetic takes 'train' and 'val' entries, got {unknown}")
        if synthetic and "val" in synthetic and val_urls is None:
            raise ValueError("FaceDataModule: synthetic['val'] needs val_urls (the folder to render it into)")
        if synthetic:  # one folder for every node and process, wherever each starts (a shared file system)
            train_urls = _absolute(train_urls)
            val_urls = None if val_urls is None else _absolute(val_urls)
        self.prepare_data_per_node = False  # Lightning: prepare_data on global rank 0, then a barrier
        self.train_urls, self.val_urls = train_urls, val_urls
        self.batch_size, self.num_workers = batch_size, num_workers
        self.shuffle_buffer, self.epoch_samples, self.drop_last = shuffle_buffer, epoch_samples, drop_last
        self.augment = self._make_augment(augment)
        self.synthetic = {split: dict(kwargs) for split, kwargs in (synthetic or {}).items()}
        self.train_dataset: Any = None
        self.val_dataset: Any = None

    @staticmethod
    def _make_augment(augment: bool | FaceAugment | Mapping[str, float] | None) -> FaceAugment | None:
        if augment is True:
            return FaceAugment()
        if augment is False or augment is None:
            return None
        if isinstance(augment, FaceAugment):
            return augment
        if isinstance(augment, Mapping):
            return FaceAugment(**augment)
        raise TypeError(f"FaceDataModule: augment must be a bool, FaceAugment or mapping, got {type(augment).__name__}")

    def prepare_data(self) -> None:
        """Render the configured synthetic sets whose folders have no finished set drawn with the configured
        arguments yet (no manifest, or one recording other settings: re-rendered, with a warning; rank 0 only)."""
        for split, kwargs in self.synthetic.items():
            urls = self.train_urls if split == "train" else self.val_urls
            if not isinstance(urls, str | os.PathLike):
                raise ValueError(
                    f"FaceDataModule: synthetic[{split!r}] needs {split}_urls to be one folder, got {urls!r}"
                )
            if synthetic_set_is_current(urls, **kwargs):
                continue
            if (Path(urls) / MANIFEST_NAME).is_file():
                warnings.warn(f"FaceDataModule: {urls} was rendered with other synthetic settings than "
                              f"data.synthetic.{split}; rendering it again", stacklevel=2)
            generate_synthetic_faces(urls, **{"overwrite": True, **kwargs})

    def setup(self, stage: str | None = None) -> None:
        """Build the webdataset pipelines (after :meth:`prepare_data`, on every rank)."""
        rank, world_size = _rank_and_world_size()
        readers = world_size * max(self.num_workers, 1)
        augment = self.augment or _not_flipped
        epoch_samples = self.epoch_samples
        if world_size > 1 and epoch_samples is None:
            epoch_samples = manifest_samples(self.train_urls, "data.train_urls")
        resampled = world_size > 1 and len(face_shard_urls(self.train_urls)) < readers
        train = face_dataset(self.train_urls, self.shuffle_buffer, augment=augment, resampled=resampled)
        if epoch_samples is not None:
            train = train.with_epoch(math.ceil(epoch_samples / readers))  # repeats the shards endlessly
        self.train_dataset = train
        if self.val_urls is None:
            return
        if world_size == 1:
            self.val_dataset = face_dataset(self.val_urls, augment=_not_flipped)
            return
        per_rank = manifest_samples(self.val_urls, "data.val_urls") // world_size
        every = face_dataset(self.val_urls, split_by_node=False, split_by_worker=False, augment=_not_flipped)
        self.val_dataset = every.slice(rank, per_rank * world_size, world_size)

    def _loader(self, dataset: Any, drop_last: bool, num_workers: int) -> DataLoader:
        if dataset is None:
            raise RuntimeError("FaceDataModule: call setup() before asking for a dataloader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=num_workers,
            collate_fn=collate_faces,
            drop_last=drop_last,
            persistent_workers=num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches (see the module docstring)."""
        return self._loader(self.train_dataset, self.drop_last, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in shard order, not augmented; ``[]`` (no validation) without ``val_urls``."""
        if self.val_urls is None:
            return []
        # under DDP one reader per rank: every rank's sample count is fixed by the stride over all shards
        workers = self.num_workers if _rank_and_world_size()[1] == 1 else min(self.num_workers, 1)
        return self._loader(self.val_dataset, False, workers)
