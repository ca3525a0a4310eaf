"""GANFit's objective: one function per term, each returning a per-sample loss ``[B]``, and their weighted sum.

Terms (formulas in each docstring): :func:`identity_loss`, :func:`content_loss`, :func:`pixel_loss`,
:func:`landmark_loss` and the regularisers :func:`shape_regulariser`, :func:`expression_regulariser`,
:func:`texture_regulariser`, :func:`light_regulariser`, :func:`light_chroma_regulariser`,
:func:`light_intensity_regulariser`. :class:`GANFitLoss`
weights and sums them; both the Fast-GANFit regressor's training and per-image GANFit fitting use it. Weights live
in ``conf/loss/``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastganfit.params import FaceParams
from fastganfit.perception.identity import IdentityOutput
from fastganfit.reconstruction.supervised import SupervisedLoss
from fastganfit.render.lighting import light_colour

JAW_CONTOUR = tuple(range(17))  # iBUG-68 indices 0..16
TERMS: tuple[str, ...] = (
    "identity", "content", "pixel", "landmark", "shape", "expression", "texture", "light", "light_chroma",
    "light_intensity",
)


class TextureModel(Protocol):
    """What :func:`texture_regulariser` needs of a texture model."""

    def latent_regulariser(self, latent: Tensor) -> Tensor: ...


class LightingModel(Protocol):
    """What :func:`light_chroma_regulariser` and :func:`light_intensity_regulariser` need of a lighting model."""

    def chroma(self, params: Tensor) -> Tensor: ...

    def shade(self, albedo: Tensor, normals: Tensor, view_dirs: Tensor, params: Tensor) -> Tensor: ...


def identity_loss(emb_render: Tensor, emb_input: Tensor) -> Tensor:
    """``1 - cos(e_render, e_input)`` per sample: embeddings ``[B, D]`` -> ``[B]`` in [0, 2]."""
    if emb_render.shape != emb_input.shape or emb_render.ndim != 2:
        raise ValueError(
            f"identity_loss: expected two [B, D] embeddings, got {list(emb_render.shape)} and {list(emb_input.shape)}"
        )
    return 1.0 - F.cosine_similarity(emb_render, emb_input, dim=1, eps=1e-8)


def content_loss(
    acts_render: Sequence[Tensor], acts_input: Sequence[Tensor], weights: Sequence[float] | None = None
) -> Tensor:
    """``sum_j w_j ||F_j(render) - F_j(input)||_2 / sqrt(C_j h_j w_j)`` per sample -> ``[B]``.

    ``acts_*`` hold one activation ``[B, C_j, h_j, w_j]`` (any shape ``[B, ...]``) per layer ``j``;
    ``weights`` default to 1. GANFit normalises each layer's L2 distance by its size ``C h w``; dividing
    the norm by ``sqrt(C h w)`` instead makes each layer's term the root-mean-square activation
    difference, which does not depend on the layer's size (``||d||_2 / (C h w)`` would shrink as
    ``1 / sqrt(C h w)`` for the same per-element difference), so layer weights mean what they say.
    """
    if len(acts_render) != len(acts_input):
        raise ValueError(f"content_loss: {len(acts_render)} render activations vs {len(acts_input)} input ones")
    if not acts_render:
        raise ValueError("content_loss: no activations (select identity layers for the content loss)")
    weights = [1.0] * len(acts_render) if weights is None else list(weights)
    if len(weights) != len(acts_render):
        raise ValueError(f"content_loss: {len(weights)} weights for {len(acts_render)} layers")
    total = acts_render[0].new_zeros(acts_render[0].shape[0])
    for layer, (render, target, weight) in enumerate(zip(acts_render, acts_input, weights, strict=True)):
        if render.shape != target.shape:
            raise ValueError(f"content_loss: layer {layer} shapes differ: {list(render.shape)} vs {list(target.shape)}")
        difference = (render - target).flatten(1)
        total = total + weight * torch.linalg.vector_norm(difference, dim=1) / difference.shape[1] ** 0.5
    return total


def pixel_loss(render: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked L1 per sample: ``sum_p m_p sum_c |r_pc - t_pc| / (C max(sum_p m_p, 1))`` -> ``[B]``.

    ``render`` and ``target`` are ``[B, C, H, W]``, ``mask [B, 1, H, W]`` in [0, 1] or bool (the
    renderer's coverage). The mean absolute difference over covered pixels and channels; pixels outside the mask
    do not count, and an empty mask gives 0 (the denominator is at least one pixel).
    """
    if render.shape != target.shape or render.ndim != 4:
        raise ValueError(
            f"pixel_loss: expected two [B, C, H, W] images, got {list(render.shape)} and {list(target.shape)}"
        )
    if mask.shape != (render.shape[0], 1, *render.shape[2:]):
        raise ValueError(
            f"pixel_loss: mask must be [B, 1, H, W] = {[render.shape[0], 1, *render.shape[2:]]}, got {list(mask.shape)}"
        )
    mask = mask.to(render.dtype)
    absolute = ((render - target).abs() * mask).sum(dim=(1, 2, 3))
    covered = mask.sum(dim=(1, 2, 3)).clamp(min=1.0)
    return absolute / (covered * render.shape[1])


def landmark_face_size(landmarks: Tensor) -> Tensor:
    """Face size ``[B]`` of landmarks ``[B, K, 2]``: the diagonal of their bounding box (pixels).

    Chosen over the inter-ocular distance, which shrinks towards zero as a face turns to profile.
    """
    extent = landmarks.amax(dim=1) - landmarks.amin(dim=1)
    return torch.linalg.vector_norm(extent, dim=1)


def landmark_loss(
    predicted: Tensor, target: Tensor, visibility: Tensor | None = None, face_size: Tensor | None = None
) -> Tensor:
    """Mean normalised landmark distance per sample -> ``[B]``.

    ``sum_k v_k ||p_k - t_k||_2 / (s sum_k v_k)`` with ``predicted`` (the model's projected landmarks)
    and ``target`` (detected) ``[B, 68, 2]`` in pixels. ``s`` is ``face_size [B]``, by default
    :func:`landmark_face_size` of the target (its bounding-box diagonal). ``v_k`` is 1 except on the
    jaw contour (indices 0..16), where it is ``visibility [B, 68]`` (bool; the renderer's
    ``landmark_visibility`` of the predicted landmarks): a contour landmark hidden behind the turned face
    has no true 2D counterpart, so it is left out. Every other landmark always counts.
    """
    if predicted.shape != target.shape or predicted.ndim != 3 or predicted.shape[-1] != 2:
        raise ValueError(
            f"landmark_loss: expected two [B, K, 2] tensors, got {list(predicted.shape)} and {list(target.shape)}"
        )
    weight = torch.ones(predicted.shape[:2], dtype=predicted.dtype, device=predicted.device)
    if visibility is not None:
        if visibility.shape != predicted.shape[:2]:
            raise ValueError(
                f"landmark_loss: visibility must be {list(predicted.shape[:2])}, got {list(visibility.shape)}"
            )
        jaw = slice(JAW_CONTOUR[0], JAW_CONTOUR[-1] + 1)  # a slice: a list index is a host-to-device copy
        weight[:, jaw] = visibility[:, jaw].to(weight.dtype)
    if face_size is None:
        face_size = landmark_face_size(target)
    if face_size.shape != predicted.shape[:1]:
        raise ValueError(f"landmark_loss: face_size must be [B] = [{predicted.shape[0]}], got {list(face_size.shape)}")
    distance = torch.linalg.vector_norm(predicted - target, dim=-1)
    mean_distance = (distance * weight).sum(dim=1) / weight.sum(dim=1)
    return mean_distance / face_size.clamp(min=1e-6)


def _mean_square(name: str, coefficients: Tensor) -> Tensor:
    if coefficients.ndim != 2:
        raise ValueError(f"{name}: expected [B, K], got {list(coefficients.shape)}")
    if coefficients.shape[1] == 0:
        return coefficients.new_zeros(coefficients.shape[0])
    return coefficients.square().mean(dim=1)


def shape_regulariser(shape: Tensor) -> Tensor:
    """``||s||^2 / Ks`` per sample: shape coefficients ``[B, Ks]`` (N(0, 1) prior) -> ``[B]``."""
    return _mean_square("shape_regulariser", shape)


def expression_regulariser(expression: Tensor) -> Tensor:
    """``||e||^2 / Ke`` per sample: expression coefficients ``[B, Ke]`` -> ``[B]``."""
    return _mean_square("expression_regulariser", expression)


def texture_regulariser(latent: Tensor, texture_model: TextureModel) -> Tensor:
    """``R_tex(z) / Kt`` per sample: ``texture_model.latent_regulariser`` (its negative log prior up to a
    constant, ``0.5 ||z||^2`` for every texture model in fastganfit) per latent dimension, ``[B, Kt] -> [B]``."""
    if latent.ndim != 2:
        raise ValueError(f"texture_regulariser: expected [B, Kt], got {list(latent.shape)}")
    return texture_model.latent_regulariser(latent) / max(latent.shape[1], 1)


def light_regulariser(light: Tensor) -> Tensor:
    """``||l||^2 / L`` per sample: light parameters ``[B, L]`` -> ``[B]``.

    Light parameters are zero-centred on white ambient light of intensity 1 (Phong and spherical
    harmonics alike), so this is the squared deviation from ambient white light.
    """
    return _mean_square("light_regulariser", light)


def light_chroma_regulariser(light: Tensor, lighting: LightingModel, reference: Tensor | None = None) -> Tensor:
    """``||chroma(l) - chroma(r)||^2 / K`` per sample: the light's colour away from grey (``lighting.chroma``,
    ``[B, K]``), or away from the colour of a ``reference`` light ``r [B, L]`` when given -> ``[B]``.

    The light regulariser pulls every light parameter towards white ambient light alike; this term adds a
    prior on colour alone: real illumination is close to achromatic (after white balance), so the skin's
    colour should come from the albedo. Without it a tinted light and a skin colour explain a photo equally well,
    and the light, one parameter per channel, is the cheaper way (docs/regressor_and_losses.md).
    """
    if light.ndim != 2:
        raise ValueError(f"light_chroma_regulariser: expected [B, L], got {list(light.shape)}")
    chroma = lighting.chroma(light)
    if reference is not None:
        if reference.shape != light.shape:
            raise ValueError(f"light_chroma_regulariser: reference {list(reference.shape)} is not [B, L] = "
                             f"{list(light.shape)}")
        chroma = chroma - lighting.chroma(reference.detach().to(light))
    return _mean_square("light_chroma_regulariser", chroma)


#: Front-hemisphere normals :func:`light_intensity_regulariser` averages the light's brightness over.
INTENSITY_NORMALS = 64


def light_intensity_regulariser(light: Tensor, lighting: LightingModel, target: float = 1.0) -> Tensor:
    """``(log I - log target)^2`` per sample: how far the light's brightness ``I`` (the mean over channels of the
    colour it gives a white surface over the front hemisphere of normals, :func:`~fastganfit.render.lighting.
    light_colour`) is from ``target`` (1: the brightness of all-zero parameters, white ambient light of intensity
    1); ``light [B, L]`` -> ``[B]``.

    A brighter light on a darker albedo renders the same pixels as a dimmer light on a lighter one, and the pixel,
    identity and content terms cannot tell them apart. Holding the light at one brightness (GANFit++'s colour stage:
    the synthetic training lights' mean, 0.7) makes the albedo carry how light or dark the skin is, so that fitted
    skins rank like the people's (BENCHMARKS.md, section portrait_colour).
    """
    if light.ndim != 2:
        raise ValueError(f"light_intensity_regulariser: expected [B, L], got {list(light.shape)}")
    if not target > 0:
        raise ValueError(f"light_intensity_regulariser: target must be positive, got {target!r}")
    log_intensity = light_colour(lighting, light, INTENSITY_NORMALS).mean(dim=1).clamp(min=1e-3).log()
    return (log_intensity - math.log(target)).square()


def composite_over_input(render: Tensor, mask: Tensor, image: Tensor) -> Tensor:
    """``m * render + (1 - m) * image``: the render ``[B, 3, H, W]`` pasted over the input image where the
    face covers it (``mask [B, 1, H, W]``), what the identity network sees for the identity and content losses."""
    mask = mask.to(render.dtype)
    return mask * render + (1.0 - mask) * image


class GANFitLoss(nn.Module):
    """Weighted sum of GANFit's terms: ``total = sum_t w_t mean_B(term_t)``.

    Weights (``conf/loss/*.yaml``): ``identity``, ``content``, ``pixel``, ``landmark``, ``shape``,
    ``expression``, ``texture``, ``light``, ``light_chroma``, ``light_intensity``; ``content_layer_weights`` go to
    :func:`content_loss`. A term with weight 0 is not computed, so its inputs may be left out (``needs_identity``
    tells a caller whether to run the identity network on the composite at all).

    ``supervised``: an optional :class:`~fastganfit.reconstruction.supervised.SupervisedLoss` (vertex and parameter
    terms for samples with ground truth), held here so that its weights live in the loss configs; callers with
    ground truth add it (:meth:`FastGANFitModule.objective <fastganfit.regression.module.FastGANFitModule.objective>`).
    """

    def __init__(
        self,
        identity: float = 0.0,
        content: float = 0.0,
        pixel: float = 0.0,
        landmark: float = 0.0,
        shape: float = 0.0,
        expression: float = 0.0,
        texture: float = 0.0,
        light: float = 0.0,
        content_layer_weights: Sequence[float] | None = None,
        light_chroma: float = 0.0,
        supervised: SupervisedLoss | None = None,
        light_intensity: float = 0.0,
        light_intensity_target: float = 1.0,
    ) -> None:
        super().__init__()
        self.weights = {
            "identity": float(identity),
            "content": float(content),
            "pixel": float(pixel),
            "landmark": float(landmark),
            "shape": float(shape),
            "expression": float(expression),
            "texture": float(texture),
            "light": float(light),
            "light_chroma": float(light_chroma),
            "light_intensity": float(light_intensity),
        }
        negative = {name: weight for name, weight in self.weights.items() if weight < 0}
        if negative:
            raise ValueError(f"GANFitLoss: weights must be non-negative, got {negative}")
        if not light_intensity_target > 0:
            raise ValueError(f"GANFitLoss: light_intensity_target must be positive, got {light_intensity_target!r}")
        self.light_intensity_target = float(light_intensity_target)
        self.content_layer_weights = None if content_layer_weights is None else list(content_layer_weights)
        self.supervised = supervised

    @property
    def active_terms(self) -> list[str]:
        """Terms with a positive weight, in :data:`TERMS` order."""
        return [name for name in TERMS if self.weights[name] > 0]

    @property
    def needs_identity(self) -> bool:
        """Whether the identity or content term is on (both need the identity network's outputs)."""
        return self.weights["identity"] > 0 or self.weights["content"] > 0

    def forward(
        self,
        params: FaceParams,
        *,
        landmarks: Tensor | None = None,
        target_landmarks: Tensor | None = None,
        landmark_visibility: Tensor | None = None,
        render: Tensor | None = None,
        mask: Tensor | None = None,
        image: Tensor | None = None,
        identity_render: IdentityOutput | None = None,
        identity_input: IdentityOutput | None = None,
        texture_model: TextureModel | None = None,
        lighting: LightingModel | None = None,
        light_reference: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss (scalar) and ``{term: batch mean (detached)}`` for every active term, plus ``total``.

        ``landmarks``/``target_landmarks [B, 68, 2]`` and ``landmark_visibility [B, 68]`` (optional): the
        render's projected landmarks, the detected ones and the render's visibility (landmark term).
        ``render [B, 3, H, W]``, ``mask [B, 1, H, W]``, ``image [B, 3, H, W]``: the rendered image, its
        coverage and the input (pixel term). ``identity_render``/``identity_input``: the identity network's
        outputs for the composite (:func:`composite_over_input`) and for the input (identity and content
        terms). ``texture_model``: for the texture regulariser; ``lighting``: for the light chroma regulariser, which
        pulls the light's colour towards ``light_reference [B, L]``'s when given (GANFit++: the regressed light's),
        towards grey otherwise, and the light intensity regulariser (towards ``light_intensity_target``).
        Inputs of inactive terms are ignored; a missing input of an active term raises ``ValueError``.
        """
        available: dict[str, object] = {
            "landmarks": landmarks,
            "target_landmarks": target_landmarks,
            "render": render,
            "mask": mask,
            "image": image,
            "identity_render": identity_render,
            "identity_input": identity_input,
            "texture_model": texture_model,
            "lighting": lighting,
        }

        def need(name: str, *keys: str) -> list:
            missing = [key for key in keys if available[key] is None]
            if missing:
                raise ValueError(f"GANFitLoss: the {name} term (weight {self.weights[name]}) needs {missing}")
            return [available[key] for key in keys]

        terms: dict[str, Tensor] = {}
        for name in self.active_terms:
            if name in ("identity", "content"):
                rendered, target = need(name, "identity_render", "identity_input")
                terms[name] = (
                    identity_loss(rendered.embedding, target.embedding)
                    if name == "identity"
                    else content_loss(rendered.activations, target.activations, self.content_layer_weights)
                )
            elif name == "pixel":
                terms[name] = pixel_loss(*need(name, "render", "image", "mask"))
            elif name == "landmark":
                terms[name] = landmark_loss(*need(name, "landmarks", "target_landmarks"), landmark_visibility)
            elif name == "texture":
                terms[name] = texture_regulariser(params.texture, *need(name, "texture_model"))
            elif name == "light_chroma":
                terms[name] = light_chroma_regulariser(params.light, *need(name, "lighting"), light_reference)
            elif name == "light_intensity":
                terms[name] = light_intensity_regulariser(params.light, *need(name, "lighting"),
                                                          self.light_intensity_target)
            else:
                terms[name] = REGULARISERS[name](getattr(params, name))
        total = params.shape.new_zeros(())
        for name, value in terms.items():
            total = total + self.weights[name] * value.mean()
        logs = {name: value.detach().mean() for name, value in terms.items()}
        logs["total"] = total.detach()
        return total, logs


REGULARISERS = {"shape": shape_regulariser, "expression": expression_regulariser, "light": light_regulariser}
