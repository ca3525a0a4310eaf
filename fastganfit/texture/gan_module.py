"""TextureGANModule: trains the UV-texture generator that GANFit uses, frozen, as its texture prior."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from fastganfit.io.atomic import atomic_write
from fastganfit.io.image_logging import image_folder, log_image_grid
from fastganfit.texture.discriminator import TextureDiscriminator
from fastganfit.texture.generator import TextureGenerator
from fastganfit.texture.texel_moments import TexelMomentLoss


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss for D: ``softplus(-D(real)) + softplus(D(fake))``, averaged."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss for G: ``softplus(-D(G(z)))``, averaged."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty ``E ||dD(x)/dx||^2`` on real samples (``real`` must require grad)."""
    (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return gradient.square().flatten(1).sum(1).mean()


def initial_generator_weights(path: str | Path, expected: dict[str, int]) -> dict[str, torch.Tensor]:
    """The state dict of the exported generator at ``path``, checked against the settings ``expected``."""
    generator = TextureGenerator.load(path)
    if generator.hparams != expected:
        raise ValueError(
            f"init_generator {path}: its settings {generator.hparams} differ from model.generator {expected}"
        )
    return generator.state_dict()


class TextureGANModule(L.LightningModule):
    """Non-saturating GAN with lazy R1 regularisation and an exponential moving average of G.

    Batches are dicts with ``texture [B, 3, R, R]`` in [0, 1] and optionally ``mask [B, 1, R, R]``
    (1 = observed texel). With ``masked_loss=True`` both real and generated textures are multiplied by
    the real sample's mask before the discriminator, so unobserved texels never affect either loss
    (partial UV maps, e.g. unwrapped from photos). The EMA's half-life ramps up with training
    (``ema_rampup``, see :meth:`ema_decay_at`). Sample grids of the EMA generator go to the logger
    every ``sample_every_n_steps`` iterations. Lightning's ``max_steps`` counts optimiser steps: two
    (D, then G) per iteration.

    ``moment_weight > 0`` adds to G's loss the per-texel colour-moment term of
    :class:`~fastganfit.texture.texel_moments.TexelMomentLoss` (batches of at least 4).
    ``init_generator`` starts G and its EMA from an exported generator checkpoint (continue training a
    prior with a fresh discriminator); its settings must equal ``generator``'s.
    """

    def __init__(
        self,
        generator: dict[str, Any] | None = None,
        discriminator: dict[str, Any] | None = None,
        lr: float = 0.002,
        betas: tuple[float, float] = (0.0, 0.99),
        r1_gamma: float = 1.0,
        r1_interval: int = 4,
        ema_decay: float = 0.999,
        ema_rampup: float | None = 0.05,
        masked_loss: bool = False,
        init_mean_from_data: bool = True,
        sample_every_n_steps: int = 200,
        num_samples: int = 16,
        moment_weight: float = 0.0,
        init_generator: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hparams["init_generator"] = None if init_generator is None else str(init_generator)
        self.automatic_optimization = False
        self.generator = TextureGenerator(**(generator or {}))
        if init_generator is not None:
            self.generator.load_state_dict(initial_generator_weights(init_generator, self.generator.hparams))
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        resolution = self.generator.resolution
        self.discriminator = TextureDiscriminator(resolution=resolution, **(discriminator or {}))
        self.moment_loss = TexelMomentLoss(resolution) if moment_weight > 0 else None
        fixed_z = torch.randn(num_samples, self.generator.z_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("sample_z", fixed_z)

    @property
    def iteration(self) -> int:
        """Training iterations done (Lightning's ``global_step`` counts both optimisers' steps)."""
        return self.global_step // 2

    def _r1_ratio(self) -> float:
        interval = self.hparams.r1_interval
        return interval / (interval + 1)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Adam for G and for D (D's lr and betas adjusted for lazy R1, as in StyleGAN2)."""
        ratio = self._r1_ratio()
        beta1, beta2 = self.hparams.betas
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=(beta1, beta2))
        opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.hparams.lr * ratio, betas=(beta1**ratio, beta2**ratio)
        )
        return [opt_g, opt_d]

    def on_train_start(self) -> None:
        """Use the configured ``lr`` also when resuming (a restored optimiser state carries the old one), so a
        run can be continued at a lower learning rate to settle (``ckpt_path=... model.lr=...``)."""
        opt_g, opt_d = self.optimizers()
        for optimiser, lr in ((opt_g, self.hparams.lr), (opt_d, self.hparams.lr * self._r1_ratio())):
            for group in optimiser.param_groups:
                group["lr"] = lr

    def _generate(self, batch_size: int) -> torch.Tensor:
        z = torch.randn(batch_size, self.generator.z_dim, device=self.device)
        return self.generator.synthesis(self.generator.ws_from_z(z))

    def _masked(self, images: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return images * mask if (mask is not None and self.hparams.masked_loss) else images

    def losses(self, batch: dict[str, torch.Tensor], fake: torch.Tensor, with_r1: bool) -> dict[str, torch.Tensor]:
        """D's loss terms for ``batch`` and generated textures ``fake [B, 3, R, R]`` (data range [-1, 1])."""
        mask = batch.get("mask")
        real = self._masked(batch["texture"] * 2.0 - 1.0, mask).detach().requires_grad_(with_r1)
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(self._masked(fake, mask))
        out = {"d_loss": discriminator_loss(real_logits, fake_logits), "real_score": real_logits.mean(),
               "fake_score": fake_logits.mean()}
        if with_r1:
            out["r1"] = r1_penalty(real_logits, real)
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """One D update (with R1 every ``r1_interval`` steps) then one G update and the EMA update."""
        opt_g, opt_d = self.optimizers()
        batch_size = batch["texture"].shape[0]
        if self.hparams.init_mean_from_data and self.hparams.init_generator is None and self.iteration == 0:
            self.initialise_output_mean(batch["texture"], batch.get("mask"))
        with_r1 = self.hparams.r1_gamma > 0 and self.iteration % self.hparams.r1_interval == 0

        self.generator.requires_grad_(False)
        self.discriminator.requires_grad_(True)
        terms = self.losses(batch, self._generate(batch_size).detach(), with_r1)
        d_total = terms["d_loss"]
        if with_r1:
            d_total = d_total + 0.5 * self.hparams.r1_gamma * self.hparams.r1_interval * terms["r1"]
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_total)
        opt_d.step()

        self.generator.requires_grad_(True)
        self.discriminator.requires_grad_(False)
        fake = self._generate(batch_size)
        g_loss = generator_loss(self.discriminator(self._masked(fake, batch.get("mask"))))
        g_total = g_loss
        if self.moment_loss is not None:
            self.moment_loss.observe_data(batch["texture"] * 2.0 - 1.0, batch.get("mask"))
            moment_error = self.moment_loss(fake)
            g_total = g_loss + self.hparams.moment_weight * moment_error
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_total)
        opt_g.step()
        self._update_ema()

        logged = {f"train/{key}": value.detach() for key, value in terms.items()}
        logged["train/g_loss"] = g_loss.detach()
        if self.moment_loss is not None:
            logged["train/moment_error"] = moment_error.detach()
        self.log_dict(logged, prog_bar=True, on_step=True, batch_size=batch_size)
        if self.iteration % self.hparams.sample_every_n_steps == 0:
            self.log_samples()

    @torch.no_grad()
    def initialise_output_mean(self, textures: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Shift the last toRGB bias so that G's mean output equals the mean of ``textures [B, 3, R, R]``
        (observed texels only when ``mask [B, 1, R, R]`` is given); the EMA copy follows."""
        if mask is None:
            mask = torch.ones_like(textures[:, :1])
        target = (textures * mask).sum(0, keepdim=True) / mask.sum(0, keepdim=True).clamp(min=1.0) * 2.0 - 1.0
        current = self._generate(max(textures.shape[0], 16)).mean(0, keepdim=True)
        observed = mask.amax(0, keepdim=True)
        self.generator.to_rgb[-1].bias.add_((target - current) * observed)
        self.generator_ema.load_state_dict(self.generator.state_dict())

    def ema_decay_at(self, iteration: int) -> float:
        """The EMA decay at ``iteration``: ``ema_decay``, or while ``ema_rampup * (iteration + 1)`` is the shorter
        half-life (in iterations), the decay of that half-life, so the average never reaches back past the
        last ``ema_rampup`` fraction of training (early weights would drag it far behind G)."""
        decay = self.hparams.ema_decay
        if self.hparams.ema_rampup:
            decay = min(decay, 0.5 ** (1.0 / (self.hparams.ema_rampup * (iteration + 1))))
        return decay

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.ema_decay_at(self.iteration)
        for ema, live in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            ema.lerp_(live, 1.0 - decay)
        for ema, live in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            ema.copy_(live)

    @torch.no_grad()
    def log_samples(self) -> None:
        """Log a grid of EMA-generator samples for fixed z (the same faces every time)."""
        samples = self.generator_ema.synthesis(self.generator_ema.ws_from_z(self.sample_z)) * 0.5 + 0.5
        log_image_grid(self.logger, image_folder(self.trainer, "samples"), "samples/texture", samples, self.iteration)

    def export_generator(self, path: str | Path, num_w_samples: int = 10_000) -> Path:
        """Write the EMA generator, with measured w statistics, as a standalone checkpoint (atomic)."""
        generator = copy.deepcopy(self.generator_ema).cpu()
        generator.update_w_statistics(num_w_samples)
        with atomic_write(path) as handle:
            torch.save(generator.checkpoint(), handle)
        return Path(path)
