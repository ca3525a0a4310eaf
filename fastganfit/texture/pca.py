"""Linear (PCA) UV texture model: ``texture = clamp(mean + sum_k latent_k * sqrt(variance_k) * basis_k, 0, 1)``.

Follows the texture-model interface shared by every texture prior in fastganfit (``latent_dim``,
``resolution``, ``forward``, ``zero_latent``, ``latent_regulariser``). Latents are N(0, 1) coefficients:
each scales a basis image by its mode's standard deviation.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NPZ_LAYOUT = (
    "mean [3,R,R] or [R,R,3] (float in [0, 1], or uint8 0-255), basis [K,3,R,R] or [K,R,R,3] (float), "
    "variances [K] (> 0)"
)
MEAN_TOLERANCE = 1e-3  # a mean of textures in [0, 1] lies in [0, 1]; allow float rounding


class TextureFormatError(ValueError):
    """A texture model file is not in the expected format (missing key, wrong shape or values)."""


class PCATexture(nn.Module):
    """A linear UV texture model.

    ``mean [3,R,R]`` is the mean texture (float, [0, 1]), ``basis [K,3,R,R]`` the principal components
    in the same units and ``variances [K]`` their variances (> 0); the basis is stored scaled by the
    standard deviations, so latents are N(0, 1). Row 0 of every image is the top of the UV map (v = 1).

    The output is clamped to [0, 1] with a plain clamp, not a straight-through one: the gradient is the
    exact gradient of the texture returned, so a fitting loss and its gradient agree. Texels inside
    [0, 1] (nearly all of them for latents the prior finds likely, where the latent regulariser keeps
    a fit) pass gradients unchanged; saturated texels pass none. A straight-through clamp would report
    descent directions the clamped output does not follow and can drive coefficients ever further into
    saturation while the loss stays flat.
    """

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor, variances: torch.Tensor) -> None:
        super().__init__()
        mean, basis, variances = (torch.as_tensor(value, dtype=torch.float32) for value in (mean, basis, variances))
        if mean.ndim != 3 or mean.shape[0] != 3 or mean.shape[1] != mean.shape[2]:
            raise ValueError(f"mean: expected [3, R, R], got {list(mean.shape)}")
        resolution = mean.shape[1]
        if variances.ndim != 1:
            raise ValueError(f"variances: expected [K], got {list(variances.shape)}")
        count = variances.shape[0]
        if tuple(basis.shape) != (count, 3, resolution, resolution):
            raise ValueError(f"basis: expected {[count, 3, resolution, resolution]}, got {list(basis.shape)}")
        if not bool(torch.all(variances > 0)):
            raise ValueError("variances must all be positive")
        self.latent_dim = count
        self.resolution = resolution
        self.register_buffer("mean", mean)
        self.register_buffer("scaled_basis", (basis * variances.sqrt().view(-1, 1, 1, 1)).reshape(count, -1))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """``latent [B, K]`` (N(0, 1) coefficients) -> texture ``[B, 3, R, R]`` in [0, 1]."""
        if latent.ndim != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"latent: expected [B, {self.latent_dim}], got {list(latent.shape)}")
        offsets = (latent.to(self.scaled_basis.dtype) @ self.scaled_basis).view(-1, *self.mean.shape)
        return (self.mean + offsets).clamp(0.0, 1.0)

    def zero_latent(self, batch_size: int) -> torch.Tensor:
        """The mean texture's latent: zeros ``[B, K]``."""
        return self.mean.new_zeros(batch_size, self.latent_dim)

    def latent_regulariser(self, latent: torch.Tensor) -> torch.Tensor:
        """Negative log N(0, I) prior up to a constant: ``0.5 * ||latent||^2`` per sample, ``[B, K] -> [B]``."""
        return 0.5 * latent.pow(2).sum(dim=-1)

    @classmethod
    def from_npz(cls, path: str | os.PathLike, num_components: int | None = None) -> PCATexture:
        """Load keys ``mean``, ``basis`` and ``variances`` from an ``.npz`` (layout: ``docs/textures.md``).

        Images may be channels-first (``[3,R,R]``, ``[K,3,R,R]``) or channels-last (``[R,R,3]``,
        ``[K,R,R,3]``; for R = 3, channels-first is assumed). A ``uint8`` mean means the model is in
        0-255 units: mean and basis are divided by 255. ``num_components`` keeps the first K modes
        (all when ``None``).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"PCA texture file {path} does not exist (expected an .npz with {NPZ_LAYOUT})")
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise TextureFormatError(f"{path}: cannot read as .npz ({error})") from error
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise TextureFormatError(f"{path}: holds a single array, expected an .npz archive with {NPZ_LAYOUT}")
        with data:
            arrays = {key: data[key] for key in ("mean", "basis", "variances") if key in data.files}
        for key in ("mean", "basis", "variances"):
            if key not in arrays:
                raise TextureFormatError(f"{path}: missing key {key!r}; expected {NPZ_LAYOUT}")
        mean, scale = _read_mean(arrays["mean"], path)
        basis = _read_basis(arrays["basis"], mean.shape[1], path)
        variances = _read_variances(arrays["variances"], basis.shape[0], path)
        available = basis.shape[0]
        count = available if num_components is None else num_components
        if not 0 <= count <= available:
            raise ValueError(f"{path}: asked for {count} texture components, the file has {available}")
        return cls(torch.from_numpy(mean), torch.from_numpy(basis[:count] * scale), torch.from_numpy(variances[:count]))

    def resized(self, resolution: int) -> PCATexture:
        """The same model at ``resolution`` (mean and basis resampled, antialiased bilinear; same variances)."""
        if resolution < 4:
            raise ValueError(f"PCA texture: resolution must be at least 4, got {resolution}")
        if resolution == self.resolution:
            return self
        stds = self.scaled_basis.new_ones(self.latent_dim)
        images = torch.cat([self.mean[None], self.scaled_basis.view(-1, *self.mean.shape)])
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                               antialias=True)  # fmt: skip
        return PCATexture(images[0].clamp(0.0, 1.0), images[1:], stds.square())


def portrait_texture_prior_path() -> Path:
    """Where the real-skin PCA prior ships: ``fastganfit/assets/texture_pca_portraits.npz``."""
    return Path(__file__).resolve().parent.parent / "assets" / "texture_pca_portraits.npz"


def load_portrait_texture_prior(resolution: int = 128, num_components: int | None = None) -> PCATexture:
    """The real-skin PCA texture prior learnt from public-domain official portraits (provenance and licence:
    ``fastganfit/assets/texture_pca_portraits.md``), at ``resolution`` with its first ``num_components`` modes."""
    path = portrait_texture_prior_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the portrait texture prior {path} is missing: build it with `python scripts/build_portrait_texture_prior"
            f".py --portraits PORTRAITS --ckpt CKPT --output {path}` (docs/textures.md), or use texture=procedural"
        )
    return PCATexture.from_npz(path, num_components).resized(resolution)


def _channels_first(array: np.ndarray, name: str, path: Path, resolution: int | None = None) -> np.ndarray:
    """``[..., 3, R, R]`` or ``[..., R, R, 3]`` -> ``[..., 3, R, R]`` (R must equal ``resolution`` when given)."""
    shape = array.shape[-3:]
    size = resolution if resolution is not None else shape[1]
    if shape == (3, size, size):
        return array
    size = resolution if resolution is not None else shape[0]
    if shape == (size, size, 3):
        return np.moveaxis(array, -1, -3)
    expected = "R" if resolution is None else str(resolution)
    lead = "" if array.ndim == 3 else "K, "
    raise TextureFormatError(
        f"{path}: key {name!r} has shape {list(array.shape)}, expected [{lead}3, {expected}, {expected}] "
        f"or [{lead}{expected}, {expected}, 3]"
    )


def _read_mean(value: np.ndarray, path: Path) -> tuple[np.ndarray, float]:
    """The mean ``[3,R,R]`` as float32 in [0, 1], and the factor that brings the basis to the same units."""
    if value.ndim != 3:
        raise TextureFormatError(f"{path}: key 'mean' has shape {list(value.shape)}, expected [3,R,R] or [R,R,3]")
    if value.dtype == np.uint8:
        return np.ascontiguousarray(_channels_first(value, "mean", path), dtype=np.float32) / 255.0, 1.0 / 255.0
    if not np.issubdtype(value.dtype, np.floating):
        raise TextureFormatError(f"{path}: key 'mean' has dtype {value.dtype}, expected float in [0, 1] or uint8")
    mean = np.ascontiguousarray(_channels_first(value, "mean", path), dtype=np.float32)
    if not np.all(np.isfinite(mean)):
        raise TextureFormatError(f"{path}: key 'mean' has non-finite values")
    if mean.min() < -MEAN_TOLERANCE or mean.max() > 1 + MEAN_TOLERANCE:
        raise TextureFormatError(
            f"{path}: key 'mean' has values in [{mean.min():.4g}, {mean.max():.4g}]; a float mean must lie in "
            "[0, 1] (store 0-255 data as a uint8 mean, or divide mean and basis by 255)"
        )
    return mean, 1.0


def _read_basis(value: np.ndarray, resolution: int, path: Path) -> np.ndarray:
    """The basis ``[K,3,R,R]`` as float32 (modes are signed offsets: integer dtypes are rejected)."""
    if value.ndim != 4:
        raise TextureFormatError(
            f"{path}: key 'basis' has shape {list(value.shape)}, expected [K,3,R,R] or [K,R,R,3] with R = {resolution}"
        )
    if not np.issubdtype(value.dtype, np.floating):
        raise TextureFormatError(f"{path}: key 'basis' has dtype {value.dtype}, expected float (signed offsets)")
    basis = np.ascontiguousarray(_channels_first(value, "basis", path, resolution), dtype=np.float32)
    if not np.all(np.isfinite(basis)):
        raise TextureFormatError(f"{path}: key 'basis' has non-finite values")
    return basis


def _read_variances(value: np.ndarray, count: int, path: Path) -> np.ndarray:
    """The variances ``[K]`` as float32, all finite and positive."""
    if value.shape != (count,):
        raise TextureFormatError(f"{path}: key 'variances' has shape {list(value.shape)}, expected [{count}]")
    variances = np.asarray(value, dtype=np.float32)
    bad = np.flatnonzero(~(np.isfinite(variances) & (variances > 0)))
    if bad.size:
        raise TextureFormatError(
            f"{path}: key 'variances' must be finite and positive; component {bad[0]} is {variances[bad[0]]}"
        )
    return variances
