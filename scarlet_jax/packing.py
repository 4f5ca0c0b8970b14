"""Host-side packing of a blend into bucketed, padded device arrays in size classes.

``pack_blend`` turns an :class:`~scarlet_jax.observation.Observation` and its initial
components (scarlet lite style: each with its own box) into a
:class:`~scarlet_jax.components.PackedBlend`. The image is padded to the canvas bucket
(weight 0 outside). Each component needs a slot box centred on its peak that holds its own
box plus ``grow_margin`` pixels of room per side; slot sides come from the class ladder
(:func:`~scarlet_jax.buckets.class_side`, per axis, no ceiling) and the components are
grouped into at most :data:`MAX_CLASSES` size classes: class ``c`` is a stacked
``(K_c, h_c, w_c)`` array (rectangular when that saves pixels), laid out as a whole blend
used to be (:class:`~scarlet_jax.components.Components`,
:class:`~scarlet_jax.components.Placement`, peak at the box centre, the component's own box
a support mask inside its slot). The class shapes and slot counts ``K_c``
(:func:`~scarlet_jax.buckets.class_count`) are the key's ``classes``.

A component whose box outgrows its class moves up a class at a block boundary:
:func:`regrow` re-packs the blend and carries the fit state over.
"""

from __future__ import annotations

import jax
import numpy as np

from .boxes import overlap
from .buckets import bucket_canvas, class_count, class_side, sort_classes
from .components import BucketKey, Components, FitData, InitComponent, PackedBlend, Placement
from .fft import fft_shape_for, kernel_to_fft
from .observation import Observation
from .optim import FistaState, ProxAdamState
from .render import check_origins

__all__ = [
    "GROW_MARGIN",
    "MAX_CLASSES",
    "CLASS_COST",
    "bucket_key",
    "choose_classes",
    "pack_blend",
    "regrow",
    "unpack_components",
    "padding",
    "box_side_for",
]

#: default pixels of room in a slot around a component's initial box (the option
#: ``grow_margin``): with :data:`scarlet_jax.growth.EDGE_ROOM`, the smallest room with which
#: the HSC demo blend's components never outgrow their classes (one block program)
GROW_MARGIN = 8

#: at most this many size classes per blend when packing (a regrow may add one)
MAX_CLASSES = 3
#: the cost of one more class in the class choice, in slot pixels: each class has its own
#: insertion loop, extraction, einsums and monotonicity scan
CLASS_COST = 1500


def _need(c: InitComponent, grow_margin: int) -> tuple[int, int]:
    """Odd (h, w) of the box centred on the peak that holds the component's own box plus
    ``grow_margin`` per side."""
    h, w = np.shape(c.morph)
    py, px = (int(v) for v in c.peak)
    oy, ox = (int(v) for v in c.origin)
    hy = max(py - oy, oy + h - 1 - py, 0)
    hx = max(px - ox, ox + w - 1 - px, 0)
    return 2 * (hy + grow_margin) + 1, 2 * (hx + grow_margin) + 1


def _cap(image_shape) -> int:
    """A slot side that covers the image from any peak in it (no box edge in the image)."""
    return class_side(2 * max(image_shape) + 1)


def _needs(components, grow_margin, image_shape):
    cap = _cap(image_shape)
    return [tuple(min(class_side(n), cap) for n in _need(c, grow_margin)) for c in components]


def box_side_for(components: list[InitComponent], grow_margin: int) -> int:
    """Odd side of a square box centred on each peak that holds every component's own box
    plus ``grow_margin`` pixels of room to grow (the largest need)."""
    return max(max(_need(c, grow_margin)) for c in components)


def choose_classes(needs, max_classes: int = MAX_CLASSES, class_cost: int = CLASS_COST):
    """Group components into size classes with the fewest slot pixels.

    Components sorted by need (larger side, then area) are cut into at most
    ``max_classes`` runs; a run becomes a class of shape (largest ``h``, largest ``w``) of
    its members and ``class_count(len)`` slots; the cuts minimise
    ``sum(K_c * h_c * w_c) + class_cost * n_classes`` (dynamic programming).

    Args:
      needs: N odd (h, w) slot shapes on the class ladder, one per component.

    Returns:
      ``((h, w, K_c), ...)`` by increasing slot pixels.
    """
    order = sorted((tuple(int(v) for v in n) for n in needs),
                   key=lambda n: (max(n), n[0] * n[1]))
    n = len(order)
    if n == 0:
        raise ValueError("a blend needs at least one component")

    def shape(i, j):
        return max(s[0] for s in order[i:j]), max(s[1] for s in order[i:j])

    def cost(i, j):  # one class for order[i:j]
        h, w = shape(i, j)
        return class_count(j - i) * h * w + class_cost

    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(max_classes + 1)]
    cut = [[0] * (n + 1) for _ in range(max_classes + 1)]
    best[0][0] = 0
    for g in range(1, max_classes + 1):
        for j in range(1, n + 1):
            for i in range(j):
                c = best[g - 1][i] + cost(i, j)
                if c < best[g][j]:
                    best[g][j], cut[g][j] = c, i
    groups = min(range(1, max_classes + 1), key=lambda g: best[g][n])
    classes, j = [], n
    for g in range(groups, 0, -1):
        i = cut[g][j]
        classes.append(shape(i, j) + (class_count(j - i),))
        j = i
    return sort_classes(classes)


def _holds_shape(cls, need) -> bool:
    return cls[0] >= need[0] and cls[1] >= need[1]


def _assign(needs, classes) -> list[list[int]]:
    """Component indices per class (slot order): each component goes to the smallest class
    that holds its need and has a free slot, else (a forced layout too small for it: it
    starts clipped and regrows) to the largest class with a free slot."""
    members = [[] for _ in classes]
    by_size = sorted(range(len(classes)), key=lambda c: classes[c][0] * classes[c][1])
    order = sorted(range(len(needs)), key=lambda j: -needs[j][0] * needs[j][1])
    for j in order:  # largest needs first
        free = [c for c in by_size if len(members[c]) < classes[c][2]]
        if not free:
            raise ValueError(f"{len(needs)} components do not fit in the slots {classes}")
        fits = [c for c in free if _holds_shape(classes[c], needs[j])]
        members[fits[0] if fits else free[-1]].append(int(j))
    return [sorted(m) for m in members]


def bucket_key(
    observation: Observation,
    components: list[InitComponent],
    *,
    classes: tuple | None = None,
    box: int | None = None,
    slots: int | None = None,
    canvas: tuple | None = None,
    grow_margin: int = GROW_MARGIN,
) -> BucketKey:
    """The shapes :func:`pack_blend` will use (defaults filled in), without packing."""
    if not components:
        raise ValueError("a blend needs at least one component")
    n_bands, height, width = observation.shape
    n = len(components)
    if classes is None and (box is not None or slots is not None):  # one square class
        if box is None:
            box = min(class_side(box_side_for(components, grow_margin)), _cap((height, width)))
        classes = ((int(box), int(box), class_count(n) if slots is None else int(slots)),)
    if classes is None:
        classes = choose_classes(_needs(components, grow_margin, (height, width)))
    classes = sort_classes(classes)
    for h, w, k in classes:
        if h % 2 != 1 or w % 2 != 1 or k < 1:
            raise ValueError(f"class ({h}x{w}, {k} slots): sides must be odd, slots >= 1")
    if sum(k for _, _, k in classes) < n:
        raise ValueError(f"{n} components do not fit in the slots {classes}")
    if canvas is None:
        canvas = (bucket_canvas(height), bucket_canvas(width))
    canvas = tuple(int(c) for c in canvas)
    if canvas[0] < height or canvas[1] < width:
        raise ValueError(f"canvas {canvas} is smaller than the image {(height, width)}")
    fft_shape = fft_shape_for(canvas, observation.diff_kernel.shape[-2:])
    return BucketKey(n_bands, canvas, classes, fft_shape)


def _pack_class(components, members, shape, slots, image_shape, n_bands):
    """Host arrays of one class: ``members`` (component indices) in its first slots."""
    height, width = image_shape
    bh, bw = shape
    my, mx = bh // 2, bw // 2
    spectra = np.zeros((slots, n_bands), np.float32)
    morphs = np.zeros((slots, bh, bw), np.float32)
    support = np.zeros((slots, bh, bw), np.float32)
    bounds = np.zeros((slots, bh, bw), np.float32)
    origins = np.zeros((slots, 2), np.int32)
    peaks = np.zeros((slots, 2), np.int32)
    source = np.full((slots,), -1, np.int32)
    index = np.full((slots,), -1, np.int32)
    active = np.zeros((slots,), bool)
    symmetric = np.zeros((slots,), bool)
    yy, xx = np.arange(bh), np.arange(bw)
    for k, j in enumerate(members):
        c = components[j]
        py, px = (int(v) for v in c.peak)
        if not (0 <= py < height and 0 <= px < width):
            raise ValueError(f"component {j}: peak {(py, px)} outside the image {image_shape}")
        oy, ox = py - my, px - mx
        origins[k] = (oy, ox)
        peaks[k] = (py, px)
        source[k] = c.source
        index[k] = j
        active[k] = True
        symmetric[k] = bool(c.symmetric)
        spectra[k] = np.asarray(c.spectrum, np.float32)
        inside_y = (oy + yy >= 0) & (oy + yy < height)
        inside_x = (ox + xx >= 0) & (ox + xx < width)
        bounds[k] = inside_y[:, None] & inside_x[None, :]
        # paste the component's own box (clipped to the slot box and the image)
        morph = np.asarray(c.morph, np.float32)
        # own box in slot coordinates
        cut = overlap((c.origin[0] - oy, c.origin[1] - ox), morph.shape, (bh, bw))
        if cut is not None:
            morphs[(k, *cut[0])] = morph[cut[1]]
            support[(k, *cut[0])] = 1.0
        support[k] *= bounds[k]
        support[k, my, mx] = 1.0
        morphs[k] *= support[k]
    placement = Placement(
        origins=jax.device_put(origins),
        bounds=jax.device_put(bounds),
        support=jax.device_put(support),
        active=jax.device_put(active),
        source=jax.device_put(source),
        peaks=jax.device_put(peaks),
        symmetric=jax.device_put(symmetric),
        index=jax.device_put(index),
    )
    return placement, Components(spectra=jax.device_put(spectra), morphs=jax.device_put(morphs))


def _pack(observation, components, key: BucketKey, members) -> PackedBlend:
    n_bands, height, width = observation.shape
    images = np.zeros((n_bands,) + key.canvas, np.float32)
    weights = np.zeros((n_bands,) + key.canvas, np.float32)
    images[:, :height, :width] = observation.images
    weights[:, :height, :width] = observation.weights
    margin = key.box // 2
    placements, comps = [], []
    for (h, w, slots), mem in zip(key.classes, members, strict=True):
        p, c = _pack_class(components, mem, (h, w), slots, (height, width), n_bands)
        check_origins(np.asarray(p.origins)[: len(mem)], (h, w), key.canvas, margin)
        placements.append(p)
        comps.append(c)
    data = FitData(
        images=jax.device_put(images),
        weights=jax.device_put(weights),
        kernel_fft=kernel_to_fft(observation.diff_kernel, key.fft_shape),
        noise_rms=jax.device_put(np.asarray(observation.noise_rms, np.float32)),
        fft_shape=key.fft_shape,
        margin=margin,
    )
    return PackedBlend(data, tuple(placements), tuple(comps), key, (height, width),
                       len(components))


def pack_blend(
    observation: Observation,
    components: list[InitComponent],
    *,
    classes: tuple | None = None,
    box: int | None = None,
    slots: int | None = None,
    canvas: tuple | None = None,
    grow_margin: int = GROW_MARGIN,
) -> PackedBlend:
    """Pack a blend into bucketed arrays in size classes.

    Args:
      observation: the blend's data.
      components: initial components (at least one).
      classes: ((h, w, K_c), ...) layout to use (e.g. one shared by several blends);
        default :func:`choose_classes` on each component's need (its own box plus
        ``grow_margin`` around its peak, capped at a box holding twice the image).
      box, slots: one square class of side ``box`` (odd) and ``slots`` slots instead
        (defaults as for ``classes``).
      canvas: padded (H, W); default each side rounded up to a multiple of 16.
      grow_margin: room for boxes to grow during the fit (pixels per side).
    """
    key = bucket_key(observation, components, classes=classes, box=box, slots=slots,
                     canvas=canvas, grow_margin=grow_margin)
    needs = _needs(components, grow_margin, observation.shape[1:])
    return _pack(observation, components, key, _assign(needs, key.classes))


def _members(packed: PackedBlend) -> list[list[int]]:
    """Component indices in each class's slots (padding dropped)."""
    return [[int(j) for j in np.asarray(p.index) if j >= 0] for p in packed.placement]


# ------------------------------------------------------------------------------ regrow


def _embed(x: np.ndarray, shape, fill) -> np.ndarray:
    """An (h, w) box centred in a larger-or-equal ``shape`` one; new pixels ``fill``."""
    out = np.full(tuple(shape), fill, x.dtype)
    dy, dx = (shape[0] - x.shape[0]) // 2, (shape[1] - x.shape[1]) // 2
    out[dy : dy + x.shape[0], dx : dx + x.shape[1]] = x
    return out


def _relayout(trees, old_members, new_classes, new_members, fill=0.0):
    """Move per-slot leaves of a tuple over classes into a new class layout.

    ``trees``: tuple over old classes of same-structure pytrees whose leaves have a leading
    slot axis; 3-d leaves are (K_c, h_c, w_c) boxes, others per-slot values (or scalars,
    kept from the first class). A component keeps its values (boxes centred in the new
    shape, which holds the old one; new pixels ``fill``)."""
    where = {j: (c, s) for c, mem in enumerate(old_members) for s, j in enumerate(mem)}
    out = []
    for (h, w, slots), mem in zip(new_classes, new_members, strict=True):

        def build(*leaves, h=h, w=w, slots=slots, mem=mem):
            leaves = [np.asarray(x) for x in leaves]
            if leaves[0].ndim == 0:
                return leaves[0]
            box = leaves[0].ndim == 3
            tail = (h, w) if box else leaves[0].shape[1:]
            new = np.full((slots,) + tail, fill, leaves[0].dtype)
            for t, j in enumerate(mem):
                c, s = where[j]
                new[t] = _embed(leaves[c][s], (h, w), fill) if box else leaves[c][s]
            return new

        out.append(jax.tree.map(build, *trees))
    return tuple(out)


#: a component that outgrows its class moves to one at least this many times its side (per
#: axis, capped at a side that covers the image from its peak), so a fit moves a component
#: up only a few times, each time a new layout to compile
REGROW_JUMP = 1.5


#: at most this many size classes in a layout chosen by a regrow: each class is its own code
#: in the block program, whose compile time grows about linearly with the classes
REGROW_CLASSES = 2


def _cover(peak, image_shape) -> tuple[int, int]:
    """Class sides (h, w) of a slot centred on ``peak`` that covers the whole image."""
    return tuple(class_side(2 * max(int(p), n - 1 - int(p)) + 3)
                 for p, n in zip(peak, image_shape, strict=True))


def _near_edge(support, bounds, room: int) -> tuple[bool, bool]:
    """Per axis (y, x): whether the (h, w) ``support`` comes within ``room`` pixels of a
    slot edge that lies inside the image (``bounds``): the next resizes may push it past."""
    out = []
    for axis in (1, 0):  # rows (y), then columns (x)
        used = np.nonzero(np.any(support > 0, axis=axis))[0]
        inside = np.any(bounds > 0, axis=axis)
        n = inside.shape[0]
        if used.size == 0:
            out.append(False)
            continue
        out.append(bool((used[0] < room and inside[0]) or (used[-1] > n - 1 - room
                                                           and inside[-1])))
    return tuple(out)


def _regrow_need(shape, near, cover, grow: int) -> tuple[int, int]:
    """New class sides of a component of class ``shape`` whose support is near the slot
    edge on the axes ``near``: at least :data:`REGROW_JUMP` times the side and
    ``2 * grow`` more, capped at ``cover``; never smaller than ``shape``."""
    out = []
    for side, go, cap in zip(shape, near, cover, strict=True):
        if go:
            want = class_side(max(int(np.ceil(REGROW_JUMP * side)), side + max(2 * grow, 2)))
            side = max(side, min(want, cap))
        out.append(side)
    return tuple(out)


def _fit_in(classes, members, moves):
    """Members per class after the ``moves`` ((component, class, need), ...) into the
    smallest class of ``classes`` that holds the need and has a free slot; None when one
    finds none."""
    members = [list(m) for m in members]
    for j, c, need in moves:
        members[c].remove(j)
        free = [d for d in range(len(classes)) if _holds_shape(classes[d], need)
                and len(members[d]) < classes[d][2]]
        if not free:
            return None
        members[min(free, key=lambda d: classes[d][0] * classes[d][1])].append(j)
    return [sorted(m) for m in members]


def _move_into(classes, members, bigger) -> list[list[int]] | None:
    """Members per class of layout ``bigger``: each component to the smallest class of
    ``bigger`` with a free slot that holds its class's shape, largest classes first (the
    placement :func:`~scarlet_jax.buckets.classes_hold` checks); None when one finds no
    room."""
    out = [[] for _ in bigger]
    for c in sorted(range(len(classes)), key=lambda c: -classes[c][0] * classes[c][1]):
        for j in members[c]:
            free = [d for d in range(len(bigger)) if _holds_shape(bigger[d], classes[c][:2])
                    and len(out[d]) < bigger[d][2]]
            if not free:
                return None
            out[min(free, key=lambda d: bigger[d][0] * bigger[d][1])].append(j)
    return [sorted(m) for m in out]


def _layout(needs: dict):
    """Classes (:func:`choose_classes`, at most :data:`REGROW_CLASSES`) and members per
    class for components ``needs``
    ({component: (h, w)}), each in a class that holds its need."""
    order = sorted(needs)
    shapes = [needs[j] for j in order]
    classes = choose_classes(shapes, max_classes=REGROW_CLASSES)
    slots = _assign(shapes, classes)
    if not all(_holds_shape(classes[c], shapes[i]) for c, m in enumerate(slots) for i in m):
        # the greedy assignment missed (rectangular needs): one class that holds them all
        classes = ((max(h for h, _ in shapes), max(w for _, w in shapes),
                    class_count(len(shapes))),)
        slots = [list(range(len(shapes)))]
    return classes, [sorted(order[i] for i in m) for m in slots]


def regrow(observation: Observation, comps: list[InitComponent], packed: PackedBlend, state,
           opts, into=None):
    """Move the components that outgrew their class up a class and carry the fit state.

    Host function for a blend whose fit stopped with ``needs_room`` (the step that found a
    box reaching past its slot was not applied: see :func:`~scarlet_jax.fit.make_step`).
    Each layout is a program to compile, so a regrow moves a component far and moves all
    that are about to need it at once: every component whose support comes within
    ``grow + grow_margin`` pixels of a slot edge inside the image (the overflowing ones
    too) gets, on both axes, at least :data:`REGROW_JUMP` times its side and
    ``2 * (grow + grow_margin)`` more pixels, capped at a side that covers the image from its
    peak. When each fits a free slot of a larger class of the blend, the layout (and the
    compiled program) stays; else the classes are chosen anew (:func:`choose_classes`, at
    most :data:`REGROW_CLASSES`, each component in a class at least as large as it had).
    Its parameters, support, best state and optimiser moments move with it, centred; new
    pixels start as a fresh optimiser sees them (moments 0, ``vhat`` -inf).

    Args:
      observation, comps: the blend and its initial components (as packed).
      packed: the blend as fitted so far.
      state: its :class:`~scarlet_jax.fit.FitState` (host or device, one blend).
      opts: the run's :class:`~scarlet_jax.options.Options` (``config.grow``,
        ``run.grow_margin``).
      into: optional ``into(classes) -> classes``: a layout holding the chosen one to use
        instead (e.g. a batch's existing bucket: no new program); each component goes to the
        smallest class of it that holds its chosen class's shape.

    Returns:
      ``(packed, state)``: the re-packed blend and the state in its layout (host arrays;
      ``needs_room`` still set: resume it with :func:`~scarlet_jax.fit.resume_state`).
    """
    state = jax.device_get(state)
    grow = int(opts.config.grow) + int(opts.run.grow_margin)
    old_classes = list(packed.key.classes)
    old_members = _members(packed)
    needs = {}  # component -> new (h, w)
    moves = []
    for c, (h, w, _) in enumerate(old_classes):
        over = np.asarray(state.overflow[c])
        support = np.asarray(state.support[c])
        bounds = np.asarray(packed.placement[c].bounds)
        peaks = np.asarray(packed.placement[c].peaks)
        for s, j in enumerate(old_members[c]):
            # a component that spreads on one axis mostly spreads on the other too
            near = (over[s] or any(_near_edge(support[s], bounds[s], grow)),) * 2
            need = _regrow_need((h, w), near, _cover(peaks[s], packed.image_shape), grow)
            needs[j] = need
            if over[s] or need != (h, w):
                moves.append((j, c, need))
    if not any(np.asarray(o).any() for o in state.overflow):
        raise ValueError("regrow: no component of the blend needs a larger box")
    classes = tuple(old_classes)
    members = _fit_in(classes, old_members, moves)
    if members is None:  # a new layout for all
        classes, members = _layout(needs)
    if into is not None:
        bigger = tuple(into(classes))
        moved = None if bigger == classes else _move_into(classes, members, bigger)
        if moved is not None:
            classes, members = bigger, moved
    key = packed.key._replace(classes=classes)
    new_packed = _pack(observation, comps, key, members)

    def move(trees, fill=0.0):
        return _relayout(trees, old_members, classes, members, fill)

    opt = state.opt_state
    if isinstance(opt, ProxAdamState):
        opt = ProxAdamState.of(count=opt.count, m=move(opt.m), v=move(opt.v),
                               vhat=move(opt.vhat, -np.inf))
    elif isinstance(opt, FistaState):
        opt = opt._replace(**{f: move(getattr(opt, f)) if isinstance(getattr(opt, f), tuple)
                              else getattr(opt, f) for f in opt._fields})
    else:  # pragma: no cover - the two optimisers above are the only ones
        raise TypeError(f"regrow: unknown optimiser state {type(opt).__name__}")
    new_state = state._replace(
        components=move(state.components),
        support=move(state.support),
        opt_state=opt,
        best_components=move(state.best_components),
        best_support=move(state.best_support),
        overflow=move(state.overflow, False),
    )
    return new_packed, new_state


# ------------------------------------------------------------------------------ results


def unpack_components(packed: PackedBlend, state) -> dict:
    """Per-component host arrays of a fitted blend in its component order, every box
    centred in one common square of the largest class side (the result layout).

    Returns:
      dict of ``spectra`` (K, B), ``morphs`` (K, S, S) float32, ``support`` (K, S, S) bool,
      ``origins`` (K, 2) int32 top-left of each common box, ``peaks`` (K, 2) int32 and
      ``component_source`` (K,) int32.
    """
    state = jax.device_get(state)
    members = _members(packed)
    side = packed.key.box
    n = packed.n_components
    common = ((side, side, n),)
    order = [list(range(n))]
    comps = _relayout(tuple(state.components), members, common, order)[0]
    support = _relayout(tuple(state.support), members, common, order)[0]
    place = _relayout(tuple(dict(peaks=np.asarray(p.peaks), source=np.asarray(p.source))
                            for p in packed.placement), members, common, order)[0]
    peaks = place["peaks"].astype(np.int32)
    return dict(
        spectra=np.asarray(comps.spectra, np.float32),
        morphs=np.asarray(comps.morphs, np.float32),
        support=np.asarray(support) > 0,
        origins=(peaks - side // 2).astype(np.int32),
        peaks=peaks,
        component_source=place["source"].astype(np.int32),
    )


def padding(packed: PackedBlend, components: list[InitComponent], grow_margin: int = GROW_MARGIN):
    """Slot pixels against the components' own boxes.

    Returns:
      dict: ``slot_pixels`` (sum of K_c * h_c * w_c), ``box_pixels`` (the own boxes),
      ``room_pixels`` (the own boxes grown by ``grow_margin`` per side, clipped to the
      image: what a component may use before it must move class) and the ratios
      ``slots_per_box``, ``slots_per_room``.
    """
    height, width = packed.image_shape
    box = room = 0
    for c in components:
        h, w = np.shape(c.morph)
        oy, ox = (int(v) for v in c.origin)
        box += h * w
        y0, y1 = max(oy - grow_margin, 0), min(oy + h + grow_margin, height)
        x0, x1 = max(ox - grow_margin, 0), min(ox + w + grow_margin, width)
        room += (y1 - y0) * (x1 - x0)
    slots = packed.key.pixels
    return dict(slot_pixels=slots, box_pixels=box, room_pixels=room,
                slots_per_box=slots / box, slots_per_room=slots / room)
