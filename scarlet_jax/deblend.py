"""The high-level entry point: ``deblend(observation, centers) -> DeblendResult``.

A single blend runs the batch pipeline (:mod:`scarlet_jax.pipeline`) in one lane.
"""

from __future__ import annotations

from .observation import Observation
from .options import resolve_options
from .pipeline import run
from .result import DeblendResult

__all__ = ["deblend"]


def deblend(
    observation: Observation,
    centers=None,
    *,
    max_iter: int = 300,
    e_rel: float = 1e-3,
    min_iter: int = 5,
    memory_limit=None,
    **options,
) -> DeblendResult:
    """Deblend one blend.

    Args:
      observation: from :func:`~scarlet_jax.make_observation`.
      centers: (S, 2) (y, x) source centers in pixels; None to detect them.
      max_iter: most iterations to run.
      e_rel: stop when ``|L_t - L_{t-W}| < W * e_rel * |L_t|`` after ``min_iter``
        iterations (``W`` = the ``stop_window`` option, 10; 1 in ``LSST_PIPELINE``,
        lite's rule).
      min_iter: iterations run before the ``e_rel`` test applies.
      memory_limit: device bytes the blend may use (default: see
        :func:`scarlet_jax.memory.memory_limit`).
      **options: see :data:`scarlet_jax.options.DEFAULTS` (``optimizer``, ``monotonic``,
        ``symmetric``, ``sparsity``, ``bg_thresh``, ``resize``, ...). ``symmetric`` is one
        bool for all sources or a sequence of one bool per center (in ``centers`` order).

    Returns:
      A :class:`DeblendResult`.

    Raises:
      BadInputError: bad centers or options, or a blend too large for the device's memory
        (the message names the problem).
    """
    opts = resolve_options(max_iter=max_iter, e_rel=e_rel, min_iter=min_iter, **options)
    (result,) = run([(observation, centers)], opts, max_lanes=1, raise_errors=True,
                    memory_limit_bytes=memory_limit)
    return result
