"""Illumination models with zero-centred parameters (all zeros = white ambient light of intensity 1).

Both models shade in the view frame (camera at the origin looking down -Z, see ``camera.py``) and
share one interface: ``num_params``, ``shade(albedo, normals, view_dirs, params)``, ``chroma(params)``, the
light's colour away from grey (what the ``light_chroma`` regulariser keeps small, so that skin colour is carried
by the albedo, not by a tinted light; see docs/regressor_and_losses.md), and ``brighter(params, gain)``, the same
light ``gain`` times as bright (the regressor's exposure match, :mod:`fastganfit.regression.exposure`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_params(name: str, params: torch.Tensor, num_params: int) -> None:
    if params.ndim != 2 or params.shape[1] != num_params:
        raise ValueError(f"{name} params: expected [B, {num_params}], got {list(params.shape)}")


def grey_deviation(colours: torch.Tensor) -> torch.Tensor:
    """``colours [..., 3]`` minus their mean over the three channels: the chromatic part (zero for grey)."""
    return colours - colours.mean(dim=-1, keepdim=True)


def _per_pixel(params: torch.Tensor) -> torch.Tensor:
    """``[B, C]`` -> ``[B, C, 1, 1]`` for broadcasting over an image."""
    return params[:, :, None, None]


class PhongLighting(nn.Module):
    """GANFit's illumination: ambient + one directional light with colour, Phong shading.

    Parameters ``[B, 10]``: ambient colour offset (3; ambient = 1 + a), directional colour (3; zero =
    no directional light), direction offset (3; direction towards the light = normalise(d + (0, 0, 1)),
    so zero is a light at the camera) and specular strength (1; white highlights, fixed shininess).

    ``colour = albedo * (ambient + colour_d * max(0, n.l)) + s * max(0, r.v) ** shininess``.
    """

    num_params = 10

    def __init__(self, shininess: float = 20.0) -> None:
        super().__init__()
        self.shininess = float(shininess)

    def shade(
        self, albedo: torch.Tensor, normals: torch.Tensor, view_dirs: torch.Tensor, params: torch.Tensor
    ) -> torch.Tensor:
        """Shaded colour ``[B, 3, H, W]`` from albedo, unit normals and unit directions to the camera.

        ``albedo``, ``normals`` and ``view_dirs`` are ``[B, 3, H, W]``; ``params`` is ``[B, 10]``.
        """
        _check_params("Phong lighting", params, self.num_params)
        ambient = (1.0 + _per_pixel(params[:, 0:3])).clamp(min=0.0)
        diffuse_colour = _per_pixel(params[:, 3:6])
        to_light = F.normalize(torch.cat([params[:, 6:8], params[:, 8:9] + 1.0], dim=1), dim=1)
        to_light = _per_pixel(to_light)
        specular = _per_pixel(params[:, 9:10])
        n_dot_l = (normals * to_light).sum(1, keepdim=True)
        diffuse = diffuse_colour * n_dot_l.clamp(min=0.0)
        reflected = 2.0 * n_dot_l * normals - to_light
        r_dot_v = (reflected * view_dirs).sum(1, keepdim=True).clamp(min=0.0)
        highlight = specular * r_dot_v.pow(self.shininess) * (n_dot_l > 0)
        return albedo * (ambient + diffuse) + highlight

    def chroma(self, params: torch.Tensor) -> torch.Tensor:
        """``[B, 6]``: the ambient and directional colours minus their grey (channel mean), ``[B, 10]`` params.

        Zero for white or grey light of any intensity; the specular highlight is white by construction.
        """
        _check_params("Phong lighting", params, self.num_params)
        return grey_deviation(params[:, 0:6].view(-1, 2, 3)).flatten(1)

    def brighter(self, params: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """``[B, 10]``: the light of ``params [B, 10]`` with its ambient, directional and specular parts ``gain [B]``
        times as strong (same colour and direction), so that every shaded colour is ``gain`` times as bright."""
        _check_params("Phong lighting", params, self.num_params)
        gain = gain[:, None].to(params)
        ambient = (1.0 + params[:, 0:3]) * gain - 1.0
        return torch.cat([ambient, params[:, 3:6] * gain, params[:, 6:9], params[:, 9:10] * gain], dim=1)


class SphericalHarmonicsLighting(nn.Module):
    """Second-order spherical-harmonics irradiance (9 coefficients per colour channel).

    Parameters ``[B, 27]`` ordered ``[coefficient, channel]``; the DC term is offset so that all
    zeros give irradiance 1 (white ambient light). ``colour = albedo * sum_k c_k Y_k(n)``.
    """

    num_params = 27

    def shade(
        self, albedo: torch.Tensor, normals: torch.Tensor, view_dirs: torch.Tensor, params: torch.Tensor
    ) -> torch.Tensor:
        """Shaded colour ``[B, 3, H, W]``; ``view_dirs`` is unused (diffuse only)."""
        del view_dirs
        _check_params("spherical-harmonics lighting", params, self.num_params)
        basis = sh_basis(normals)
        coefficients = params.view(-1, 9, 3)
        dc = coefficients.new_zeros(9, 3)
        dc[0] = 1.0 / SH_CONSTANTS[0]
        coefficients = coefficients + dc
        irradiance = torch.einsum("bkhw,bkc->bchw", basis, coefficients)
        return albedo * irradiance

    def chroma(self, params: torch.Tensor) -> torch.Tensor:
        """``[B, 27]``: each coefficient's three channels minus their mean (zero for grey irradiance)."""
        _check_params("spherical-harmonics lighting", params, self.num_params)
        return grey_deviation(params.view(-1, 9, 3)).flatten(1)

    def brighter(self, params: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """``[B, 27]``: the irradiance of ``params [B, 27]`` times ``gain [B]`` (every coefficient, DC offset
        included), so that every shaded colour is ``gain`` times as bright."""
        _check_params("spherical-harmonics lighting", params, self.num_params)
        dc = torch.zeros_like(params[:1]).view(1, 9, 3)
        dc[:, 0] = 1.0 / SH_CONSTANTS[0]
        coefficients = (params.view(-1, 9, 3) + dc) * gain[:, None, None].to(params) - dc
        return coefficients.flatten(1)


SH_CONSTANTS = (
    0.5 / math.sqrt(math.pi),
    math.sqrt(3.0 / (4.0 * math.pi)),
    0.5 * math.sqrt(15.0 / math.pi),
    0.25 * math.sqrt(5.0 / math.pi),
    0.25 * math.sqrt(15.0 / math.pi),
)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """Real spherical-harmonics basis ``[B, 9, H, W]`` of unit ``normals [B, 3, H, W]`` (bands 0-2)."""
    x, y, z = normals.unbind(1)
    c0, c1, c2, c3, c4 = SH_CONSTANTS
    return torch.stack(
        [
            torch.full_like(x, c0),
            c1 * y,
            c1 * z,
            c1 * x,
            c2 * x * y,
            c2 * y * z,
            c3 * (3.0 * z * z - 1.0),
            c2 * x * z,
            c4 * (x * x - y * y),
        ],
        dim=1,
    )


#: Normals sampled on the front hemisphere (facing the camera) to average a light's colour over.
HEMISPHERE_NORMALS = 256


def hemisphere_normals(count: int = HEMISPHERE_NORMALS) -> torch.Tensor:
    """``[count, 3]`` unit normals spread evenly (a Fibonacci spiral) over the hemisphere facing the camera (+Z)."""
    index = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1.0 - index / count
    radius = (1.0 - z.square()).sqrt()
    angle = index * math.pi * (3.0 - math.sqrt(5.0))
    return torch.stack([radius * angle.cos(), radius * angle.sin(), z], dim=1).float()


def light_colour(lighting: nn.Module, light: torch.Tensor, count: int = HEMISPHERE_NORMALS) -> torch.Tensor:
    """``[B, 3]``: the mean colour ``lighting`` with parameters ``light [B, L]`` gives a white surface, over
    ``count`` :func:`hemisphere_normals` seen from the camera (ambient, diffuse and specular alike). Differentiable
    in ``light``; all-zero parameters give ``(1, 1, 1)`` for both lighting models."""
    normals = hemisphere_normals(count).to(light)
    batch = light.shape[0]
    normals = normals.T[None, :, :, None].expand(batch, 3, -1, 1)
    view = light.new_tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand_as(normals)
    shaded = lighting.shade(torch.ones_like(normals), normals, view, light)
    return shaded.mean(dim=(2, 3))


def light_tint(lighting: nn.Module, light: torch.Tensor) -> torch.Tensor:
    """``[B]`` percent: ``100 ||c / mean(c) - 1||`` of the light's colour ``c`` (:func:`light_colour`) for ``light
    [B, L]``: 0 for a white (grey) light; a warm studio light is about 10-20."""
    colour = light_colour(lighting, light)
    relative = colour / colour.mean(dim=1, keepdim=True).clamp(min=1e-6)
    return 100.0 * torch.linalg.vector_norm(relative - 1.0, dim=1)
