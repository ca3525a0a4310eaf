"""ArcFace IResNet: arcface_torch layout, state-dict loading, missing-weights errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastganfit.perception.arcface import ARCHITECTURES, IResNet, build_iresnet, load_arcface
from fastganfit.perception.identity import arcface_identity


def _randomise_batch_norms(model: torch.nn.Module) -> None:
    """Give every batch norm non-trivial statistics so that a wrong load shows in the outputs."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
            module.weight.data.copy_(0.5 + torch.rand(n, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(n, generator=generator))


@pytest.fixture(scope="module")
def saved_iresnet50(tmp_path_factory) -> tuple[IResNet, Path]:
    model = build_iresnet("iresnet50")
    _randomise_batch_norms(model)
    path = tmp_path_factory.mktemp("arcface") / "backbone.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_layout_matches_arcface_torch_names() -> None:
    keys = build_iresnet("iresnet50").state_dict().keys()
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "prelu.weight",
        "layer1.0.bn1.weight",
        "layer1.0.conv1.weight",
        "layer1.0.prelu.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_mean",
        "layer3.13.bn3.bias",
        "bn2.weight",
        "fc.weight",
        "fc.bias",
        "features.running_mean",
    ):
        assert key in keys
    assert "layer3.14.bn1.weight" not in keys
    assert build_iresnet("iresnet50").fc.in_features == 512 * 7 * 7


@pytest.mark.parametrize(("arch", "blocks"), ARCHITECTURES.items())
def test_block_counts(arch, blocks) -> None:
    model = build_iresnet(arch)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == list(blocks)


def test_state_dict_round_trip(saved_iresnet50) -> None:
    model, path = saved_iresnet50
    loaded = load_arcface("iresnet50", path)
    chips = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        expected, expected_acts = model.eval().forward_features(chips, ["layer2"])
        got, got_acts = loaded.forward_features(chips, ["layer2"])
    assert got.shape == (1, 512)
    assert torch.equal(got, expected) and torch.equal(got_acts[0], expected_acts[0])
    assert not torch.allclose(got, build_iresnet("iresnet50")(chips))


def test_data_parallel_prefix_is_accepted(saved_iresnet50, tmp_path: Path) -> None:
    model, _ = saved_iresnet50
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    assert torch.equal(load_arcface("iresnet50", path).fc.weight, model.fc.weight)


def test_wrong_architecture_is_rejected(saved_iresnet50) -> None:
    _, path = saved_iresnet50
    with pytest.raises(ValueError, match=r"backbone\.pth: not an arcface_torch IResNet state dict: missing keys"):
        load_arcface("iresnet100", path)


def test_wrong_shapes_are_rejected(saved_iresnet50, tmp_path: Path) -> None:
    model, _ = saved_iresnet50
    state = dict(model.state_dict())
    state["fc.weight"] = torch.zeros(256, 512 * 49)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"bad\.pth: tensor shapes differ.*fc\.weight"):
        load_arcface("iresnet50", path)


def test_non_state_dict_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.pth: cannot be read as a PyTorch state dict"):
        load_arcface("iresnet50", path)


def test_missing_weights_say_which_file_and_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"iresnet100 needs a weights file.*backbone\.pth.*identity\.weights"):
        arcface_identity("iresnet100", None)
    with pytest.raises(FileNotFoundError, match=r"weights file not found: .*absent\.pth"):
        load_arcface("iresnet50", tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="unknown IResNet architecture 'iresnet18'"):
        build_iresnet("iresnet18")


def test_activation_shapes_and_names(saved_iresnet50) -> None:
    model, _ = saved_iresnet50
    with torch.no_grad():
        _, activations = model.eval().forward_features(torch.rand(1, 3, 112, 112), list(model.layer_names))
    shapes = [tuple(a.shape[1:]) for a in activations]
    assert shapes == [(64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    with pytest.raises(ValueError, match=r"layers: unknown layer names \['layer5'\]"):
        model.forward_features(torch.rand(1, 3, 112, 112), ["layer5"])
    with pytest.raises(ValueError, match=r"chips: expected \[B, 3, 112, 112\]"):
        model.forward_features(torch.rand(1, 3, 150, 150))
