"""IdentityNet interface (frozen, eval, selectable layers, differentiable) and the Hydra config group."""

from __future__ import annotations

from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf

from fastganfit.perception.arcface import build_iresnet
from fastganfit.perception.dlib_resnet import DlibResNet
from fastganfit.perception.face_chip import ArcFaceChipAligner, DlibChipAligner
from fastganfit.perception.identity import IdentityNet, IdentityOutput, dlib_identity

CONFIG_DIR = Path(__file__).resolve().parent.parent / "fastganfit" / "conf" / "identity"


def with_paths(config: DictConfig, **files: str | None) -> DictConfig:
    """``config`` (one component's YAML) as a composed config has it: next to the paths group
    (``${paths.<key>}``), its defaults with ``files`` set."""
    paths = OmegaConf.merge(OmegaConf.load(CONFIG_DIR.parent / "paths" / "default.yaml"), files)
    return OmegaConf.create({"paths": paths, "component": config}).component


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> IdentityNet:
    return dlib_identity(cache_dir=tmp_path_factory.mktemp("cache"), layers=["stage3", "stem"])


def _face_batch(batch: int = 2, size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images with a plausible face-like landmark layout filling their centre."""
    images = torch.rand(batch, 3, size, size)
    grid = torch.stack(torch.meshgrid(torch.linspace(0.3, 0.7, 17), torch.linspace(0.3, 0.7, 4), indexing="xy"), -1)
    landmarks = (grid.reshape(-1, 2)[:68] * size).expand(batch, 68, 2).clone()
    five = torch.tensor([[0.3, 0.4], [0.42, 0.4], [0.58, 0.4], [0.7, 0.4], [0.5, 0.6]])
    landmarks[:, [36, 39, 42, 45, 33]] = five * size
    return images, landmarks


def test_output_embedding_and_selected_activations(identity) -> None:
    images, landmarks = _face_batch()
    with torch.no_grad():
        output = identity(images, landmarks)
    assert isinstance(output, IdentityOutput)
    assert output.embedding.shape == (2, 128) and identity.embedding_dim == 128
    assert [tuple(a.shape) for a in output.activations] == [(2, 128, 8, 8), (2, 32, 35, 35)]
    chips = identity.chips(images, landmarks)
    with torch.no_grad():
        direct, _ = identity.backbone.forward_features(chips, [])
    assert torch.allclose(output.embedding, direct)


def test_all_layers_by_default() -> None:
    net = IdentityNet(DlibResNet(), DlibChipAligner())
    assert net.layers == list(DlibResNet.layer_names)
    with torch.no_grad():
        output = net(*_face_batch(1))
    assert [a.shape[1] for a in output.activations] == [32, 32, 64, 128, 256, 256]


def test_frozen_and_always_eval(identity) -> None:
    assert not any(p.requires_grad for p in identity.parameters())
    identity.train()
    assert not identity.training and not any(m.training for m in identity.modules())


def test_differentiable_with_respect_to_image_only(identity) -> None:
    images, landmarks = _face_batch(1)
    images.requires_grad_(True)
    output = identity(images, landmarks)
    (output.embedding.square().sum() + output.activations[0].mean()).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in identity.parameters())


def test_batch_items_are_independent(identity) -> None:
    images, landmarks = _face_batch(3)
    with torch.no_grad():
        batch = identity(images, landmarks).embedding
        single = identity(images[1:2], landmarks[1:2]).embedding
    assert torch.allclose(batch[1], single[0], atol=1e-5)


def test_bad_arguments_are_named(identity) -> None:
    with pytest.raises(ValueError, match=r"layers: unknown layer names \['stage9'\]"):
        IdentityNet(DlibResNet(), DlibChipAligner(), ["stage9"])
    with pytest.raises(ValueError, match="aligner: chip size 112 differs from the backbone's 150"):
        IdentityNet(DlibResNet(), ArcFaceChipAligner())
    with pytest.raises(ValueError, match=r"landmarks: expected \[B, 68, 2\]"):
        identity(torch.rand(1, 3, 64, 64), torch.zeros(1, 5, 2))
    with pytest.raises(ValueError, match=r"chips: expected \[B, 3, 150, 150\], got shape \[1, 3, 112, 112\]"):
        identity.backbone(torch.rand(1, 3, 112, 112))


def test_config_dlib_resnet(tmp_path: Path) -> None:
    config = OmegaConf.load(CONFIG_DIR / "dlib_resnet.yaml")
    net = hydra.utils.instantiate(config, cache_dir=str(tmp_path), layers=["stage5"])
    assert isinstance(net, IdentityNet) and net.layers == ["stage5"] and net.embedding_dim == 128
    assert (tmp_path / "dlib_resnet").is_dir()


@pytest.mark.parametrize("arch", ["iresnet50", "iresnet100"])
def test_config_arcface_needs_weights(arch) -> None:
    config = OmegaConf.load(CONFIG_DIR / f"arcface_{arch}.yaml")
    assert config.arch == arch and OmegaConf.to_container(config)["weights"] == f"${{paths.arcface_{arch}}}"
    with pytest.raises(MissingMandatoryValue):  # the paths group's ??? (no local paths file)
        hydra.utils.instantiate(with_paths(config))
    config = with_paths(config, **{f"arcface_{arch}": None})
    assert config.weights is None
    with pytest.raises(Exception, match=rf"ArcFace {arch} needs a weights file") as error:
        hydra.utils.instantiate(config)
    assert "backbone.pth" in str(error.value)


def test_config_arcface_with_weights(tmp_path: Path) -> None:
    path = tmp_path / "backbone.pth"
    torch.save(build_iresnet("iresnet50").state_dict(), path)
    config = OmegaConf.load(CONFIG_DIR / "arcface_iresnet50.yaml")
    net = hydra.utils.instantiate(config, weights=str(path), layers=["layer4"])
    assert isinstance(net, IdentityNet) and net.embedding_dim == 512
    with torch.no_grad():
        output = net(*_face_batch(1, 128))
    assert output.embedding.shape == (1, 512) and output.activations[0].shape == (1, 512, 7, 7)
