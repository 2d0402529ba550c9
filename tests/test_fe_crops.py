"""Three-crop multi-view geometry (vivitcli/crops.py), as Scenic's video_ops.deterministic_crop takes them."""

from __future__ import annotations

import numpy as np
import pytest

from vivitcli.crops import three_crop_boxes, take_crops


def test_landscape_frames_give_left_centre_right():
    # 256 x 341 after resizing 480x640 to a 256 short side; centre offset ceil(117 / 2) = 59.
    assert three_crop_boxes(256, 341, 224) == [(16, 0, 224, 224), (16, 59, 224, 224), (16, 117, 224, 224)]


def test_portrait_frames_give_top_middle_bottom():
    assert three_crop_boxes(455, 256, 224) == [(0, 16, 224, 224), (116, 16, 224, 224), (231, 16, 224, 224)]


def test_square_frames_crop_along_the_width_and_exact_fits_repeat():
    assert three_crop_boxes(256, 256, 224) == [(16, 0, 224, 224), (16, 16, 224, 224), (16, 32, 224, 224)]
    assert three_crop_boxes(224, 300, 224) == [(0, 0, 224, 224), (0, 38, 224, 224), (0, 76, 224, 224)]
    assert three_crop_boxes(224, 224, 224) == [(0, 0, 224, 224)] * 3


def test_take_crops_slices_the_pixels_of_each_box():
    frames = np.arange(2 * 6 * 9 * 3).reshape(2, 6, 9, 3)
    views = take_crops(frames, three_crop_boxes(6, 9, 4))
    assert [v.shape for v in views] == [(2, 4, 4, 3)] * 3
    np.testing.assert_array_equal(views[0], frames[:, 1:5, 0:4])
    np.testing.assert_array_equal(views[1], frames[:, 1:5, 3:7])   # ceil((9 - 4) / 2) = 3
    np.testing.assert_array_equal(views[2], frames[:, 1:5, 5:9])


@pytest.mark.parametrize("h,w,crop", [(100, 300, 224), (300, 100, 224), (256, 256, 0)])
def test_crop_that_does_not_fit_is_refused(h, w, crop):
    with pytest.raises(ValueError, match="does not fit"):
        three_crop_boxes(h, w, crop)
