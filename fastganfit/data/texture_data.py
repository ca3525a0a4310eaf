"""Training data for the texture GAN: procedural UV textures generated on the fly, or UV shards."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from fastganfit.data.uv_shards import uv_texture_dataset
from fastganfit.texture.procedural import ProceduralTexture

SOURCES = ("procedural", "shards")


class ProceduralTextureStream(IterableDataset):
    """An endless stream of ``{"texture": [3, R, R], "mask": [1, R, R]}`` procedural UV textures.

    Each DataLoader worker (and each distributed rank) draws from its own seeded generator, so
    streams never repeat each other and a run is reproducible for a given ``seed``.
    """

    def __init__(self, resolution: int = 128, seed: int = 0, chunk: int = 32) -> None:
        super().__init__()
        self.resolution, self.seed, self.chunk = resolution, seed, chunk

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        rank = int(os.environ.get("RANK", 0))
        stream_id = rank * 1000 + (worker.id if worker else 0)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + stream_id)
        texture_model = ProceduralTexture.for_ict(self.resolution)
        mask = torch.ones(1, self.resolution, self.resolution)
        while True:
            with torch.no_grad():
                textures = texture_model.sample(self.chunk, generator)
            for texture in textures:
                yield {"texture": texture, "mask": mask}


class TextureDataModule(L.LightningDataModule):
    """UV textures for :class:`~fastganfit.texture.gan_module.TextureGANModule`.

    ``source="procedural"``: :class:`ProceduralTextureStream` at ``resolution``. ``source="shards"``:
    webdataset UV shards at ``urls`` (a list, glob or brace pattern; see ``data/uv_shards.py``),
    resized to ``resolution``, shuffled through ``shuffle_buffer`` and split across ranks and workers.
    """

    def __init__(
        self,
        source: str = "procedural",
        urls: str | Sequence[str] | None = None,
        resolution: int = 128,
        batch_size: int = 8,
        num_workers: int = 0,
        shuffle_buffer: int = 1000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"texture data source must be one of {SOURCES}, got {source!r}")
        if source == "shards" and not urls:
            raise ValueError("texture data: source=shards needs urls= (shard files, a glob or a brace pattern)")
        self.source, self.urls, self.resolution = source, urls, resolution
        self.batch_size, self.num_workers = batch_size, num_workers
        self.shuffle_buffer, self.seed = shuffle_buffer, seed

    def train_dataloader(self) -> DataLoader:
        """An endless (procedural) or shard-backed loader of texture batches."""
        if self.source == "procedural":
            dataset = ProceduralTextureStream(self.resolution, self.seed)
        else:
            dataset = uv_texture_dataset(self.urls, resolution=self.resolution, shuffle_buffer=self.shuffle_buffer)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
        )
