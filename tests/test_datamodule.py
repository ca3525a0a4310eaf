"""FaceDataModule: batch shapes, rank splitting, corrupt samples, augmentation and flipping."""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from fastganfit.data.datamodule import FaceAugment, FaceDataModule, collate_faces, flip_face
from fastganfit.data.face_shards import FaceShardWriter, encode_face_sample
from fastganfit.data.synthetic import synthetic_set_is_current
from fastganfit.perception.crop_template import crop_template
from fastganfit.perception.landmarks import IBUG68_MIRROR

S = 32
NO_PHOTOMETRIC = {
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "blur_probability": 0.0,
    "noise_probability": 0.0,
}


def real_sample(index: int, size: int = S) -> dict:
    rng = np.random.default_rng(index)
    return {
        "key": f"real{index:03d}",
        "image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "landmarks": rng.uniform(0, size - 1, (68, 2)),
        "metadata": {
            "source": f"test:{index}",
            "box": [0, 0, 9, 9],
            "crop_transform": np.eye(2, 3),
            "landmarker": "dlib68",
        },
    }


def write_real(folder: Path, count: int, max_per_shard: int = 1) -> Path:
    with FaceShardWriter(folder, prefix="real", max_per_shard=max_per_shard) as writer:
        for index in range(count):
            writer.write(**real_sample(index))
    writer.write_manifest()
    return folder


def keys_of(loader) -> list[str]:
    return [key for batch in loader for key in batch["key"]]


@pytest.fixture(scope="module")
def synthetic_module(tmp_path_factory) -> FaceDataModule:
    root = tmp_path_factory.mktemp("datamodule")
    write_real(root / "val", 3, max_per_shard=2)
    module = FaceDataModule(
        root / "train",
        val_urls=root / "val",
        batch_size=4,
        shuffle_buffer=8,
        augment={"flip_probability": 1.0},
        synthetic={"train": {"n": 5, "seed": 2, "crop_size": S, "max_per_shard": 2, "progress": False}},
    )
    module.prepare_data()
    module.setup("fit")
    return module


def test_synthetic_batches_have_ground_truth(synthetic_module: FaceDataModule) -> None:
    batches = list(synthetic_module.train_dataloader())
    assert len(batches) == 1  # 5 samples, batch 4, drop_last
    batch = batches[0]
    assert batch["image"].shape == (4, 3, S, S) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= 0 and batch["image"].max() <= 1
    assert batch["landmarks"].shape == (4, 68, 2)
    assert {name: tuple(value.shape) for name, value in batch["params"].items()} == {
        "shape": (4, 100),
        "expression": (4, 53),
        "texture": (4, 43),
        "camera": (4, 7),
        "light": (4, 10),
    }
    assert batch["vertices"].shape == (4, 9409, 3)
    assert batch["has_ground_truth"].tolist() == [True] * 4
    assert batch["flipped"].tolist() == [False] * 4  # ground-truth samples are never flipped, even at p = 1
    assert len(set(batch["key"])) == 4 and all(key.startswith("synthetic_s2_") for key in batch["key"])
    manifest = synthetic_module.train_urls / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    synthetic_module.prepare_data()  # an existing set is not rendered again
    assert manifest.stat().st_mtime_ns == stamp


def test_a_set_drawn_with_other_settings_is_rendered_again(tmp_path: Path) -> None:
    """Changing data.synthetic (n, seed, crop size or drawing settings) re-renders the folder, with a warning,
    instead of training on the old faces."""
    arguments = {"n": 2, "seed": 4, "crop_size": S, "progress": False}
    module = FaceDataModule(tmp_path / "train", batch_size=2, synthetic={"train": arguments})
    module.prepare_data()
    manifest = tmp_path / "train" / "manifest.json"
    assert synthetic_set_is_current(tmp_path / "train", **arguments)
    tinted = {**arguments, "settings": {"light_tint": 0.3}}
    assert not synthetic_set_is_current(tmp_path / "train", **tinted)
    assert not synthetic_set_is_current(tmp_path / "train", **{**arguments, "n": 3})
    changed = FaceDataModule(tmp_path / "train", batch_size=2, synthetic={"train": tinted})
    with pytest.warns(UserWarning, match="rendered with other synthetic settings"):
        changed.prepare_data()
    assert json.loads(manifest.read_text())["generator"]["light_tint"] == 0.3
    assert synthetic_set_is_current(tmp_path / "train", **tinted)


def test_validation_batches_are_real_and_not_augmented(synthetic_module: FaceDataModule) -> None:
    batches = list(synthetic_module.val_dataloader())
    assert [batch["image"].shape[0] for batch in batches] == [3]
    batch = batches[0]
    assert "params" not in batch and "vertices" not in batch and batch["flipped"].tolist() == [False] * 3
    assert batch["key"] == ["real000", "real001", "real002"]
    torch.testing.assert_close(batch["landmarks"][1], torch.from_numpy(real_sample(1)["landmarks"]).float())


def test_two_ranks_see_disjoint_samples_covering_the_set(tmp_path: Path, monkeypatch) -> None:
    write_real(tmp_path, 8)
    monkeypatch.setenv("WORLD_SIZE", "2")
    seen = {}
    for rank, workers in ((0, 0), (1, 2)):
        monkeypatch.setenv("RANK", str(rank))
        module = FaceDataModule(
            tmp_path, batch_size=1, num_workers=workers, shuffle_buffer=4, augment=False, drop_last=False
        )
        module.setup("fit")
        seen[rank] = keys_of(module.train_dataloader())
    assert len(seen[0]) == len(seen[1]) == 4
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == [f"real{i:03d}" for i in range(8)]
    assert sorted(seen[1]) == ["real001", "real003", "real005", "real007"]  # shard i goes to rank i % 2


def test_epoch_samples_equalise_ranks(tmp_path: Path, monkeypatch) -> None:
    write_real(tmp_path, 3)  # rank 0 gets two shards, rank 1 one
    monkeypatch.setenv("WORLD_SIZE", "2")
    counts = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        module = FaceDataModule(tmp_path, batch_size=2, augment=False, epoch_samples=10, shuffle_buffer=0)
        module.setup("fit")
        counts.append([len(keys_of(module.train_dataloader())) for _ in range(2)])
    assert counts == [[4, 4], [4, 4]]  # ceil(10 / 2) = 5 samples per rank, 2 full batches each epoch


def test_corrupt_samples_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "faces-000000.tar"
    with tarfile.open(path, "w") as tar:
        for index in range(4):
            record = encode_face_sample(**real_sample(index))
            if index == 2:
                record["landmarks.npy"] = b"garbage"
            for name, data in record.items():
                if name != "__key__":
                    info = tarfile.TarInfo(f"{record['__key__']}.{name}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    module = FaceDataModule(str(path), batch_size=1, augment=True, drop_last=False)
    module.setup("fit")
    with pytest.warns(RuntimeWarning, match=r"skipping corrupt face sample \(#1\).*'real002'"):
        keys = keys_of(module.train_dataloader())
    assert sorted(keys) == ["real000", "real001", "real003"]
    assert module.train_dataset.corrupt_samples.count == 1


def test_flip_mirrors_pixels_and_landmark_order() -> None:
    # a symmetric face (the template's mean face) flips onto itself once the mirror permutation is applied
    template = crop_template(64)
    flipped = flip_face({"image": torch.zeros(3, 64, 64), "landmarks": template, "key": "t"})
    assert (flipped["landmarks"] - template).abs().max() < 0.5
    assert flipped["flipped"] is True
    # each landmark still sits on its own marked pixel: landmark i lands where the image shows mark i
    rng = np.random.default_rng(0)
    cells = rng.choice(S * S, 68, replace=False)
    landmarks = torch.tensor(np.stack([cells % S, cells // S], 1), dtype=torch.float32)
    image = torch.zeros(3, S, S)
    image[0, landmarks[:, 1].long(), landmarks[:, 0].long()] = torch.arange(1, 69) / 100
    flipped = flip_face({"image": image, "landmarks": landmarks, "key": "dots"})
    marks = flipped["image"][0, flipped["landmarks"][:, 1].long(), flipped["landmarks"][:, 0].long()]
    expected = (torch.tensor(IBUG68_MIRROR) + 1) / 100
    torch.testing.assert_close(marks, expected)
    assert IBUG68_MIRROR[36] == 45 and IBUG68_MIRROR[0] == 16 and IBUG68_MIRROR[30] == 30


def test_augment_flips_only_samples_without_ground_truth() -> None:
    sample = {"key": "k", "image": torch.rand(3, S, S), "landmarks": torch.rand(68, 2) * (S - 1), "metadata": {}}
    flip = FaceAugment(**NO_PHOTOMETRIC, flip_probability=1.0)
    out = flip(sample)
    expected = flip_face(sample)
    assert out["flipped"] is True
    assert torch.equal(out["image"], expected["image"]) and torch.equal(out["landmarks"], expected["landmarks"])
    synthetic = {**sample, "params": {"shape": torch.zeros(3)}, "vertices": torch.zeros(5, 3)}
    out = flip(synthetic)
    assert out["flipped"] is False and torch.equal(out["image"], sample["image"])
    assert torch.equal(out["landmarks"], sample["landmarks"])


def test_photometric_augmentation_changes_colours_not_geometry() -> None:
    torch.manual_seed(1)
    sample = {"key": "k", "image": torch.rand(3, S, S) * 0.5 + 0.25, "landmarks": torch.rand(68, 2) * 31}
    augment = FaceAugment(
        brightness=0.3, contrast=0.3, saturation=0.3, blur_probability=1.0, noise_probability=1.0, flip_probability=0.0
    )
    outputs = [augment(sample) for _ in range(4)]
    for out in outputs:
        assert torch.equal(out["landmarks"], sample["landmarks"]) and out["flipped"] is False
        assert out["image"].shape == (3, S, S) and out["image"].min() >= 0 and out["image"].max() <= 1
        assert (out["image"] - sample["image"]).abs().mean() > 0.01
    assert (outputs[0]["image"] - outputs[1]["image"]).abs().mean() > 0.005  # random, not a fixed transform
    # blur (sigma drawn from [0.9, 3] px here) smooths: neighbouring pixels of a noise image get closer
    blur = FaceAugment(**{**NO_PHOTOMETRIC, "blur_probability": 1.0}, max_blur_sigma=3.0, flip_probability=0.0)
    blurred = blur(sample)["image"]
    assert (blurred.diff(dim=-1).abs().mean()) < 0.7 * sample["image"].diff(dim=-1).abs().mean()


def test_collate_mixes_real_and_synthetic() -> None:
    real = {"key": "r", "image": torch.rand(3, S, S), "landmarks": torch.rand(68, 2), "metadata": {"a": 1}}
    synthetic = {
        **real,
        "key": "s",
        "params": {"shape": torch.ones(3), "light": torch.ones(2)},
        "vertices": torch.ones(5, 3),
        "flipped": False,
    }
    batch = collate_faces([real, synthetic])
    assert batch["has_ground_truth"].tolist() == [False, True]
    assert batch["params"]["shape"].tolist() == [[0, 0, 0], [1, 1, 1]] and batch["vertices"].shape == (2, 5, 3)
    assert batch["metadata"] == [{"a": 1}, {"a": 1}] and batch["key"] == ["r", "s"]
    with pytest.raises(ValueError, match="different sizes"):
        collate_faces([real, {**real, "image": torch.rand(3, S + 1, S + 1)}])
    with pytest.raises(ValueError, match="ground truth of different sizes"):
        collate_faces([synthetic, {**synthetic, "vertices": torch.ones(6, 3)}])


def test_bad_configuration_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be an integer of at least 1"):
        FaceDataModule(tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="train_urls is empty"):
        FaceDataModule([])
    with pytest.raises(TypeError, match="augment must be"):
        FaceDataModule(tmp_path, augment="yes")
    with pytest.raises(ValueError, match="flip_probability must be a probability"):
        FaceDataModule(tmp_path, augment={"flip_probability": 2.0})
    with pytest.raises(ValueError, match="synthetic takes 'train' and 'val'"):
        FaceDataModule(tmp_path, synthetic={"test": {"n": 1, "seed": 0}})
    module = FaceDataModule(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        module.setup("fit")


class _MeanColour(L.LightningModule):
    """A one-parameter model: enough to drive the DataModule through a Lightning Trainer."""

    def __init__(self) -> None:
        super().__init__()
        self.colour = torch.nn.Parameter(torch.zeros(3))

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        assert batch["image"].shape[1:] == (3, S, S) and batch["landmarks"].shape[1:] == (68, 2)
        return (batch["image"].mean((2, 3)) - self.colour).square().mean()

    def validation_step(self, batch: dict, batch_index: int) -> None:
        self.log("val_loss", (batch["image"].mean((2, 3)) - self.colour).square().mean(), batch_size=len(batch["key"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trains_with_a_lightning_trainer(tmp_path: Path) -> None:
    write_real(tmp_path / "train", 6)
    write_real(tmp_path / "val", 2)
    model = _MeanColour()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and iterable datasets
        trainer.fit(model, datamodule=FaceDataModule(tmp_path / "train", tmp_path / "val", batch_size=2))
    assert trainer.global_step == 6  # 3 batches per epoch, 2 epochs
    assert "val_loss" in trainer.callback_metrics
    assert model.colour.abs().sum() > 0


def test_configs_instantiate(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    write_real(tmp_path, 4)
    conf = Path(__file__).resolve().parents[1] / "fastganfit" / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        shards = compose(
            "train",
            overrides=["data=shards", f"data.train_urls={tmp_path}", "data.num_workers=0", "data.batch_size=2"],
        )
        synthetic = compose("train", overrides=["data=synthetic"])
    module = instantiate(shards.data)
    assert isinstance(module, FaceDataModule) and module.augment.flip_probability == 0.5
    module.setup("fit")
    assert [batch["image"].shape for batch in module.train_dataloader()] == [(2, 3, S, S)] * 2
    default = instantiate(synthetic.data)
    assert default.synthetic["train"]["seed"] != default.synthetic["val"]["seed"]
    assert default.train_urls != default.val_urls
