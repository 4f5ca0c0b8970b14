import numpy as np

from scarlet_jax.boxes import crop_boxes, overlap, place_boxes


def test_overlap_cuts_a_box_at_the_frame_edges():
    assert overlap((-2, 3), (5, 4), (10, 6)) == ((slice(0, 3), slice(3, 6)),
                                                  (slice(2, 5), slice(0, 3)))
    assert overlap((10, 0), (5, 4), (10, 6)) is None  # below the frame
    assert overlap((0, -4), (5, 4), (10, 6)) is None  # left of it


def test_place_and_crop_boxes_against_an_explicit_loop():
    rng = np.random.default_rng(0)
    boxes = rng.normal(size=(3, 5, 4))
    origins = np.array([[-2, 3], [4, 1], [9, -3]])
    frames = place_boxes(boxes, origins, (10, 6))
    expected = np.zeros((3, 10, 6))
    for k, (oy, ox) in enumerate(origins):
        for y in range(5):
            for x in range(4):
                if 0 <= oy + y < 10 and 0 <= ox + x < 6:
                    expected[k, oy + y, ox + x] = boxes[k, y, x]
    np.testing.assert_array_equal(frames, expected)
    back = crop_boxes(frames, origins, (5, 4))
    inside = place_boxes(np.ones((3, 5, 4), bool), origins, (10, 6))
    assert inside.dtype == bool and inside.sum() == np.count_nonzero(expected)
    np.testing.assert_array_equal(back, np.where(crop_boxes(inside, origins, (5, 4)), boxes, 0))
