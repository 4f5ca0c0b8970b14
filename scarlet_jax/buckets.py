"""Static shape menus: every compiled shape comes from these ladders, so a notebook user
compiles once per bucket, not once per blend."""

from __future__ import annotations

__all__ = ["BOX_SIZES", "SLOT_COUNTS", "CANVAS_STEP", "bucket_box", "bucket_slots", "bucket_canvas"]

BOX_SIZES = (15, 21, 31, 41, 51, 61, 71, 81, 101, 121, 161, 201, 241)
SLOT_COUNTS = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
CANVAS_STEP = 16


def _smallest(ladder, n, what):
    for size in ladder:
        if size >= n:
            return size
    raise ValueError(f"{what} {n} is larger than the largest bucket {ladder[-1]}")


def bucket_box(n: int) -> int:
    """Smallest odd box side in :data:`BOX_SIZES` that is >= ``n``."""
    return _smallest(BOX_SIZES, int(n), "box size")


def bucket_slots(n: int) -> int:
    """Smallest component-slot count in :data:`SLOT_COUNTS` that is >= ``n``."""
    return _smallest(SLOT_COUNTS, max(int(n), 1), "component count")


def bucket_canvas(n: int) -> int:
    """Image side rounded up to a multiple of :data:`CANVAS_STEP`."""
    n = int(n)
    return -(-n // CANVAS_STEP) * CANVAS_STEP
