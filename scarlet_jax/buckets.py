"""Static shape menus: every compiled shape comes from these ladders, so a notebook user
compiles once per bucket, not once per blend.

The ladders have no top: past the listed first rungs each one keeps growing geometrically
(boxes by about 1.2x, odd; slot counts alternating 4/3x and 3/2x), so any image size gets a
bucket. What bounds a blend is the device's memory (:mod:`scarlet_jax.memory`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

__all__ = ["BOX_SIZES", "SLOT_COUNTS", "CANVAS_STEP", "box_ladder", "slot_ladder",
           "bucket_box", "bucket_slots", "bucket_canvas"]

#: The first rungs of the box ladder (odd sides); :func:`box_ladder` continues it.
BOX_SIZES = (15, 21, 31, 41, 51, 61, 71, 81, 101, 121, 161, 201, 241)
#: The first rungs of the slot ladder; :func:`slot_ladder` continues it.
SLOT_COUNTS = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
CANVAS_STEP = 16


def box_ladder() -> Iterator[int]:
    """Odd box sides: :data:`BOX_SIZES`, then about 1.2x per rung, without end."""
    yield from BOX_SIZES
    side = BOX_SIZES[-1]
    while True:
        side = 2 * int(round(side * 1.2 / 2)) + 1
        yield side


def slot_ladder() -> Iterator[int]:
    """Component-slot counts: :data:`SLOT_COUNTS`, then 1.5x and 4/3x in turn (powers of two
    and 1.5 x powers of two), without end."""
    yield from SLOT_COUNTS
    power = SLOT_COUNTS[-1]
    while True:
        yield power * 3 // 2
        power *= 2
        yield power


def _smallest(ladder: Iterator[int], n: int, what: str) -> int:
    if n > 1 << 40:  # a typo, not an image: the ladder would take long to get there
        raise ValueError(f"{what} {n} is too large")
    return next(itertools.dropwhile(lambda size: size < n, ladder))


def bucket_box(n: int) -> int:
    """Smallest odd box side of :func:`box_ladder` that is >= ``n``."""
    return _smallest(box_ladder(), int(n), "box size")


def bucket_slots(n: int) -> int:
    """Smallest component-slot count of :func:`slot_ladder` that is >= ``n``."""
    return _smallest(slot_ladder(), max(int(n), 1), "component count")


def bucket_canvas(n: int) -> int:
    """Image side rounded up to a multiple of :data:`CANVAS_STEP`."""
    n = int(n)
    return -(-n // CANVAS_STEP) * CANVAS_STEP
