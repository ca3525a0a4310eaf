"""MixedFaceDataModule: the configured share of supervised samples per batch, epochs, validation, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fastganfit.data.face_shards import FaceShardWriter
from fastganfit.data.mixing import MixedFaceDataModule, MixedFaceStream, supervised_counts
from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.reconstruction.supervised import SupervisedLoss
from fastganfit.training.stages import stage_configs

S = 32
CONF = Path(__file__).resolve().parents[1] / "fastganfit" / "conf"


def write_photos(folder: Path, count: int) -> Path:
    """``count`` photo-like samples (random pixels and landmarks, no ground truth), one per shard."""
    with FaceShardWriter(folder, prefix="photo", max_per_shard=1) as writer:
        for index in range(count):
            rng = np.random.default_rng(index)
            writer.write(
                key=f"photo{index:03d}",
                image=rng.integers(0, 256, (S, S, 3), dtype=np.uint8),
                landmarks=rng.uniform(0, S - 1, (68, 2)),
                metadata={
                    "source": "test",
                    "box": [0, 0, 9, 9],
                    "crop_transform": np.eye(2, 3),
                    "landmarker": "dlib68",
                },
            )
    writer.write_manifest()
    return folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mixing")
    generate_synthetic_faces(root / "synthetic", n=12, seed=3, crop_size=S, max_per_shard=4, progress=False)
    return {"synthetic": root / "synthetic", "photos": write_photos(root / "photos", 20)}


def mixed(sets: dict[str, Path], fraction: float, batch_size: int, **kwargs) -> MixedFaceDataModule:
    module = MixedFaceDataModule(
        {
            "train_urls": str(sets["synthetic"]),
            "val_urls": str(sets["synthetic"]),
            "augment": False,
            "shuffle_buffer": 4,
        },
        {"train_urls": str(sets["photos"]), "val_urls": str(sets["photos"]), "augment": False, "shuffle_buffer": 4},
        supervised_fraction=fraction,
        batch_size=batch_size,
        **kwargs,
    )
    module.prepare_data()
    module.setup("fit")
    return module


def test_supervised_counts_give_the_fraction() -> None:
    assert list(zip(range(4), supervised_counts(0.5, 8), strict=False)) == [(i, 4) for i in range(4)]
    counts = [count for _, count in zip(range(10), supervised_counts(0.3, 4), strict=False)]
    assert sum(counts) == 12 and set(counts) <= {1, 2}  # 30 % of 40 samples, spread evenly
    assert all(count == 0 for _, count in zip(range(5), supervised_counts(0.0, 4), strict=False))
    assert all(count == 4 for _, count in zip(range(5), supervised_counts(1.0, 4), strict=False))


@pytest.mark.parametrize(("fraction", "batch_size", "expected"), [(0.5, 4, [2, 2, 2, 2, 2, 2]), (0.25, 8, [2, 2, 2])])
def test_batches_have_the_configured_mix(sets, fraction: float, batch_size: int, expected: list[int]) -> None:
    batches = list(mixed(sets, fraction, batch_size).train_dataloader())
    # 12 synthetic faces: at 2 per batch the supervised set runs out after 6 batches (batch 4) or the 20 photos
    # after 3 batches of 6 (batch 8); the epoch stops there, before a batch it cannot fill
    assert [int(batch["has_ground_truth"].sum()) for batch in batches] == expected
    for batch in batches:
        truth = batch["has_ground_truth"]
        assert truth.shape == (batch_size,) and batch["image"].shape == (batch_size, 3, S, S)
        assert all(key.startswith("photo") != bool(has) for key, has in zip(batch["key"], truth, strict=True))
        assert batch["vertices"][~truth].abs().sum() == 0 and batch["vertices"][truth].abs().sum() > 0


def test_fraction_one_and_zero(sets) -> None:
    only_truth = list(mixed(sets, 1.0, 4).train_dataloader())
    assert len(only_truth) == 3 and all(bool(batch["has_ground_truth"].all()) for batch in only_truth)
    photos = list(mixed(sets, 0.0, 4).train_dataloader())
    assert len(photos) == 5 and all("has_ground_truth" not in batch for batch in photos)


def test_stream_stops_before_a_batch_it_cannot_fill() -> None:
    stream = MixedFaceStream([{"key": f"a{i}"} for i in range(5)], [{"key": f"b{i}"} for i in range(100)], 0.5, 4)
    assert [sample["key"] for sample in stream] == ["a0", "a1", "b0", "b1", "a2", "a3", "b2", "b3"]


def test_validation_covers_both_sets(sets) -> None:
    keys = [key for batch in mixed(sets, 0.5, 4).val_dataloader() for key in batch["key"]]
    assert len(keys) == 12 + 20 and len(set(keys)) == 32
    assert all(not key.startswith("photo") for key in keys[:12])  # the supervised set first


def test_bad_settings_are_rejected(sets) -> None:
    with pytest.raises(ValueError, match="supervised_fraction"):
        MixedFaceDataModule({"train_urls": "a"}, {"train_urls": "b"}, supervised_fraction=1.5)
    with pytest.raises(ValueError, match=r"\['batch_size'\].*supervised"):
        MixedFaceDataModule({"train_urls": "a", "batch_size": 2}, {"train_urls": "b"})
    with pytest.raises(TypeError, match="self_supervised must be a mapping"):
        MixedFaceDataModule({"train_urls": "a"}, "b")


def test_hybrid_experiment_composes_and_instantiates(sets) -> None:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        hybrid = compose(
            "train",
            overrides=[
                "experiment=hybrid",
                "run_dir=/tmp/hybrid_run",
                f"data.supervised.train_urls={sets['synthetic']}",
                f"data.supervised.val_urls={sets['synthetic']}",
                f"data.self_supervised.train_urls={sets['photos']}",
                "data.num_workers=0",
                "data.batch_size=4",
            ],
        )
    module = instantiate(hybrid.data)
    assert isinstance(module, MixedFaceDataModule) and module.supervised_fraction == 0.5
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert int(batch["has_ground_truth"].sum()) == 2
    loss = instantiate(hybrid.loss)
    assert isinstance(loss.supervised, SupervisedLoss) and loss.supervised.active_terms == ["vertex"]
    stages = dict(stage_configs(hybrid))
    assert list(stages) == ["align", "full"]
    assert stages["full"].model.loss.identity > 0 and stages["full"].model.loss.supervised.vertex > 0
