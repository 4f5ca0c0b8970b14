import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from scarlet_jax.render import check_origins, extract, insert, insert_op

IMAGE = (24, 19)
BOX = (7, 7)
MARGIN = 3


@pytest.fixture
def setup(rng):
    k, b = 4, 3
    boxes = rng.normal(size=(k, b) + BOX).astype(np.float32)
    # include boxes hanging over every edge
    origins = np.array([[-3, -3], [10, 5], [IMAGE[0] - 4, IMAGE[1] - 4], [0, 15]], np.int32)
    return boxes, origins


def plain_insert(boxes, origins):
    k, b, h, w = boxes.shape
    out = np.zeros((b,) + IMAGE)
    for i in range(k):
        for y in range(h):
            for x in range(w):
                yy, xx = origins[i, 0] + y, origins[i, 1] + x
                if 0 <= yy < IMAGE[0] and 0 <= xx < IMAGE[1]:
                    out[:, yy, xx] += boxes[i, :, y, x]
    return out


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_insert_matches_loop(wrap, setup):
    boxes, origins = setup
    ins = wrap(functools.partial(insert, image_shape=IMAGE, margin=MARGIN))
    np.testing.assert_allclose(ins(boxes, origins), plain_insert(boxes, origins), atol=1e-5)


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_extract_is_adjoint(wrap, setup, rng):
    boxes, origins = setup
    y = rng.normal(size=(boxes.shape[1],) + IMAGE).astype(np.float32)
    ins = wrap(functools.partial(insert, image_shape=IMAGE, margin=MARGIN))
    ext = wrap(functools.partial(extract, box_shape=BOX, margin=MARGIN))
    np.testing.assert_allclose(
        jnp.vdot(ins(boxes, origins), y), jnp.vdot(boxes, ext(y, origins)), rtol=1e-5
    )


def test_custom_vjp_matches_autodiff(setup, rng):
    boxes, origins = setup
    ct = jnp.asarray(rng.normal(size=(boxes.shape[1],) + IMAGE), jnp.float32)
    _, f_custom = jax.vjp(lambda b: insert_op(b, origins, IMAGE, MARGIN), boxes)
    _, f_auto = jax.vjp(lambda b: insert(b, origins, IMAGE, MARGIN), boxes)
    np.testing.assert_allclose(f_custom(ct)[0], f_auto(ct)[0], atol=1e-6)


def test_check_grads_x64(x64, setup):
    boxes, origins = setup
    check_grads(lambda b: insert_op(b, jnp.asarray(origins), IMAGE, MARGIN),
                (jnp.asarray(boxes, jnp.float64),), order=1, modes=["rev"])


def test_check_origins_rejects_boxes_outside_canvas():
    check_origins(np.array([[-3, 0]]), BOX, IMAGE, MARGIN)
    with pytest.raises(ValueError, match="does not fit"):
        check_origins(np.array([[-4, 0]]), BOX, IMAGE, MARGIN)
    with pytest.raises(ValueError, match="box 1"):
        check_origins(np.array([[0, 0], [IMAGE[0], 0]]), BOX, IMAGE, MARGIN)
