"""FaceDataModule under DDP without processes (RANK / WORLD_SIZE set as a launcher sets them): every rank gets the
same number of training and validation batches for any shard layout, and validation samples do not repeat."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastganfit.data.datamodule import FaceDataModule
from fastganfit.data.synthetic import generate_synthetic_faces


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One training shard of 3 faces (fewer shards than 2 ranks), training shards of 2 + 1 faces, one validation
    shard of 5 faces."""
    root = tmp_path_factory.mktemp("ddp_data")
    layouts = {"one_shard": (3, 3, 0), "uneven": (3, 2, 1), "val": (5, 5, 2)}
    for name, (count, per_shard, seed) in layouts.items():
        generate_synthetic_faces(root / name, n=count, seed=seed, crop_size=32, max_per_shard=per_shard, progress=False)
    return {name: root / name for name in layouts}


def keys_per_rank(monkeypatch: pytest.MonkeyPatch, train: Path, val: Path) -> list[tuple[list[str], list[str]]]:
    ranks = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        data = FaceDataModule(str(train), str(val), batch_size=1, num_workers=0, shuffle_buffer=0, augment=False)
        data.setup("fit")
        train_keys = [key for batch in data.train_dataloader() for key in batch["key"]]
        val_keys = [key for batch in data.val_dataloader() for key in batch["key"]]
        ranks.append((train_keys, val_keys))
    return ranks


@pytest.mark.parametrize("layout", ["one_shard", "uneven"])
def test_every_rank_gets_the_same_number_of_batches(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    (train0, val0), (train1, val1) = keys_per_rank(monkeypatch, folders[layout], folders["val"])
    assert len(train0) == len(train1) == 2  # ceil(3 faces / 2 readers), from the manifest
    assert len(val0) == len(val1) == 2 and not set(val0) & set(val1)  # floor(5 / 2) each, no face twice


def test_ddp_needs_a_sample_count_for_globs(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    glob = str(folders["uneven"] / "*.tar")
    data = FaceDataModule(glob, batch_size=1, num_workers=0, augment=False)
    with pytest.raises(ValueError, match=r"data\.train_urls must be shard folders"):
        data.setup("fit")
    FaceDataModule(glob, batch_size=1, num_workers=0, augment=False, epoch_samples=4).setup("fit")
