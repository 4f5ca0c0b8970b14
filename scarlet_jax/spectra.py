"""A final spectrum solve: the best non-negative spectra for the fitted morphologies.

The fit moves spectra and morphologies together with small proximal steps and stops on a
loss-change test, so its spectra are close to, not at, their optimum. With the
morphologies held fixed the spectra enter the model linearly, and per band ``b`` the
best ones solve a small non-negative least-squares problem::

    min_{s_b >= 0}  sum_p w_bp (D_bp - sum_k s_kb T_kbp)^2

where ``T_kb`` is component ``k``'s morphology convolved with the band's difference kernel
(its model for a unit spectrum). In normal-equation form that is ``min 1/2 s^T G s - h^T s``
with the K x K Gram matrix ``G = T W T^T`` and ``h = T W D``, solved here exactly by the
Lawson-Hanson active-set method (:func:`nnls_gram`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["MAX_TEMPLATE_VALUES", "nnls_gram", "normal_equations", "refit_spectra"]

#: Largest ``K * B * H * W`` (component templates held at once, float32) for which
#: :func:`refit_spectra` solves; a larger blend keeps the fit's spectra (256 MiB).
MAX_TEMPLATE_VALUES = 64 * 1024 * 1024


def nnls_gram(gram, rhs, max_iter: int | None = None, tol: float = 1e-12) -> np.ndarray:
    """Non-negative least squares from the normal equations (Lawson-Hanson active set).

    Solves ``argmin_{x >= 0} 1/2 x^T G x - h^T x`` for a symmetric positive semi-definite
    ``G`` (the normal equations of ``min ||A x - d||^2`` with ``G = A^T A``, ``h = A^T d``).
    Components whose column of ``G`` is zero (a template with no weight) stay at 0.

    Args:
      gram: (K, K) float Gram matrix ``G``.
      rhs: (K,) float ``h``.
      max_iter: most outer iterations (default ``3 K``).
      tol: relative tolerance on the gradient test (scaled by ``max |h|``).

    Returns:
      (K,) float64 solution, >= 0.
    """
    g = np.asarray(gram, np.float64)
    h = np.asarray(rhs, np.float64)
    k = h.shape[0]
    x = np.zeros(k)
    if k == 0:
        return x
    usable = np.diag(g) > 0
    passive = np.zeros(k, bool)
    scale = max(float(np.max(np.abs(h))), 1e-300)
    max_iter = 3 * k if max_iter is None else max_iter

    def solve(mask):
        idx = np.nonzero(mask)[0]
        z = np.zeros(k)
        if idx.size:
            z[idx] = np.linalg.lstsq(g[np.ix_(idx, idx)], h[idx], rcond=None)[0]
        return z

    for _ in range(max_iter):
        grad = h - g @ x  # minus the gradient: the descent direction
        free = ~passive & usable
        if not free.any() or grad[free].max() <= tol * scale:
            break
        j = np.nonzero(free)[0][np.argmax(grad[free])]
        passive[j] = True
        for _ in range(k + 1):  # inner loop: step back until the passive set is feasible
            z = solve(passive)
            if np.all(z[passive] > 0):
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / np.maximum(x[neg] - z[neg], 1e-300))
            x = x + alpha * (z - x)
            passive &= x > tol * np.max(np.abs(x), initial=0.0)
            x[~passive] = 0.0
    return np.maximum(x, 0.0)


def normal_equations(templates, images, weights) -> tuple[np.ndarray, np.ndarray]:
    """Per-band Gram matrices and right-hand sides of the weighted spectrum fit.

    Args:
      templates: (K, B, H, W) convolved component models for unit spectra.
      images: (B, H, W) data.
      weights: (B, H, W) inverse variance (0 where masked).

    Returns:
      ``(gram, rhs)``: (B, K, K) ``G_b = T_b W_b T_b^T`` and (B, K) ``h_b = T_b W_b D_b``,
      float64.
    """
    t = np.asarray(templates, np.float64)
    k, b = t.shape[:2]
    t = t.reshape(k, b, -1)
    w = np.asarray(weights, np.float64).reshape(b, -1)
    d = np.asarray(images, np.float64).reshape(b, -1)
    gram = np.einsum("kbp,bp,jbp->bkj", t, w, t)
    rhs = np.einsum("kbp,bp->bk", t, w * d)
    return gram, rhs


def refit_spectra(result):
    """The result with every spectrum replaced by the weighted non-negative least-squares
    optimum for its fitted morphology (see the module docstring).

    A blend whose templates would hold more than :data:`MAX_TEMPLATE_VALUES` values, or a
    failed result, is returned unchanged.

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult`.

    Returns:
      A new :class:`~scarlet_jax.result.DeblendResult` (float32 spectra).
    """
    k = result.n_components
    if result.error is not None or k == 0:
        return result
    n_bands, height, width = result.observation.shape
    if k * n_bands * height * width > MAX_TEMPLATE_VALUES:
        return result
    unit = dataclasses.replace(result, spectra=np.ones_like(result.spectra))
    templates = np.asarray(unit._models(np.eye(k, dtype=np.float32)))  # (K, B, H, W)
    obs = result.observation
    gram, rhs = normal_equations(templates, obs.images, obs.weights)
    spectra = np.stack([nnls_gram(gram[b], rhs[b]) for b in range(n_bands)], axis=1)
    return dataclasses.replace(result, spectra=spectra.astype(np.float32))
