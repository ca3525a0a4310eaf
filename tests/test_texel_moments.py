"""Per-texel colour moments and the moment term of the texture GAN."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from fastganfit.data.texture_data import TextureDataModule
from fastganfit.texture.gan_module import TextureGANModule
from fastganfit.texture.statistics import region_colour_statistics
from fastganfit.texture.texel_moments import DataTexelMoments, TexelMomentLoss

TINY = {"resolution": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 2, "base_channels": 16, "max_channels": 32}
TINY_D = {"base_channels": 16, "max_channels": 32}


def test_data_moments_are_the_per_texel_mean_and_variance_of_observed_samples() -> None:
    textures = torch.rand(50, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    masks = torch.ones(50, 1, 4, 4)
    masks[25:, :, 0, 0] = 0.0  # texel (0, 0) observed in the first 25 samples only
    masks[:, :, 3, 3] = 0.0  # texel (3, 3) never observed
    moments = DataTexelMoments(4)
    for start in range(0, 50, 10):
        moments.update(textures[start:start + 10], masks[start:start + 10])
    mean, variance, observed = moments.mean_and_variance()
    torch.testing.assert_close(mean[:, 1, 2], textures[:, :, 1, 2].mean(0))
    torch.testing.assert_close(variance[:, 1, 2], textures[:, :, 1, 2].var(0, unbiased=False))
    torch.testing.assert_close(mean[:, 0, 0], textures[:25, :, 0, 0].mean(0))
    torch.testing.assert_close(variance[:, 0, 0], textures[:25, :, 0, 0].var(0, unbiased=False))
    assert observed.sum() == 15 and not observed[0, 3, 3]


def test_matching_texel_moments_matches_pooled_region_statistics() -> None:
    """Equal per-texel means and spreads give equal region colour statistics (what the prior test checks)."""
    generator = torch.Generator().manual_seed(1)
    mean = torch.rand(3, 8, 8, generator=generator)
    spread = 0.2 * torch.rand(3, 8, 8, generator=generator)
    first = mean + spread * torch.randn(4000, 3, 8, 8, generator=generator)
    second = mean + spread * (torch.rand(4000, 3, 8, 8, generator=generator) * 2 - 1) * 3**0.5  # uniform, same moments
    region = torch.zeros(1, 1, 8, 8)
    region[..., 2:6, 1:7] = 1.0
    for a, b in zip(region_colour_statistics(first, region), region_colour_statistics(second, region), strict=True):
        torch.testing.assert_close(a, b, atol=0.01, rtol=0.03)


def test_moment_loss_teaches_a_generator_the_data_spread() -> None:
    """A per-texel affine generator trained on the moment term alone, from batches of 8, recovers the data's
    per-texel means and spreads (Adam as in the texture GAN, learning rate decayed to zero)."""
    torch.manual_seed(0)
    data_mean = torch.rand(3, 4, 4) * 2 - 1
    data_std = 0.05 + 0.3 * torch.rand(3, 4, 4)
    offset = torch.zeros(3, 4, 4, requires_grad=True)
    log_scale = torch.full((3, 4, 4), -3.0, requires_grad=True)
    loss = TexelMomentLoss(4)
    steps = 800
    optimiser = torch.optim.Adam([offset, log_scale], lr=0.01, betas=(0.0, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / steps)
    errors = []
    for _ in range(steps):
        loss.observe_data(data_mean + data_std * torch.randn(8, 3, 4, 4))
        value = loss(offset + log_scale.exp() * torch.randn(8, 3, 4, 4))
        errors.append(value.item())
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        schedule.step()
    torch.testing.assert_close(offset.detach(), data_mean, atol=0.03, rtol=0)
    spread_error = (log_scale.exp() - data_std).abs() / data_std
    assert spread_error.max() < 0.1 and spread_error.mean() < 0.04, spread_error
    assert abs(sum(errors[-100:]) / 100) < 0.001 * errors[0]


def test_moment_loss_is_an_unbiased_estimate_of_the_squared_moment_errors() -> None:
    """Averaged over batches, the loss equals the squared errors of the generator's true moments (a batch's own
    squared error would be too large by its sampling noise), and its gradient points along theirs."""
    generator = torch.Generator().manual_seed(0)
    loss = TexelMomentLoss(2, min_std=0.0)
    data_mean, data_std = torch.full((3, 2, 2), 0.2), torch.full((3, 2, 2), 0.3)
    loss.observe_data(data_mean + data_std * torch.randn(200_000, 3, 2, 2, generator=generator))
    mean, std = 0.25, 0.2
    mean_param = torch.tensor(mean, requires_grad=True)
    values = []
    for _ in range(4000):
        values.append(loss(mean_param + std * torch.randn(8, 3, 2, 2, generator=generator)))
    value = torch.stack(values).mean()
    expected = (mean - 0.2) ** 2 + (std**2 - 0.3**2) ** 2 / (4 * 0.3**2)
    torch.testing.assert_close(value.detach(), torch.tensor(expected), atol=0.0015, rtol=0)
    value.backward()
    torch.testing.assert_close(mean_param.grad, torch.tensor(2 * (mean - 0.2)), atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="at least 4"):
        loss(torch.zeros(3, 3, 2, 2))


def test_gan_module_with_moment_term_trains_and_starts_from_an_exported_generator(tmp_path: Path) -> None:
    source = TextureGANModule(generator=TINY, discriminator=TINY_D)
    exported = source.export_generator(tmp_path / "prior.pt", num_w_samples=100)
    module = TextureGANModule(generator=TINY, discriminator=TINY_D, moment_weight=10.0,
                              init_generator=exported, sample_every_n_steps=1000)
    for name, value in source.generator_ema.state_dict().items():
        if not name.startswith("w_"):
            assert torch.equal(module.generator.state_dict()[name], value), name
            assert torch.equal(module.generator_ema.state_dict()[name], value), name
    with pytest.raises(ValueError, match=r"init_generator .* differ from model.generator"):
        TextureGANModule(generator=dict(TINY, base_channels=8), discriminator=TINY_D, init_generator=exported)

    before = [p.detach().clone() for p in module.generator.parameters()]
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=TextureDataModule(source="procedural", resolution=16, batch_size=4))
    assert torch.isfinite(trainer.callback_metrics["train/moment_error"])
    assert any(not torch.equal(a, b) for a, b in zip(before, module.generator.parameters(), strict=True))
    assert module.moment_loss.data.weight.min() == 12, "three real batches of 4 observed"

    trainer.save_checkpoint(tmp_path / "run.ckpt")
    (tmp_path / "prior.pt").unlink()  # a run's checkpoint loads without the file it started from
    restored = TextureGANModule.load_from_checkpoint(tmp_path / "run.ckpt", init_generator=None)
    torch.testing.assert_close(restored.moment_loss.data.total, module.moment_loss.data.total)
