"""Texture generator, procedural texture and the texture-GAN LightningModule."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from asset_files import TINY_GENERATOR

from fastganfit.data.texture_data import TextureDataModule
from fastganfit.texture import generator as texture_generator
from fastganfit.texture.discriminator import TextureDiscriminator
from fastganfit.texture.gan_module import TextureGANModule
from fastganfit.texture.generator import LATENT_SPACES, TextureGenerator
from fastganfit.texture.procedural import REGION_NAMES, ProceduralTexture

TINY = TINY_GENERATOR


@pytest.fixture(scope="module")
def procedural() -> ProceduralTexture:
    return ProceduralTexture.for_ict(64)


def tiny_generator(space: str = "w") -> TextureGenerator:
    with pytest.warns(UserWarning, match="random weights"):
        return TextureGenerator.load(None, latent_space=space, allow_random_init=True, **TINY)


@pytest.mark.parametrize("space", LATENT_SPACES)
def test_generator_latent_spaces_shapes_range_and_gradients(space: str) -> None:
    generator = tiny_generator(space)
    expected_dim = {"z": 16, "w": 16, "w+": generator.num_ws * 16}[space]
    assert generator.latent_dim == expected_dim
    latent = (0.5 * torch.randn(3, expected_dim)).requires_grad_()
    texture = generator(latent)
    assert texture.shape == (3, 3, 16, 16)
    assert texture.min() >= 0 and texture.max() <= 1
    (texture - 0.3).square().mean().backward()
    assert latent.grad.abs().sum() > 0
    assert all(p.grad is None for p in generator.parameters()), "the prior is frozen"
    reg = generator.latent_regulariser(latent)
    torch.testing.assert_close(reg, 0.5 * latent.detach().square().sum(1))
    with pytest.raises(ValueError, match="texture latent"):
        generator(torch.zeros(1, expected_dim + 1))


def test_w_space_is_centred_on_measured_statistics() -> None:
    generator = tiny_generator("w")
    generator.update_w_statistics(2000)
    w = generator.mapping(torch.randn(2000, 16))
    torch.testing.assert_close(generator.w_mean, w.mean(0), atol=0.1 * float(w.std()), rtol=0)
    zero = generator(generator.zero_latent(1))
    mean_w = generator.synthesis(generator.w_mean.view(1, 1, -1).expand(1, generator.num_ws, -1))
    torch.testing.assert_close(zero, (mean_w * 0.5 + 0.5).clamp(0, 1))


def test_generator_checkpoint_round_trip_and_errors(tmp_path: Path) -> None:
    generator = tiny_generator("w")
    generator.update_w_statistics(500)
    path = tmp_path / "prior.pt"
    torch.save(generator.checkpoint(), path)
    loaded = TextureGenerator.load(path, latent_space="w+")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    z = torch.randn(2, 16)
    torch.testing.assert_close(loaded.synthesis(loaded.ws_from_z(z)), generator.synthesis(generator.ws_from_z(z)))
    torch.testing.assert_close(loaded.w_std, generator.w_std)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TextureGenerator.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot be read"):
        TextureGenerator.load(tmp_path / "junk.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a fastganfit texture generator"):
        TextureGenerator.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no checkpoint given"):
        TextureGenerator.load(None)


def test_procedural_texture_regions_look_like_a_face(procedural: ProceduralTexture) -> None:
    textures = procedural.sample(16, torch.Generator().manual_seed(0))
    assert textures.shape == (16, 3, 64, 64) and textures.min() >= 0 and textures.max() <= 1
    masks = procedural.masks
    assert masks.shape == (len(REGION_NAMES), 1, 64, 64)
    colour = {name: (textures * masks[i]).sum((0, 2, 3)) / (masks[i].sum() * 16) for i, name in enumerate(REGION_NAMES)}
    assert colour["lips"][0] / colour["lips"][1] > colour["skin"][0] / colour["skin"][1] + 0.2, "lips are redder"
    assert colour["brows"].sum() < 0.7 * colour["skin"].sum(), "brows are darker than skin"
    assert colour["skin"][0] > colour["skin"][1] > colour["skin"][2], "skin is red > green > blue"
    per_face = (textures * masks[0]).sum((2, 3)) / masks[0].sum()
    assert per_face[:, 0].std() > 0.05, "skin tone varies between samples"


def test_procedural_texture_is_differentiable(procedural: ProceduralTexture) -> None:
    latent = procedural.zero_latent(2).requires_grad_()
    procedural(latent).mean().backward()
    assert latent.grad.abs().sum() > 0
    torch.testing.assert_close(procedural(procedural.zero_latent(1)), procedural(torch.zeros(1, procedural.latent_dim)))


def test_untrained_discriminator_keeps_its_signal_and_responds_to_the_image(procedural: ProceduralTexture) -> None:
    torch.manual_seed(0)
    discriminator = TextureDiscriminator(resolution=64, base_channels=32, max_channels=128)
    images = (procedural.sample(16, torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
    features = discriminator.from_rgb(images)
    scales = []
    for block in discriminator.blocks:
        features = block(features)
        scales.append(features.std().item())
    assert min(scales) > 0.5 * max(scales), f"activations fade through the blocks: {scales}"
    logits = discriminator(images)
    (gradient,) = torch.autograd.grad(logits.sum(), images)
    assert logits.std() > 0.01, "different textures get different scores"
    assert gradient.flatten(1).norm(dim=1).min() > 1e-3


def test_gan_module_trains_a_few_steps(tmp_path: Path) -> None:
    module = TextureGANModule(generator=TINY, discriminator={"base_channels": 16, "max_channels": 32},
                              sample_every_n_steps=2, num_samples=4)
    before = [p.detach().clone() for p in module.generator.parameters()]
    ema_before = [p.detach().clone() for p in module.generator_ema.parameters()]
    data = TextureDataModule(source="procedural", resolution=16, batch_size=4)
    trainer = L.Trainer(max_steps=8, accelerator="cpu", logger=L.pytorch.loggers.CSVLogger(tmp_path),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    metrics = trainer.callback_metrics
    for name in ("train/d_loss", "train/g_loss", "train/r1"):
        assert torch.isfinite(metrics[name]), name
    assert module.iteration == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, module.generator.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, module.generator_ema.parameters(), strict=True))
    assert sorted(p.name for p in tmp_path.rglob("samples/*.png")), "sample grids are written"
    exported = module.export_generator(tmp_path / "prior.pt", num_w_samples=200)
    assert TextureGenerator.load(exported).resolution == 16


def test_ema_half_life_ramps_up_with_training() -> None:
    ramped = TextureGANModule(generator=TINY, discriminator={"base_channels": 16}, ema_decay=0.999, ema_rampup=0.05)
    assert ramped.ema_decay_at(0) < 1e-5  # the first update copies G
    assert ramped.ema_decay_at(199) == pytest.approx(0.5**0.1)  # half-life 10 iterations = 5 % of 200
    assert ramped.ema_decay_at(100_000) == 0.999
    fixed = TextureGANModule(generator=TINY, discriminator={"base_channels": 16}, ema_decay=0.999, ema_rampup=None)
    assert fixed.ema_decay_at(0) == fixed.ema_decay_at(199) == 0.999


def test_resuming_uses_the_configured_learning_rate(tmp_path: Path) -> None:
    def fit(lr: float, steps: int, ckpt_path: Path | None = None) -> L.Trainer:
        module = TextureGANModule(generator=TINY, discriminator={"base_channels": 16, "max_channels": 32}, lr=lr,
                                  r1_interval=4, sample_every_n_steps=1000)
        trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, datamodule=TextureDataModule(source="procedural", resolution=16, batch_size=2),
                    ckpt_path=ckpt_path)
        return trainer

    fit(0.01, 2).save_checkpoint(tmp_path / "first.ckpt")
    resumed = fit(0.001, 4, tmp_path / "first.ckpt")
    assert resumed.global_step == 4
    generator_lr, discriminator_lr = (optimiser.param_groups[0]["lr"] for optimiser in resumed.optimizers)
    assert generator_lr == 0.001 and discriminator_lr == pytest.approx(0.001 * 4 / 5)


def test_masked_loss_ignores_masked_texels() -> None:
    module = TextureGANModule(generator=TINY, discriminator={"base_channels": 16, "max_channels": 32},
                              masked_loss=True)
    mask = torch.ones(2, 1, 16, 16)
    mask[:, :, :, 8:] = 0
    batch = {"texture": torch.rand(2, 3, 16, 16), "mask": mask}
    fake = torch.rand(2, 3, 16, 16) * 2 - 1
    altered_fake = torch.where(mask.bool(), fake, torch.rand_like(fake))
    altered_batch = {"texture": torch.where(mask.bool(), batch["texture"], torch.rand_like(fake)), "mask": mask}
    first = module.losses(batch, fake, with_r1=False)["d_loss"]
    second = module.losses(altered_batch, altered_fake, with_r1=False)["d_loss"]
    torch.testing.assert_close(first, second)
    fake.requires_grad_()
    module.losses(batch, fake, with_r1=False)["d_loss"].backward()
    assert fake.grad[..., 8:].abs().max() == 0 and fake.grad[..., :8].abs().max() > 0
    unmasked = TextureGANModule(generator=TINY, discriminator={"base_channels": 16, "max_channels": 32})
    assert not torch.allclose(unmasked.losses(batch, fake, False)["d_loss"],
                              unmasked.losses(altered_batch, altered_fake, False)["d_loss"])


def test_missing_default_prior_says_how_to_make_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(texture_generator, "default_texture_prior_path", lambda: tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="experiment=texture_gan_procedural"):
        texture_generator.load_default_texture_prior()
