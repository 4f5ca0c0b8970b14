"""Static shape menus: every compiled shape comes from these ladders, so a notebook user
compiles once per bucket, not once per blend.

The ladders have no top: past the listed first rungs each one keeps growing geometrically
(boxes by about 1.2x, odd; slot counts alternating 4/3x and 3/2x), so any image size gets a
bucket. What bounds a blend is the device's memory (:mod:`scarlet_jax.memory`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

__all__ = ["BOX_SIZES", "SLOT_COUNTS", "CANVAS_STEP", "CLASS_SIDES", "box_ladder",
           "slot_ladder", "bucket_box", "bucket_slots", "bucket_canvas", "class_side",
           "class_count", "sort_classes", "classes_hold", "merge_classes"]

#: The first rungs of the box ladder (odd sides); :func:`box_ladder` continues it.
BOX_SIZES = (15, 21, 31, 41, 51, 61, 71, 81, 101, 121, 161, 201, 241)
#: The first rungs of the slot ladder; :func:`slot_ladder` continues it.
SLOT_COUNTS = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
CANVAS_STEP = 16
#: The first rungs of the size-class ladder (odd slot box sides, per axis: classes may be
#: rectangular); :func:`class_side` continues it in steps of about 1.2x. Finer than the box
#: ladder at small sizes, where most components are; coarse enough that blends of similar
#: sizes share a bucket (and a compiled program).
CLASS_SIDES = (5, 7, 9, 11, 13, 15, 19, 23, 27, 31, 37, 43, 53, 63, 75, 89, 105, 127)


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


def class_side(n: int) -> int:
    """Smallest odd slot side of the class ladder that is >= ``n`` (:data:`CLASS_SIDES`,
    then about 1.2x per rung, without end)."""
    n = int(n)
    if n > 1 << 40:
        raise ValueError(f"box size {n} is too large")
    for side in CLASS_SIDES:
        if side >= n:
            return side
    side = CLASS_SIDES[-1]
    while side < n:
        side = int(math.ceil(side * 1.2)) | 1
    return side


def class_count(n: int) -> int:
    """Slot count of a size class of ``n`` components: 1, 2, 3, 4, 6, 8, 12, 16, 24, ...
    (steps of at most 1.5x, without end)."""
    n = max(int(n), 1)
    if n <= 4:
        return n
    count = 4
    while count < n:
        count = count * 3 // 2 if count & (count - 1) == 0 else count * 4 // 3
    return count


def sort_classes(classes) -> tuple:
    """A class layout ((h, w, K_c), ...) in its canonical order: by slot pixels, then
    shape (hashable ints)."""
    return tuple(sorted((tuple(int(v) for v in c) for c in classes),
                        key=lambda c: (c[0] * c[1], c)))


def _place(layout: list[list[int]], classes) -> bool:
    """Place the slots of ``classes`` one by one (largest first) in the smallest class of
    ``layout`` ([h, w, free slots]) that holds its shape; False when one finds no room."""
    for h, w, k in sorted(classes, key=lambda c: -c[0] * c[1]):
        for _ in range(k):
            fits = [c for c in layout if c[0] >= h and c[1] >= w and c[2] > 0]
            if not fits:
                return False
            min(fits, key=lambda c: c[0] * c[1])[2] -= 1
    return True


def classes_hold(big, small) -> bool:
    """Whether layout ``big`` holds every slot of layout ``small`` (each in a slot of a
    class at least as large on both axes)."""
    return _place([list(c) for c in big], small)


def merge_classes(layouts) -> tuple:
    """A layout that holds each of ``layouts``: each class of each goes to the smallest
    class of the result that holds its shape (its slot count raised on the slot ladder of
    :func:`class_count` as needed), or becomes a new class."""
    merged: list[list[int]] = []
    for layout in layouts:
        used: dict[int, int] = {}
        for h, w, k in sorted(layout, key=lambda c: -c[0] * c[1]):
            fits = [i for i, m in enumerate(merged) if m[0] >= h and m[1] >= w]
            if fits:
                i = min(fits, key=lambda i: merged[i][0] * merged[i][1])
                used[i] = used.get(i, 0) + k
                merged[i][2] = max(merged[i][2], class_count(used[i]))
            else:
                merged.append([h, w, k])
                used[len(merged) - 1] = k
    return sort_classes(merged)
