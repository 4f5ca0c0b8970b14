"""The loss and its hand-written gradient (a chain of transposes, no autodiff).

Loss: ``L = 0.5 * sum(W * (D - P(M))**2)`` with ``M = sum_k insert(spectrum_k x morph_k)``
and ``P`` the per-band convolution with the PSF-difference kernel. With the model-space
gradient ``G = P^T(W * (P(M) - D))`` and ``G_k = extract(G)``:
``dL/dspectrum_kb = sum_yx G_kb * morph_k`` and ``dL/dmorph_k = sum_b spectrum_kb * G_kb``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .components import Components, FitData, Placement, component_models
from .fft import convolve, convolve_op, convolve_transpose
from .render import extract, insert, insert_op

__all__ = ["render", "loss_and_grads", "loss_reference"]


def render(components: Components, placement: Placement, data: FitData) -> jax.Array:
    """(B, H, W) model in the observed frame, ``P(M)``: the one render of the package (the
    result's ``model`` and ``source_models`` call it too); differentiable through the
    hand-written VJPs of the insertion and the convolution."""
    boxes = component_models(components.replace(morphs=components.morphs * placement.support))
    model = insert_op(boxes, placement.origins, data.images.shape[-2:], data.margin)
    return convolve_op(model, data.kernel_fft, data.fft_shape)


def loss_and_grads(components: Components, placement: Placement, data: FitData):
    """Loss and its gradient with respect to the components, written out by hand.

    Returns:
      ``(loss, grads)``: loss () float32 and grads a :class:`Components` of gradients
      ((K, B) spectra, (K, h, w) morphs).
    """
    morphs = components.morphs * placement.support
    boxes = components.spectra[:, :, None, None] * morphs[:, None]  # (K, B, h, w)
    shape = data.images.shape[-2:]
    model = convolve(insert(boxes, placement.origins, shape, data.margin), data.kernel_fft,
                     data.fft_shape)
    diff = model - data.images
    wdiff = data.weights * diff
    loss = 0.5 * jnp.sum(wdiff * diff)
    grad_model = convolve_transpose(wdiff, data.kernel_fft, data.fft_shape)
    g = extract(grad_model, placement.origins, boxes.shape[-2:], data.margin)  # (K, B, h, w)
    grad_spectra = jnp.einsum("kbyx,kyx->kb", g, morphs)
    grad_morphs = jnp.einsum("kb,kbyx->kyx", components.spectra, g) * placement.support
    return loss, Components(spectra=grad_spectra, morphs=grad_morphs)


def loss_reference(components: Components, placement: Placement, data: FitData) -> jax.Array:
    """The same loss written plainly (slices and ``jnp.fft`` only, no custom rules), for
    checking the hand-written gradient with ``jax.grad``."""
    k, b, h, w = component_models(components).shape
    height, width = data.images.shape[-2:]
    m = data.margin
    canvas = jnp.zeros((b, height + 2 * m, width + 2 * m), components.spectra.dtype)
    for i in range(k):
        oy = placement.origins[i, 0] + m
        ox = placement.origins[i, 1] + m
        morph = components.morphs[i] * placement.support[i]
        box = components.spectra[i][:, None, None] * morph[None]
        start = (jnp.zeros_like(oy), oy, ox)
        cur = jax.lax.dynamic_slice(canvas, start, (b, h, w))
        canvas = jax.lax.dynamic_update_slice(canvas, cur + box, start)
    model = canvas[:, m : m + height, m : m + width]
    f = jnp.fft.rfft2(model, s=data.fft_shape) * data.kernel_fft
    conv = jnp.fft.irfft2(f, s=data.fft_shape)[:, :height, :width]
    return 0.5 * jnp.sum(data.weights * (data.images - conv) ** 2)
