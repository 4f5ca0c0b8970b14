"""The loss and its hand-written gradient (a chain of transposes, no autodiff).

Loss: ``L = 0.5 * sum(W * (D - P(M))**2)`` with ``M = sum_k insert(spectrum_k x morph_k)``
and ``P`` the per-band convolution with the PSF-difference kernel. With the model-space
gradient ``G = P^T(W * (P(M) - D))`` and ``G_k = extract(G)``:
``dL/dspectrum_kb = sum_yx G_kb * morph_k`` and ``dL/dmorph_k = sum_b spectrum_kb * G_kb``.
The components come in size classes (a tuple of :class:`Components`, or one): the model
sums every class's boxes into one canvas, convolved once; each class reads its gradient
boxes back out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .components import Components, FitData, as_classes, component_models
from .fft import convolve, convolve_op, convolve_transpose
from .render import extract, insert, insert_op

__all__ = ["render", "loss_and_grads", "loss_reference"]


def _classed(components, placement):
    """(tuple of Components, tuple of Placement, whether the input was one class)."""
    return as_classes(components), as_classes(placement), isinstance(components, Components)


def render(components, placement, data: FitData) -> jax.Array:
    """(B, H, W) model in the observed frame, ``P(M)``: the one render of the fit (a
    result's ``model`` is the same sum on the host, in numpy); differentiable through the
    hand-written VJPs of the insertion and the convolution. ``components``/``placement``:
    one class or a tuple of classes."""
    comps, places, _ = _classed(components, placement)
    boxes = tuple(component_models(c.replace(morphs=c.morphs * p.support))
                  for c, p in zip(comps, places, strict=True))
    origins = tuple(p.origins for p in places)
    model = insert_op(boxes, origins, data.images.shape[-2:], data.margin)
    return convolve_op(model, data.kernel_fft, data.fft_shape)


def loss_and_grads(components, placement, data: FitData):
    """Loss and its gradient with respect to the components, written out by hand.

    Args:
      components, placement: one class (:class:`Components`,
        :class:`~scarlet_jax.components.Placement`) or a tuple of classes.
      data: the blend's :class:`FitData`.

    Returns:
      ``(loss, grads)``: loss () float32 and grads shaped like ``components`` ((K, B)
      spectra, (K, h, w) morphs per class).
    """
    comps, places, single = _classed(components, placement)
    morphs = tuple(c.morphs * p.support for c, p in zip(comps, places, strict=True))
    boxes = tuple(c.spectra[:, :, None, None] * m[:, None]  # (K, B, h, w)
                  for c, m in zip(comps, morphs, strict=True))
    origins = tuple(p.origins for p in places)
    shape = data.images.shape[-2:]
    model = convolve(insert(boxes, origins, shape, data.margin), data.kernel_fft,
                     data.fft_shape)
    diff = model - data.images
    wdiff = data.weights * diff
    loss = 0.5 * jnp.sum(wdiff * diff)
    grad_model = convolve_transpose(wdiff, data.kernel_fft, data.fft_shape)
    gs = extract(grad_model, origins, tuple(m.shape[-2:] for m in morphs), data.margin)
    # products and sums, not einsums: XLA:CPU runs these K-batched contractions as dots of
    # tiny matrices, ~6x slower on the HSC blend than one fused multiply-reduce kernel
    grads = tuple(
        Components(spectra=jnp.sum(g * m[:, None], axis=(2, 3)),
                   morphs=jnp.sum(c.spectra[:, :, None, None] * g, axis=1) * p.support)
        for g, m, c, p in zip(gs, morphs, comps, places, strict=True)
    )
    return loss, (grads[0] if single else grads)


def loss_reference(components, placement, data: FitData) -> jax.Array:
    """The same loss written plainly (slices and ``jnp.fft`` only, no custom rules), for
    checking the hand-written gradient with ``jax.grad``."""
    comps, places, _ = _classed(components, placement)
    b = comps[0].spectra.shape[1]
    height, width = data.images.shape[-2:]
    m = data.margin
    canvas = jnp.zeros((b, height + 2 * m, width + 2 * m), comps[0].spectra.dtype)
    for c, p in zip(comps, places, strict=True):
        k, h, w = c.morphs.shape
        for i in range(k):
            oy = p.origins[i, 0] + m
            ox = p.origins[i, 1] + m
            morph = c.morphs[i] * p.support[i]
            box = c.spectra[i][:, None, None] * morph[None]
            start = (jnp.zeros_like(oy), oy, ox)
            cur = jax.lax.dynamic_slice(canvas, start, (b, h, w))
            canvas = jax.lax.dynamic_update_slice(canvas, cur + box, start)
    model = canvas[:, m : m + height, m : m + width]
    f = jnp.fft.rfft2(model, s=data.fft_shape) * data.kernel_fft
    conv = jnp.fft.irfft2(f, s=data.fft_shape)[:, :height, :width]
    return 0.5 * jnp.sum(data.weights * (data.images - conv) ** 2)
