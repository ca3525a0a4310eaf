"""MixedFaceDataModule: batches that mix two face-shard sets in a configured ratio.

The use: supervised samples with ground truth (synthetic faces, scans) next to self-supervised photos, so that a
regressor learns 3D shape from the first and real appearance from the second (``experiment=hybrid``). Each
training batch of ``B`` samples holds ``n_i`` samples of the ``supervised`` set followed by ``B - n_i`` of the
``self_supervised`` one, with ``n_i = floor((i + 1) f B) - floor(i f B)`` for batch ``i`` and
``f = supervised_fraction``: exactly ``f B`` per batch when that is a whole number, and the fraction ``f`` over
any run of batches otherwise. Batches are :func:`~fastganfit.data.datamodule.collate_faces` dicts; samples
without ground truth are marked by ``has_ground_truth``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, IterableDataset

from fastganfit.data.datamodule import FaceDataModule, collate_faces

RESERVED = ("batch_size", "num_workers")


def supervised_counts(fraction: float, batch_size: int) -> Iterator[int]:
    """How many samples of the supervised set each batch holds: ``floor((i + 1) f B) - floor(i f B)``, endlessly."""
    total = fraction * batch_size
    for index in itertools.count():
        yield math.floor((index + 1) * total + 1e-9) - math.floor(index * total + 1e-9)


class MixedFaceStream(IterableDataset):
    """Samples of ``first`` and ``second`` (iterables of decoded face samples) in whole batches of ``batch_size``:
    each batch's first ``n_i`` samples from ``first`` (``n_i`` from :func:`supervised_counts`), the rest from
    ``second``. Stops before the first batch that either set cannot fill, so every batch has its exact mix."""

    def __init__(
        self, first: Iterable[dict[str, Any]], second: Iterable[dict[str, Any]], fraction: float, batch_size: int
    ) -> None:
        super().__init__()
        self.first, self.second = first, second
        self.fraction, self.batch_size = fraction, batch_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        first, second = iter(self.first), iter(self.second)
        for count in supervised_counts(self.fraction, self.batch_size):
            batch = list(itertools.islice(first, count)) + list(itertools.islice(second, self.batch_size - count))
            if len(batch) < self.batch_size:
                return
            yield from batch


class ChainedFaces(IterableDataset):
    """The samples of several iterables one after the other (validation over both sets)."""

    def __init__(self, *parts: Iterable[dict[str, Any]]) -> None:
        super().__init__()
        self.parts = parts

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return itertools.chain.from_iterable(self.parts)


class MixedFaceDataModule(L.LightningDataModule):
    """Training batches mixing a ``supervised`` and a ``self_supervised`` face-shard set (module docstring).

    ``supervised``, ``self_supervised``: :class:`FaceDataModule` keyword arguments of each set (``train_urls``,
    ``val_urls``, ``augment``, ``shuffle_buffer``, ``epoch_samples``, ``synthetic``: a synthetic set renders itself
    on first use); ``batch_size`` and ``num_workers`` are this module's. ``supervised_fraction`` in [0, 1]: the
    share of each batch taken from ``supervised``. An epoch ends when either set runs out (each worker reads its
    own shards of both: give each set at least ``num_workers`` shards). Validation runs over the ``supervised``
    set's validation shards, then the ``self_supervised`` set's (those that are given). Both sets must share one
    crop size.
    """

    def __init__(
        self,
        supervised: Mapping[str, Any],
        self_supervised: Mapping[str, Any],
        supervised_fraction: float = 0.5,
        batch_size: int = 8,
        num_workers: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(supervised_fraction, bool) or not 0.0 <= float(supervised_fraction) <= 1.0:
            raise ValueError(f"MixedFaceDataModule: supervised_fraction must be in [0, 1], got {supervised_fraction!r}")
        sets = {"supervised": supervised, "self_supervised": self_supervised}
        for name, settings in sets.items():
            if not isinstance(settings, Mapping):
                raise TypeError(f"MixedFaceDataModule: {name} must be a mapping of FaceDataModule settings")
            reserved = sorted(set(RESERVED) & set(settings))
            if reserved:
                raise ValueError(f"MixedFaceDataModule: set {reserved} on the mixing module, not in {name}")
        self.sets = {
            name: FaceDataModule(**settings, batch_size=batch_size, num_workers=num_workers, drop_last=drop_last)
            for name, settings in sets.items()
        }
        self.supervised_fraction = float(supervised_fraction)
        self.batch_size, self.num_workers, self.drop_last = batch_size, num_workers, drop_last
        self.train_dataset: MixedFaceStream | None = None
        self.val_dataset: ChainedFaces | None = None

    def prepare_data(self) -> None:
        """Render the sets' configured synthetic faces where their folders have no manifest yet (rank 0 only)."""
        for module in self.sets.values():
            module.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """Build both sets' pipelines and the mixed training stream."""
        for module in self.sets.values():
            module.setup(stage)
        supervised, photos = self.sets["supervised"], self.sets["self_supervised"]
        self.train_dataset = MixedFaceStream(
            supervised.train_dataset, photos.train_dataset, self.supervised_fraction, self.batch_size
        )
        validation = [module.val_dataset for module in (supervised, photos) if module.val_dataset is not None]
        self.val_dataset = ChainedFaces(*validation) if validation else None

    def _loader(self, dataset: IterableDataset | None, drop_last: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("MixedFaceDataModule: call setup() before asking for a dataloader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_faces,
            drop_last=drop_last,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Mixed, shuffled, augmented training batches."""
        return self._loader(self.train_dataset, self.drop_last)

    def val_dataloader(self) -> DataLoader | list:
        """Both sets' validation batches, not augmented; ``[]`` when neither has ``val_urls``."""
        if self.val_dataset is None:
            return []
        return self._loader(self.val_dataset, False)
