"""Stacking cutouts: edge-truncated stamps are padded on the CCD-edge side; NaN is masked."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from stampnet.constants import CUTOUT_FIELDS, STAMP_SHAPE
from stampnet.data.fits import decode_cutout
from stampnet.data.readers import iter_packets
from stampnet.data.stamps import (
    QUADRANT_HEIGHT,
    QUADRANT_WIDTH,
    StampError,
    edge_padding,
    stack_stamps,
)


@functools.cache
def truncated_packets(ztf_dir) -> list[tuple[dict, list[np.ndarray]]]:
    """(candidate, decoded cutouts) of every real alert whose stamps are not 63x63."""
    found = []
    columns = ("candid", "candidate", *CUTOUT_FIELDS)
    for _, packet in iter_packets(ztf_dir, columns=columns):
        cutouts = [decode_cutout(packet[field]["stampData"]) for field in CUTOUT_FIELDS]
        if cutouts[0].shape != (63, 63):
            found.append((packet["candidate"], cutouts))
    return found


def cutout_extent(position: float, image_size: int) -> int:
    """Pixels a 63-pixel cutout centred on a 1-based ``position`` keeps inside the image."""
    centre = round(position) - 1
    return min(centre + 31, image_size - 1) - max(centre - 31, 0) + 1


def test_sample_has_the_24_truncated_alerts(ztf_dir):
    packets = truncated_packets(ztf_dir)
    assert len(packets) == 24
    for _, cutouts in packets:
        assert len({cutout.shape for cutout in cutouts}) == 1


def test_quadrant_geometry_predicts_every_truncated_shape(ztf_dir):
    """xpos/ypos are 1-based on a 3072 x 3080 quadrant: the cut-off shapes follow exactly."""
    for candidate, cutouts in truncated_packets(ztf_dir):
        height, width = cutouts[0].shape
        assert cutout_extent(candidate["ypos"], QUADRANT_HEIGHT) == height, candidate["candid"]
        assert cutout_extent(candidate["xpos"], QUADRANT_WIDTH) == width, candidate["candid"]


def _signed_difference_peak(stamps: np.ndarray, mask: np.ndarray, isdiffpos: str) -> tuple:
    # The candidate is the brightest 5x5 blob of the difference image (negative when isdiffpos
    # is 'f'); smoothing keeps single hot pixels and noise from winning.
    sign = 1.0 if str(isdiffpos).lower().startswith(("t", "1")) else -1.0
    difference = np.where(mask[..., 2], sign * stamps[..., 2], 0.0)
    smooth = uniform_filter(difference, size=5, mode="constant")
    return np.unravel_index(np.argmax(smooth), smooth.shape)


def _pad_on(cutouts, top, left) -> tuple[np.ndarray, np.ndarray]:
    height, width = cutouts[0].shape
    stamps = np.zeros(STAMP_SHAPE, np.float32)
    mask = np.zeros(STAMP_SHAPE, bool)
    stacked = np.stack(cutouts, -1)
    stamps[top : top + height, left : left + width] = np.nan_to_num(stacked)
    mask[top : top + height, left : left + width] = np.isfinite(stacked)
    return stamps, mask


def test_padding_puts_the_candidate_pixel_at_the_centre(ztf_dir):
    for candidate, cutouts in truncated_packets(ztf_dir):
        stamps, mask, original = stack_stamps(cutouts, candidate["xpos"], candidate["ypos"])
        assert stamps.shape == STAMP_SHAPE and mask.shape == STAMP_SHAPE
        assert original == cutouts[0].shape
        # Quadrant pixel of the candidate, and of the cutout's first row/column (0-based).
        centre_y, centre_x = round(candidate["ypos"]) - 1, round(candidate["xpos"]) - 1
        first_y, first_x = max(centre_y - 31, 0), max(centre_x - 31, 0)
        top, left = 31 - (centre_y - first_y), 31 - (centre_x - first_x)
        expected_stamps, expected_mask = _pad_on(cutouts, top, left)
        np.testing.assert_array_equal(mask, expected_mask)
        np.testing.assert_array_equal(stamps, expected_stamps)


def test_padded_truncated_stamps_show_the_candidate_at_the_centre(ztf_dir):
    """The difference-image blob sits near (31, 31) after padding, and not with the wrong side."""
    right_side, wrong_side = [], []
    for candidate, cutouts in truncated_packets(ztf_dir):
        stamps, mask, (height, width) = stack_stamps(cutouts, candidate["xpos"], candidate["ypos"])
        peak = _signed_difference_peak(stamps, mask, candidate["isdiffpos"])
        right_side.append(max(abs(peak[0] - 31), abs(peak[1] - 31)))
        top, bottom = edge_padding(height, candidate["ypos"], QUADRANT_HEIGHT)
        left, right = edge_padding(width, candidate["xpos"], QUADRANT_WIDTH)
        wrong = _pad_on(cutouts, bottom, right)
        peak = _signed_difference_peak(*wrong, candidate["isdiffpos"])
        wrong_side.append(max(abs(peak[0] - 31), abs(peak[1] - 31)))
    # Some of these edge alerts are bogus (no source at all), so not every peak is central.
    near_right = sum(distance <= 6 for distance in right_side)
    near_wrong = sum(distance <= 6 for distance in wrong_side)
    assert near_right >= 14 and near_wrong <= 2, (sorted(right_side), sorted(wrong_side))
    assert np.median(right_side) <= 5 < np.median(wrong_side)


def cutouts_of(shape, fill=1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=shape).astype(np.float32) + fill for _ in range(3)]


def test_full_stamps_are_stacked_in_channel_order():
    cutouts = cutouts_of((63, 63))
    stamps, mask, original = stack_stamps(cutouts)
    assert original == (63, 63) and stamps.dtype == np.float32 and mask.all()
    for channel, cutout in enumerate(cutouts):
        np.testing.assert_array_equal(stamps[..., channel], cutout)


def test_nan_pixels_become_zero_and_invalid():
    cutouts = cutouts_of((63, 63))
    cutouts[1][10:20, 5] = np.nan
    cutouts[2][0, 0] = np.inf
    stamps, mask, _ = stack_stamps(cutouts)
    assert not np.isnan(stamps).any() and np.isfinite(stamps).all()
    assert (~mask[..., 1]).sum() == 10 and not mask[15, 5, 1] and stamps[15, 5, 1] == 0.0
    assert not mask[0, 0, 2] and stamps[0, 0, 2] == 0.0 and mask[..., 0].all()


@pytest.mark.parametrize(
    "shape, xpos, ypos, top, left",
    [
        ((48, 63), 1000.0, 17.0, 15, 0),  # bottom CCD edge (low y): pad the first rows
        ((48, 63), 1000.0, 3064.0, 0, 0),  # top CCD edge (high y): pad the last rows
        ((63, 50), 19.0, 1000.0, 0, 13),  # low-x edge: pad the first columns
        ((63, 50), 3054.0, 1000.0, 0, 0),  # high-x edge: pad the last columns
        ((40, 45), 14.0, 3057.0, 0, 18),  # a corner
    ],
)
def test_truncated_stamps_are_padded_on_the_ccd_edge_side(shape, xpos, ypos, top, left):
    cutouts = cutouts_of(shape, fill=5.0)
    stamps, mask, original = stack_stamps(cutouts, xpos, ypos)
    assert original == shape and stamps.shape == STAMP_SHAPE
    height, width = shape
    assert mask[top : top + height, left : left + width].all()
    assert mask.sum() == 3 * height * width
    np.testing.assert_array_equal(stamps[top : top + height, left : left + width, 0], cutouts[0])


def test_inconsistent_position_pads_towards_the_nearer_edge():
    assert edge_padding(48, 500.0, QUADRANT_HEIGHT) == (15, 0)
    assert edge_padding(48, 2500.0, QUADRANT_HEIGHT) == (0, 15)
    assert edge_padding(63, float("nan"), QUADRANT_HEIGHT) == (0, 0)


@pytest.mark.parametrize(
    "cutouts, match",
    [
        (cutouts_of((63, 63))[:2], "expected 3 cutouts"),
        ([np.ones((63, 63)), np.ones((63, 63)), np.ones((48, 63))], "different shapes"),
        ([np.ones((64, 63))] * 3, "unexpected stamp shape 64x63"),
        ([np.ones((63, 63, 1))] * 3, "2-D"),
        ([np.ones(63)] * 3, "2-D"),
        ([np.ones((0, 63))] * 3, "unexpected stamp shape"),
        ([np.ones((63, 63)), np.full((63, 63), np.nan), np.ones((63, 63))], r"channel\(s\) \[1\]"),
    ],
)
def test_bad_cutouts_are_rejected(cutouts, match):
    with pytest.raises(StampError, match=match):
        stack_stamps(cutouts, 100.0, 100.0)


def test_truncated_stamp_without_position_is_rejected():
    with pytest.raises(StampError, match="position is missing"):
        stack_stamps(cutouts_of((48, 63)), None, None)
